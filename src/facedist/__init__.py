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
__version__ = "0.1.0"

from .api import (Analyzer, Face, FaceDB, analyze, fetch_weights, open_db, run,  # noqa: E402
                  weights, write_report)
from .errors import FacedistError  # noqa: E402


def tune_process() -> None:
    """Process-wide settings that make long runs leaner; call it before torch is imported.
    oneDNN caches compiled convolutions per input shape, and photos come in endless shapes: its
    default (1024 entries) holds hundreds of MB for no speed gain here. And every thread
    allocates from one malloc heap, which keeps large freed buffers for reuse until each chunk
    ends (pipeline.share_one_heap, reuse_large_buffers)."""
    import os

    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    from .pipeline import reuse_large_buffers, share_one_heap

    share_one_heap()
    reuse_large_buffers()


__all__ = ["run", "open_db", "FaceDB", "analyze", "Analyzer", "Face", "FacedistError", "write_report",
           "tune_process", "weights", "fetch_weights", "__version__"]
