"""facedist: which faces in a folder of photos look like which?

    import facedist
    result = facedist.run("photos/", out="out/")         # detect, embed, compare
    db = facedist.open_db("out/")
    db.near("someone.jpg", k=5)                            # most similar stored faces
"""
import os

# oneDNN caches compiled convolutions per input shape; photos come in endless shapes, and its
# default (1024 entries) holds hundreds of MB for no speed gain here. Must be set before torch loads.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

__version__ = "0.1.0"

from .api import FaceDB, open_db, run  # noqa: E402

__all__ = ["run", "open_db", "FaceDB", "__version__"]
