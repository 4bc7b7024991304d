"""facedist: which faces in a folder of photos look like which?

    import facedist
    result = facedist.run("photos/", out="out/")         # detect, embed, compare
    db = facedist.open_db("out/")
    db.near("someone.jpg", k=5)                            # most similar stored faces
"""
__version__ = "0.1.0"

from .api import FaceDB, open_db, run  # noqa: E402

__all__ = ["run", "open_db", "FaceDB", "__version__"]
