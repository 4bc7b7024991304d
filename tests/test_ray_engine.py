"""The Ray engine (engines/ray.py) against the local one: docs/ray.md's cluster steps as written,
the same faces, a killed actor costs only a retry, a killed driver resumes.

Every Ray test is in this one module, and the suite runs a module on one worker (`--dist
loadfile`): `ray stop` ends every Ray process of the machine, and the kill tests look for actors
machine-wide. The cluster test comes first, before this module's own Ray (1 CPU, no dashboard)
starts."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facedist import pipeline
from facedist.config import Settings
from facedist.errors import SettingError
from facedist.engines.ray import actor_plan, connect

from conftest import LABELED, require

ray = require("ray")  # the [ray] extra: installed by make install (and in CI, where it must be)


def labeled_photos() -> list:
    return sorted(p for p in (LABELED / "people").rglob("*") if p.is_file()) + sorted(
        (LABELED / "groups").iterdir())


def test_actors_per_cpu_or_per_gpu():
    assert actor_plan(Settings(), {"CPU": 2.0}) == (2, 1, 0)
    assert actor_plan(Settings(ray_actor_cpus=3), {"CPU": 8.0}) == (2, 3, 0)
    assert actor_plan(Settings(), {"CPU": 16.0, "GPU": 4.0}) == (4, 1, 1)
    assert actor_plan(Settings(device="cpu"), {"CPU": 16.0, "GPU": 4.0}) == (16, 1, 0)
    assert actor_plan(Settings(ray_actors=3), {"CPU": 1.0}) == (3, 1, 0)


def test_ray_settings_are_checked_where_they_enter():
    for bad in ({"engine": "spark"}, {"ray_actors": 0}, {"ray_actor_cpus": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad)).replace("_", "-")):
            Settings().update(bad)


def test_without_ray_the_engine_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(SettingError, match=r"pip install 'facedist\[ray\]'"):
        connect(Settings(engine="ray"))


@pytest.fixture(scope="module")
def local_ray():
    # a Ray of its own (address="local"), never one a previous test or another process left.
    # One CPU, so one actor a run: each actor's start (torch, the models) costs ~5 s of CPU, and
    # two actors, on two nodes, are the cluster test's.
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _photos(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, p in enumerate(labeled_photos()):
        os.symlink(p, photos / f"{i:02d}_{p.name}")
    return photos


def _settings(photos, out, **kw) -> Settings:
    return Settings(photos=photos, out=out, progress=False, device="cpu", **kw)


def _faces(out: Path) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    db = sqlite3.connect(out / "facedist.sqlite")
    rows = db.execute("SELECT i.path, f.face_index, f.x1, f.y1, f.x2, f.y2, f.embedding FROM faces f "
                      "JOIN images i ON i.id = f.image_id").fetchall()
    found = {(Path(r[0]).name, r[1]): (np.array(r[2:6]), np.frombuffer(r[6], np.float32))
             for r in rows}
    assert len(found) == len(rows), "a face stored twice"
    return found


def _same_faces(got, want):
    assert got.keys() == want.keys() and len(want) >= len(labeled_photos())
    for face, (box, vector) in want.items():
        assert np.allclose(got[face][0], box, atol=1e-3), face
        cosine = vector @ got[face][1] / np.linalg.norm(vector) / np.linalg.norm(got[face][1])
        assert cosine >= 0.99999, face


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> tuple[pipeline.RunSummary, dict]:
    """The local engine's run of the labelled photos and its faces: what every Ray run must give."""
    tmp = tmp_path_factory.mktemp("local")
    summary = pipeline.run(_settings(_photos(tmp), tmp / "out"))
    return summary, _faces(tmp / "out")


@pytest.fixture(scope="module")
def local_faces(local_run) -> dict:
    return local_run[1]


@pytest.mark.slow
def test_the_cluster_steps_as_written_two_nodes_and_a_token(tmp_path, local_faces):
    """docs/ray.md's steps: a head and a second node started by `ray start` with one token
    (Ray 2.60's default token authentication), then `facedist run --engine ray` through
    RAY_ADDRESS: the local engine's faces. Everything on 127.0.0.1."""
    import secrets
    import socket
    import subprocess

    if ray.is_initialized():  # `ray stop` below would end it under this process
        ray.shutdown()

    photos = _photos(tmp_path)
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
    _same_faces(_faces(tmp_path / "cluster"), local_faces)


@pytest.mark.slow
def test_ray_engine_finds_the_faces_the_local_engine_finds(tmp_path, local_ray, local_run):
    photos = _photos(tmp_path)
    local, want = local_run
    on_ray = pipeline.run(_settings(photos, tmp_path / "ray", engine="ray", chunk_images=2))
    assert (on_ray.processed, on_ray.faces, on_ray.people) == (local.processed, local.faces, local.people)
    _same_faces(_faces(tmp_path / "ray"), want)
    assert "process" in on_ray.stage_seconds and "detect" not in on_ray.stage_seconds
    again = pipeline.run(_settings(photos, tmp_path / "ray", engine="ray"))
    assert (again.processed, again.reused) == (0, len(labeled_photos()))


def _actor_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any("PhotoWorker" in part for part in (p.info["cmdline"] or []))]


def _stored(out: Path) -> int:
    try:
        return sqlite3.connect(out / "facedist.sqlite").execute(
            "SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_a_killed_actor_costs_only_a_retry(tmp_path, local_ray, local_faces):
    photos = _photos(tmp_path)
    out = tmp_path / "ray"
    killed = []

    def kill_one_actor_mid_run():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            pids = _actor_pids()
            if pids and 0 < _stored(out) < len(labeled_photos()) - 2:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_one_actor_mid_run, daemon=True)
    watcher.start()
    run = pipeline.run(_settings(photos, out, engine="ray", chunk_images=1))
    watcher.join(5)
    assert killed, "no actor was killed while photos were left"
    assert run.processed == len(labeled_photos())
    _same_faces(_faces(out), local_faces)


@pytest.mark.slow
def test_a_killed_driver_resumes_without_loss_or_duplicates(tmp_path, local_ray, local_faces):
    photos = _photos(tmp_path)
    out = tmp_path / "ray"
    cfg = tmp_path / "ray.yaml"
    cfg.write_text("engine: ray\nchunk-images: 1\ndevice: cpu\n")
    env = {**os.environ, "RAY_ADDRESS": local_ray}
    driver = subprocess.Popen([sys.executable, "-m", "facedist.cli", "run", str(photos), "--out",
                               str(out), "--config", str(cfg), "--no-progress"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and _stored(out) < 3 and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    stored = _stored(out)
    assert 0 < stored < len(labeled_photos()), "the driver should be killed part way"
    resumed = pipeline.run(_settings(photos, out, engine="ray", chunk_images=1))
    assert resumed.reused >= stored and resumed.reused + resumed.processed == len(labeled_photos())
    _same_faces(_faces(out), local_faces)
