"""The Python API: the same verbs as the command line.

    faces = facedist.analyze("photo.jpg")    # [Face(box, prob, landmarks, embedding)], no database
    summary = facedist.run("photos", out="out", model="dlib-resnet")
    db = facedist.open_db("out")
    table = db.faces()                      # paths, boxes, embeddings of the last run's model
    for match in db.near("query.jpg", k=5): ...
    db.people()                             # [Person(id, name, faces, photos)], named first
    db.name_person(3, "Ana"); db.merge_people(3, 7); db.apart(3, 9); db.move_face(1234, None)
    db.ignore_face(1300); db.ignore_person(12); db.unignore_person(12)   # strangers, non-faces
    db.lookalikes(10)                       # closest faces of different people
    db.neighbors([12, 40]); db.pairs()      # from the Parquet files, in pieces
    db.export("out/export")
    db.export_xmp("named", in_place=True)   # XMP sidecars naming the faces (digiKam, Lightroom)
    db.tags()                               # face regions read from the photos' XMP by the runs
    facedist.write_report("out")            # out/report/index.html: people, look-alikes, ...
    facedist.weights()                      # [WeightsStatus(model, source, path, where)]
    facedist.fetch_weights("dlib-resnet")   # its files present (downloaded where missing), checked
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Settings
from .facedb import FaceDB, Lookalike, Match  # noqa: F401  (the API's, re-exported)


@dataclass
class Face:
    """One face found in an image, in that image's pixel coordinates (upright)."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    prob: float  # the detector's confidence
    landmarks: np.ndarray  # [5, 2]: eyes, nose, mouth corners (x, y)
    embedding: np.ndarray  # unit length; distances below the model's threshold: same person
    quality: float  # 0..1 (quality.py): how usable for identity; under the model's gate: unclear


class Analyzer:
    """Detector and embedder built once, for many in-memory images or files (nothing stored).

    >>> analyzer = Analyzer(model="facenet-vggface2", weights="synthetic", device="cpu")
    >>> analyzer.get(np.zeros((120, 160, 3), np.uint8))  # a black image: no face
    []
    """

    def __init__(self, **settings) -> None:
        from .compute import FacePipeline

        self.settings = Settings(progress=False).update(settings)
        self.pipeline = FacePipeline(self.settings)

    def get(self, image) -> list[Face]:
        """The faces of `image`: a path, encoded bytes, a PIL image or an RGB uint8 array
        [H, W, 3] (grey [H, W] and RGBA [H, W, 4] are converted), largest face first."""
        from .decode import as_decoded

        s = self.settings
        [found] = self.pipeline.process_images([as_decoded(image, s.max_pixels,
                                                           s.detect.decode_max_side)])
        if found.reason:
            raise ValueError(found.reason)
        from .quality import face_quality

        q = face_quality(found.boxes, found.landmarks, found.probs, found.embeddings,
                         np.tile([found.width, found.height], (len(found.probs), 1)), s.model)
        return [Face(tuple(map(float, found.boxes[i])), float(found.probs[i]), found.landmarks[i],
                     found.embeddings[i], float(q[i])) for i in range(len(found.probs))]


@functools.lru_cache(maxsize=2)
def _analyzer(settings: str) -> Analyzer:
    return Analyzer(**json.loads(settings))


def analyze(image, **settings) -> list[Face]:
    """The faces of one image (see Analyzer.get), with the models of `settings` (built on the
    first call with these settings, then reused)."""
    return _analyzer(json.dumps(settings, sort_keys=True)).get(image)


def run(photos: str | Path, out: str | Path, config: str | Path | None = None, **settings):
    """Run the pipeline (see Settings for the keyword arguments); returns pipeline.RunSummary."""
    from . import pipeline
    from .config import load_yaml

    s = Settings(photos=Path(photos), out=Path(out))
    if config:
        s.update(load_yaml(config))
    s.update(settings)
    return pipeline.run(s)


def open_db(out: str | Path) -> FaceDB:
    return FaceDB(out)


def write_report(out: str | Path, dest: str | Path | None = None, workers: int = 2):
    """The HTML report of an output folder's last finished run: OUT/report/index.html, opened
    from disk. Thumbnails already cut are kept. Returns report.html.ReportSummary."""
    db = FaceDB(out)
    try:
        return db.report(dest, workers)
    finally:
        db.close()


def weights() -> list:
    """Each model's files (models.WeightsStatus: source, SHA-256, path or None), as
    `facedist weights` lists them; nothing is downloaded or hashed.

    >>> [(w.model, w.where) for w in weights()][0]
    ('mtcnn', 'package facedist')
    """
    from .models import weights_status

    return weights_status()


def fetch_weights(model: str) -> list[Path]:
    """The paths of `model`'s files (mtcnn or an embedder), downloaded into the cache where
    missing and checked against their SHA-256; raises WeightsUnavailable with what to do."""
    from .models import fetch_weights as fetch

    return fetch(model)
