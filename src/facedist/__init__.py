"""facedist: which faces in a folder of photos look like which?

    import facedist
    result = facedist.run("photos/", out="out/")         # detect, embed, compare
    db = facedist.open_db("out/")
    db.near("someone.jpg", k=5)                            # most similar stored faces
    faces = facedist.analyze("someone.jpg")                # [Face(box, prob, landmarks, embedding)]
    facedist.write_report("out/")                          # out/report/index.html
    facedist.weights(); facedist.fetch_weights("dlib-resnet")  # model files: where, or get them

Importing facedist changes nothing process-wide (threads, malloc, environment); the command line
calls `tune_process()` for long runs, and a library caller may.
"""
from .version import __version__  # noqa: E402

from .errors import FacedistError  # noqa: E402

# The API (api.py, which imports NumPy) loads on first use: `import facedist` and the command
# line's start-up stay quick, so that a Ctrl-C then still ends in facedist's one line.
_API = ("Analyzer", "Face", "FaceDB", "analyze", "fetch_weights", "open_db", "run", "weights",
        "write_report")


def __getattr__(name: str):
    if name in _API:
        from . import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facedist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


def tune_process() -> None:
    """Process-wide settings that make long runs leaner; call it before numpy and torch are
    imported. oneDNN caches compiled convolutions per input shape, and photos come in endless
    shapes: its default (1024 entries) holds hundreds of MB for no speed gain here. OpenBLAS's
    threads (numpy's, and scipy's under numba) spin for about 0.1 s after each product they
    share, on the cores the detect workers need: they sleep at once instead. And every thread
    allocates from one malloc heap, which keeps large freed buffers for reuse until each chunk
    ends (memory.share_one_heap, reuse_large_buffers)."""
    import os

    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # 2^4 cycles, OpenBLAS's least
    from .memory import reuse_large_buffers, share_one_heap

    share_one_heap()
    reuse_large_buffers()


__all__ = ["run", "open_db", "FaceDB", "analyze", "Analyzer", "Face", "FacedistError", "write_report",
           "tune_process", "weights", "fetch_weights", "__version__"]
