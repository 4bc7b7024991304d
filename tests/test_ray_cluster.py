"""docs/ray.md's cluster steps as written: two nodes started by `ray start`, one token, and a run
through them. A module of its own: `ray stop` ends every Ray process of this machine, so no Ray
instance of this test process (test_ray_engine.py's) may be alive then."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from facedist import pipeline
from test_ray_engine import _faces, _photos, _same_faces, _settings

ray = pytest.importorskip("ray")  # the [ray] extra: installed by make install (and in CI)


@pytest.mark.slow
def test_the_cluster_steps_as_written_two_nodes_and_a_token(tmp_path):
    """docs/ray.md's steps: a head and a second node started by `ray start` with one token
    (Ray 2.60's default token authentication), then `facedist run --engine ray` through
    RAY_ADDRESS: the local engine's faces. Everything on 127.0.0.1."""
    import secrets
    import socket
    import subprocess

    if ray.is_initialized():  # `ray stop` below would end it under this process
        ray.shutdown()

    photos = _photos(tmp_path)
    pipeline.run(_settings(photos, tmp_path / "local"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    ray_cli = [str(bin_dir / "ray"), "start", "--node-ip-address=127.0.0.1", "--num-cpus=1"]
    try:
        subprocess.run(ray_cli + ["--head", f"--port={port}", "--include-dashboard=false"],
                       env=env, check=True, capture_output=True, timeout=180)
        subprocess.run(ray_cli + [f"--address=127.0.0.1:{port}"], env=env, check=True,
                       capture_output=True, timeout=180)
        done = subprocess.run([sys.executable, "-m", "facedist", "run", str(photos), "--out",
                               str(tmp_path / "cluster"), "--engine", "ray", "--device", "cpu",
                               "--no-progress"], env={**env, "RAY_ADDRESS": f"127.0.0.1:{port}"},
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        nodes = subprocess.run([str(bin_dir / "ray"), "status", f"--address=127.0.0.1:{port}"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert nodes.stdout.count("node_") >= 2, nodes.stdout
    finally:
        subprocess.run([str(bin_dir / "ray"), "stop", "--force"], env=env, capture_output=True,
                       timeout=120)
    _same_faces(_faces(tmp_path / "cluster"), _faces(tmp_path / "local"))
