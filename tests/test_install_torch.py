"""tools/install-torch (make install TORCH=...): which torch build it asks pip for, checked with a
stand-in python that records its arguments and a stand-in nvidia-smi; nothing is installed."""
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "install-torch"


@pytest.fixture
def fake(tmp_path):
    """A `python` that logs each call (and says pip has no find-links), and a bin folder."""
    log = tmp_path / "calls.log"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    python.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return python, bin_dir, log


def run(fake, mode, gpu=False, wheels=None):
    python, bin_dir, log = fake
    if gpu:
        smi = bin_dir / "nvidia-smi"
        smi.write_text("#!/bin/sh\necho 'GPU 0: a GPU'\n")
        smi.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PIP_FIND_LINKS": str(wheels or "")}
    done = subprocess.run(["bash", str(SCRIPT), str(python), mode, "2.13.0"], env=env,
                          capture_output=True, text=True)
    installs = [line for line in log.read_text().splitlines() if " install " in f" {line} "] \
        if log.exists() else []
    return done, installs


def test_cpu_takes_pytorchs_cpu_index(fake):
    done, installs = run(fake, "cpu")
    assert done.returncode == 0
    assert installs == ["-m pip install -q torch==2.13.0+cpu --index-url "
                        "https://download.pytorch.org/whl/cpu"]


def test_cpu_takes_a_local_wheel_of_the_pinned_version(fake, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    done, installs = run(fake, "cpu", wheels=wheels)
    assert done.returncode == 0 and "the local wheel" in done.stdout
    assert installs == ["-m pip install -q torch==2.13.0"]


def test_auto_is_cuda_where_nvidia_smi_answers_else_cpu(fake):
    done, installs = run(fake, "auto", gpu=True)
    assert done.returncode == 0 and installs == ["-m pip install -q torch==2.13.0"]
    assert "CUDA" in done.stdout
    os.remove(fake[2])
    os.remove(fake[1] / "nvidia-smi")
    done, installs = run(fake, "auto")
    assert installs[0].endswith("--index-url https://download.pytorch.org/whl/cpu")


def test_an_unknown_mode_is_one_line_and_exit_2(fake):
    done, installs = run(fake, "gpu")
    assert done.returncode == 2 and installs == []
    assert done.stderr.strip() == "TORCH must be cpu, cuda or auto, not 'gpu'"
