"""align: cut each detected face into the square crops its embedder expects.

An aligner returns uint8 crops [faces, views, S, S, 3]: one or more views of each face, whose
embeddings embed.py averages (with their mirror images, see `Settings.views`).

- "box" (FaceNet): the detector box, clipped to the image, resized to input_size x input_size
  with bilinear filtering, as facenet-pytorch's extract_face does (margin 0). One view.
- "dlib-chip" (dlib ResNet): dlib's face chip (similarity warp to its canonical face, padding
  0.25) placed by dlib's 5-point shape predictor run in the detector box; with two views, a
  second chip of the same geometry warped from MTCNN's own five landmarks. Two independent
  landmark estimates average out each one's errors (LFW: README, "People").
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image

from .detect import FaceDetection
from .models import DLIB_SHAPE_PREDICTOR, EmbedderSpec, package_file

# Where MTCNN's five landmarks (eyes, nose, mouth corners) fall in dlib's 150x150 chip with
# padding 0.25: medians over the faces of data/celeba and data/humans, each mapped into the chip
# that dlib's own pipeline (HOG detector, 5-point predictor) cuts, then made left-right
# symmetric (tools/fit_chip_template.py).
CHIP_TEMPLATE_150 = np.array([[47.69, 45.07], [101.31, 45.07], [74.50, 78.94],
                              [51.31, 102.67], [97.69, 102.67]])


class Aligner(Protocol):
    views: int

    def align(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        """RGB uint8 image [H, W, 3] + faces → crops [N, views, S, S, 3] uint8."""


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rotation + uniform scale + shift [2, 3] that maps the points `src` onto `dst` with
    the least squared error (Umeyama's method)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, s, vt = np.linalg.svd(b.T @ a / len(src))
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(s) @ sign) / max(a.var(0).sum(), 1e-12)
    return np.hstack([scale * rot, (md - scale * rot @ ms)[:, None]])


def warp_chip(image: np.ndarray, to_chip: np.ndarray, size: int) -> np.ndarray:
    """The size x size chip whose pixel (u, v) shows the image at to_chip⁻¹(u, v), bilinear
    (pixel centres at integer coordinates). Where the chip shrinks the face by 2x or more, that
    part of the image is first box-reduced, so that the chip does not alias."""
    inv = np.linalg.inv(np.vstack([to_chip, [0.0, 0.0, 1.0]]))
    corners = inv[:2, :2] @ np.array([[0, 0, size - 1, size - 1], [0, size - 1, 0, size - 1]]) \
        + inv[:2, 2:]
    h, w = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[0].min()) - 1, 0, w - 1))
    y0 = int(np.clip(np.floor(corners[1].min()) - 1, 0, h - 1))
    x1 = int(np.clip(np.ceil(corners[0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(np.ceil(corners[1].max()) + 2, y0 + 1, h))
    pil = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    inv = shift @ inv
    factor = int(np.sqrt(abs(np.linalg.det(inv[:2, :2]))))
    if factor >= 2:
        pil = pil.reduce(factor)
        inv = np.array([[1 / factor, 0, 0.5 / factor - 0.5], [0, 1 / factor, 0.5 / factor - 0.5],
                        [0, 0, 1]]) @ inv
    # PIL samples output pixel centres (x + 0.5, y + 0.5) at input position A (x + 0.5) + c,
    # where the input's pixel centres are at + 0.5 too
    a = inv[:2, :2]
    c = inv[:2, 2] + 0.5 - a @ np.array([0.5, 0.5])
    coeffs = (a[0, 0], a[0, 1], c[0], a[1, 0], a[1, 1], c[1])
    return np.asarray(pil.transform((size, size), Image.AFFINE, coeffs, Image.BILINEAR))


class BoxAligner:
    """The detector box, resized (FaceNet's crop).

    >>> import numpy as np
    >>> from facedist.detect import FaceDetection
    >>> face = FaceDetection(np.array([10, 10, 60, 60], np.float32), 0.99, np.zeros((5, 2)))
    >>> BoxAligner(160).align(np.zeros((100, 100, 3), np.uint8), [face]).shape
    (1, 1, 160, 160, 3)
    """

    views = 1

    def __init__(self, size: int) -> None:
        self.size = size

    def align(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        out = np.empty((len(faces), 1, self.size, self.size, 3), np.uint8)
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
            out[i, 0] = np.asarray(pil.crop(box).resize((self.size, self.size), Image.BILINEAR))
        return out


class DlibChipAligner:
    """dlib's 150x150 face chips: from dlib's 5-point shape predictor, and (views=2) from
    MTCNN's own landmarks mapped onto the same canonical face.

    >>> import numpy as np
    >>> from facedist.detect import FaceDetection
    >>> marks = np.array([[40, 45], [60, 45], [50, 55], [42, 66], [58, 66]], np.float32)
    >>> face = FaceDetection(np.array([30, 30, 70, 78], np.float32), 0.99, marks)
    >>> DlibChipAligner(views=2).align(np.zeros((100, 100, 3), np.uint8), [face]).shape
    (1, 2, 150, 150, 3)
    """

    def __init__(self, size: int = 150, padding: float = 0.25, views: int = 1) -> None:
        import dlib

        if views not in (1, 2):
            raise ValueError("a dlib chip has 1 or 2 views")
        self._dlib = dlib
        self.size = size
        self.padding = padding
        self.views = views
        self.predictor = dlib.shape_predictor(str(package_file(DLIB_SHAPE_PREDICTOR)))
        # the template is for padding 0.25 at 150 px; other sizes scale it about the centre
        self.template = (CHIP_TEMPLATE_150 - 74.5) * (size / 150) + (size - 1) / 2

    def shapes(self, image: np.ndarray, faces: list[FaceDetection]):
        """dlib's 5 landmarks for each face (dlib full_object_detection objects)."""
        dlib = self._dlib
        return [self.predictor(image, dlib.rectangle(*(int(round(v)) for v in f.box)))
                for f in faces]

    def align(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        out = np.empty((len(faces), self.views, self.size, self.size, 3), np.uint8)
        if not faces:
            return out
        image = np.ascontiguousarray(image)
        chips = self._dlib.get_face_chips(image, self._dlib.full_object_detections(
            self.shapes(image, faces)), size=self.size, padding=self.padding)
        for i, chip in enumerate(chips):
            out[i, 0] = np.asarray(chip, np.uint8)
        if self.views == 2:
            for i, face in enumerate(faces):
                to_chip = similarity_transform(face.landmarks, self.template)
                out[i, 1] = warp_chip(image, to_chip, self.size)
        return out


def make_aligner(spec: EmbedderSpec, views: int = 1) -> Aligner:
    """The aligner of a model; `views`: crops per face (before mirroring), 1 or 2."""
    if spec.alignment == "box":
        if views != 1:
            raise ValueError(f"model {spec.name} crops the box: one view only")
        return BoxAligner(spec.input_size)
    if spec.alignment == "dlib-chip":
        return DlibChipAligner(spec.input_size, views=views)
    raise ValueError(f"unknown alignment {spec.alignment!r}")
