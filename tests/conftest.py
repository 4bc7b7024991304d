"""Shared fixtures. The data lives in ../shared beside the project (never copied into the repo);
the whole session checks that not one byte or mtime of it changed."""
from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Under pytest-xdist (make test: a worker per core) each worker gets its share of the cores for
# torch and whatever it starts; a worker each using every core made the suite 1.5x slower.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(
        1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEDIST_SHARED", ROOT.parent / "shared"))
HUMANS = SHARED / "data" / "humans"
LABELED = SHARED / "data" / "labeled"
GOLDEN = SHARED / "golden"


def tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    state = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                content = "link:" + os.readlink(p)
            elif not p.is_file():
                content = "special"
            else:
                with open(p, "rb") as fh:  # root reads even mode-0 files
                    content = hashlib.sha256(fh.read()).hexdigest()
            state[str(p)] = (st.st_size, st.st_mtime_ns, st.st_mode, content)
    return state


def tree_stat(root: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """Size, mtime, ctime, inode and mode of every entry: any write, even one that puts the
    mtime back, changes the ctime (only the kernel sets it), so this proves a tree untouched
    without reading its bytes (shared/data: 5,800 files)."""
    state = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            st = (Path(dirpath) / name).lstat()
            state[os.path.join(dirpath, name)] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                                  st.st_ino, st.st_mode)
    return state


def in_ci() -> bool:
    """CI is set (CI services set CI=true; .ci/run sets it too)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(module: str):
    """`import module` for the tests of an extra that make install puts in (ray, dlib, ...):
    where it is missing those tests are skipped, but in CI a missing extra is a broken install,
    and fails them (pytest.importorskip alone turned it into skips there too)."""
    if not in_ci():
        return pytest.importorskip(module)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} cannot be imported, in CI where make install puts it in: {exc}",
                    pytrace=False)


def facedist_main(*args) -> tuple[int, str, str]:
    """`facedist ARGS` in this process: exit code (argparse's own exits counted, as a process's
    would be), stdout, stderr. For what only needs a command's outputs (a reference run, a report
    to open): a process of its own costs ~4 s of torch's import. Whatever is about the process
    itself (signals, exit, start-up) runs one."""
    import contextlib
    import io

    from facedist.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


# The modules that take longest start first: with a worker per core, a test module to a worker
# (make test), none of them is then left running alone at the end. Ray's mostly waits.
LONGEST_FIRST = ("test_ray_engine.py", "test_detect.py", "test_bench.py", "test_pipeline.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name)
               if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST))  # stable: file order kept


@pytest.fixture(scope="session", autouse=True)
def shared_data_untouched(request):
    """The shared photos are never written. Tests that need them say so (`slow`); the fast tier
    (`make test-fast`, -m "not slow") runs without them."""
    if not (SHARED / "data").is_dir():
        if request.config.getoption("-m") != "not slow":
            pytest.exit(f"test data missing: expected {SHARED} (or run the fast tier: "
                        f"make test-fast)", returncode=4)
        yield
        return
    before = tree_stat(SHARED / "data")
    yield
    assert tree_stat(SHARED / "data") == before, "the input photos were modified"


@pytest.fixture(scope="session")
def dlib_settings():
    from facedist.config import Settings

    return Settings(model="dlib-resnet", progress=False, device="cpu")


def write_face_image(path: Path, source: Path = LABELED / "people" / "obama" / "obama_1.jpg",
                     fmt: str | None = None, mode: str | None = None) -> Path:
    img = Image.open(source)
    img.load()
    if mode:
        img = img.convert(mode)
    img.save(path, format=fmt)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tf32_on():
    """TF32 allowed, as torch has it by default for cuDNN convolutions on a GPU machine."""
    from facedist.backend import _tf32_flags

    flags = _tf32_flags()
    saved = [(f, f.get()) for f in flags]
    for f in flags:
        f.set("tf32" if f.off == "ieee" else True)
    yield
    for f, value in saved:
        f.set(value)
