"""align: cut each detected face into the square crop its embedder expects.

- "box" (FaceNet): the detector box, clipped to the image, resized to input_size x input_size
  with bilinear filtering, as facenet-pytorch's extract_face does (margin 0).
- "dlib-chip" (dlib ResNet): dlib's 5-point shape predictor placed in the detector box, then
  dlib's face chip (similarity warp to its canonical face, padding 0.25), input_size pixels.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image

from .detect import FaceDetection
from .models import DLIB_SHAPE_PREDICTOR, EmbedderSpec, package_file


class Aligner(Protocol):
    def align(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        """RGB uint8 image [H, W, 3] + faces → crops [N, S, S, 3] uint8."""


class BoxAligner:
    def __init__(self, size: int) -> None:
        self.size = size

    def align(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        out = np.empty((len(faces), self.size, self.size, 3), np.uint8)
        if not faces:
            return out
        h, w = image.shape[:2]
        pil = Image.fromarray(image)
        for i, face in enumerate(faces):
            x1, y1, x2, y2 = face.box
            box = (int(max(x1, 0)), int(max(y1, 0)), int(min(x2, w)), int(min(y2, h)))
            if box[2] <= box[0] or box[3] <= box[1]:  # a box wholly outside: use what touches
                box = (min(box[0], w - 1), min(box[1], h - 1), min(box[0], w - 1) + 1,
                       min(box[1], h - 1) + 1)
            out[i] = np.asarray(pil.crop(box).resize((self.size, self.size), Image.BILINEAR))
        return out


class DlibChipAligner:
    def __init__(self, size: int = 150, padding: float = 0.25) -> None:
        import dlib

        self._dlib = dlib
        self.size = size
        self.padding = padding
        self.predictor = dlib.shape_predictor(str(package_file(DLIB_SHAPE_PREDICTOR)))

    def shapes(self, image: np.ndarray, faces: list[FaceDetection]):
        """dlib's 5 landmarks for each face (dlib full_object_detection objects)."""
        dlib = self._dlib
        return [self.predictor(image, dlib.rectangle(*(int(round(v)) for v in f.box)))
                for f in faces]

    def align(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        if not faces:
            return np.empty((0, self.size, self.size, 3), np.uint8)
        image = np.ascontiguousarray(image)
        chips = self._dlib.get_face_chips(image, self._dlib.full_object_detections(
            self.shapes(image, faces)), size=self.size, padding=self.padding)
        return np.stack([np.asarray(c, np.uint8) for c in chips])


def make_aligner(spec: EmbedderSpec) -> Aligner:
    if spec.alignment == "box":
        return BoxAligner(spec.input_size)
    if spec.alignment == "dlib-chip":
        return DlibChipAligner(spec.input_size)
    raise ValueError(f"unknown alignment {spec.alignment!r}")
