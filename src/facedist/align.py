"""align: cut each detected face into the square crops its embedder expects.

An aligner returns uint8 crops [faces, views, S, S, 3]: one or more views of each face, whose
embeddings embed.py averages (with their mirror images, see `Settings.views`).

- "box" (FaceNet): the detector box, clipped to the image, resized to input_size x input_size
  with bilinear filtering, as facenet-pytorch's extract_face does (margin 0). One view.
- "dlib-chip" (dlib ResNet): dlib's face chip (similarity warp to its canonical face, padding
  0.25) placed by dlib's 5-point shape predictor run in the detector box; with two views, a
  second chip of the same geometry warped from MTCNN's own five landmarks. Two independent
  landmark estimates average out each one's errors (LFW: README, "People"). Both the predictor
  (nets/dlib_shape.py) and the chip (`face_chip_details`, `extract_face_chips`) are facedist's
  own (NumPy and numba) versions of dlib's, equal to dlib's output to the pixel (landmarks) and
  to one grey level (chips); dlib itself is not needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from .detect import FaceDetection
from .jit import compiled
from .models import DLIB_SHAPE_PREDICTOR, EmbedderSpec, resolve_file
from .nets.dlib_shape import ShapePredictor

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


# -- dlib's face chip (dlib/image_transforms/interpolation.h), without dlib ---------------------

# Where dlib's get_face_chip_details puts the 5 points of its shape predictor, as fractions of
# an unpadded chip (dlib's mean face for the 5-point model).
DLIB_FACE_TEMPLATE_5 = np.array([[0.8595674595992, 0.2134981538014],
                                 [0.6460604764104, 0.2289674387677],
                                 [0.1205750620789, 0.2137274526848],
                                 [0.3340850613712, 0.2290642403242],
                                 [0.4901123135679, 0.6277975316475]])


@dataclass(frozen=True)
class ChipDetails:
    """Where chips lie in the photo (dlib's chip_details): for each of N faces, a rectangle
    (left, top, right, bottom, float, dlib-inclusive) turned by `angles` (radians) about its
    centre, to be sampled into size x size pixels.

    >>> import numpy as np
    >>> marks = np.array([[[110, 50], [95, 51], [55, 50], [70, 51], [82, 80]]])
    >>> details = face_chip_details(marks)
    >>> details.rects.shape, details.size
    ((1, 4), 150)
    >>> extract_face_chips(np.zeros((200, 200, 3), np.uint8), details).shape
    (1, 150, 150, 3)
    """

    rects: np.ndarray  # float64 [N, 4]
    angles: np.ndarray  # float64 [N]
    size: int


def face_chip_details(landmarks: np.ndarray, size: int = 150,
                      padding: float = 0.25) -> ChipDetails:
    """dlib's get_face_chip_details for 5-point landmarks [N, 5, 2]: the similarity that maps
    dlib's mean face (padded by `padding` on each side, scaled to `size`) onto the landmarks,
    written as a turned rectangle."""
    chip_points = (padding + DLIB_FACE_TEMPLATE_5) / (2 * padding + 1) * size
    to_image = np.array([similarity_transform(chip_points, marks)
                         for marks in np.asarray(landmarks, np.float64)]).reshape(-1, 2, 3)
    cos_scale, sin_scale = to_image[:, 0, 0], to_image[:, 1, 0]  # the image of (1, 0)
    angles = np.arctan2(sin_scale, cos_scale)
    side = size * np.hypot(cos_scale, sin_scale)
    centre = to_image[:, :, :2] @ np.array([size / 2, size / 2]) + to_image[:, :, 2]
    half = (side - 1) / 2  # dlib's centered_drect: inclusive corners
    rects = np.concatenate([centre - half[:, None], centre + half[:, None]], 1)
    return ChipDetails(rects, angles, size)


def _rect_down(rects: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2>.rect_down: both corners p / 2 - (1.25, 0.75)."""
    return rects / 2 - np.array([1.25, 0.75, 1.25, 0.75])


def _rect_area(rects: np.ndarray) -> np.ndarray:
    """Area of dlib's inclusive float rectangles (0 where empty)."""
    width, height = rects[..., 2] - rects[..., 0] + 1, rects[..., 3] - rects[..., 1] + 1
    empty = (rects[..., 0] > rects[..., 2]) | (rects[..., 1] > rects[..., 3])
    return np.where(empty, 0.0, width * height)


def _pyramid_depth(rects: np.ndarray, size: int) -> np.ndarray:
    """How many halvings of the photo (pyramid levels) dlib samples each chip from: as long
    as the halved rectangle still has more pixels than the chip."""
    depth = np.zeros(len(rects), np.int64)
    rects = _rect_down(rects)
    while (more := _rect_area(rects) > size * size).any():
        depth += more
        rects = _rect_down(rects)
    return depth


def _turned_corners(rects: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """The corners tl, tr, bl, br [N, 4, 2] of each rectangle turned about its centre."""
    left, top, right, bottom = rects.T
    corners = np.stack([np.stack([left, top], -1), np.stack([right, top], -1),
                        np.stack([left, bottom], -1), np.stack([right, bottom], -1)], 1)
    centre = np.stack([(left + right) / 2, (top + bottom) / 2], -1)[:, None]
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    x, y = corners[..., 0] - centre[..., 0], corners[..., 1] - centre[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], -1) + centre


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """C's lround: halves away from zero."""
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def pyramid_down_2(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> of an RGB uint8 image: a 5x5 binomial filter (1 4 6 4 1 in each
    direction, integer sums, floor division by 256) keeping every other pixel; the output
    pixel (x, y) is centred on input pixel (2x + 2, 2y + 2). Images of 8 rows or columns or
    fewer give an empty image, as in dlib."""
    h, w = image.shape[:2]
    if h <= 8 or w <= 8:
        return np.zeros((0, 0) + image.shape[2:], np.uint8)
    return _pyramid_down_2(np.ascontiguousarray(image).reshape(h, w, -1)).reshape(
        ((h - 3) // 2, (w - 3) // 2) + image.shape[2:])


@compiled
def _pyramid_down_2(image):
    # The filter is separable and its sums are exact integers, so filtering down the columns
    # first (one contiguous row of sums per output row) gives dlib's values; dlib filters
    # along the rows first.
    h, w, channels = image.shape
    rows, cols = (h - 3) // 2, (w - 3) // 2
    flat = image.reshape(h, w * channels)
    column_sums = np.empty(w * channels, np.int32)
    out = np.empty((rows, cols * channels), np.uint8)
    for y in range(rows):
        for j in range(w * channels):
            column_sums[j] = (np.int32(flat[2 * y, j]) + 4 * np.int32(flat[2 * y + 1, j])
                              + 6 * np.int32(flat[2 * y + 2, j])
                              + 4 * np.int32(flat[2 * y + 3, j]) + np.int32(flat[2 * y + 4, j]))
        for x in range(cols):
            for c in range(channels):
                j = 2 * x * channels + c
                out[y, x * channels + c] = (
                    column_sums[j] + 4 * column_sums[j + channels]
                    + 6 * column_sums[j + 2 * channels] + 4 * column_sums[j + 3 * channels]
                    + column_sums[j + 4 * channels]) >> 8  # dlib's // 256 (sums are >= 0)
    return out.reshape(rows, cols, channels)


@compiled
def _sample_chip(source, top_left, along_row, along_column, size):
    """A size x size chip by dlib's interpolate_bilinear: chip pixel (c, r) shows `source`
    (RGB uint8) at top_left + c * along_row + r * along_column, from its four neighbours
    weighted in double, truncated to an integer; black where a neighbour is outside."""
    h, w, channels = source.shape
    chip = np.zeros((size, size, channels), np.uint8)
    for r in range(size):
        for c in range(size):
            x = top_left[0] + c * along_row[0] + r * along_column[0]
            y = top_left[1] + c * along_row[1] + r * along_column[1]
            left, top = int(np.floor(x)), int(np.floor(y))
            if left < 0 or top < 0 or left + 1 >= w or top + 1 >= h:
                continue
            lr, tb = x - left, y - top
            for k in range(channels):
                value = ((1 - tb) * ((1 - lr) * np.float64(source[top, left, k])
                                     + lr * np.float64(source[top, left + 1, k]))
                         + tb * ((1 - lr) * np.float64(source[top + 1, left, k])
                                 + lr * np.float64(source[top + 1, left + 1, k])))
                chip[r, c, k] = np.uint8(value)  # truncates, as dlib's cast does
    return chip


def extract_face_chips(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """dlib's extract_image_chips with bilinear sampling: RGB uint8 image → chips [N, S, S, 3].

    Where a chip shrinks the photo by 2x or more, dlib samples it from an image pyramid
    (pyramid_down<2>) instead, so that it does not alias. As in dlib, that pyramid is built once
    from the part of the photo around all the chips together (so a chip depends, by a grey
    level at most, on the other faces of its photo)."""
    size, count = details.size, len(details.rects)
    chips = np.zeros((count, size, size, 3), np.uint8)
    if count == 0:
        return chips
    h, w = image.shape[:2]
    depth = _pyramid_depth(details.rects, size)
    # the part of the photo that the chips need: each turned rectangle, grown for the filters'
    # borders (by 2, 6, 14, ... pixels for 0, 1, 2, ... levels), clipped to the photo, rounded
    # as dlib does (lround)
    corners = _turned_corners(details.rects, details.angles)
    grow = 2.0 * 2.0 ** depth + 2 * (2.0 ** depth - 1)  # grow = 2 * grow + 2 per level
    needed = np.stack([
        np.maximum(corners[..., 0].min(1) - grow, 0), np.maximum(corners[..., 1].min(1) - grow, 0),
        np.minimum(corners[..., 0].max(1) + grow, w - 1),
        np.minimum(corners[..., 1].max(1) + grow, h - 1)], 1)
    needed = _round_half_away(needed)
    needed = needed[(needed[:, 0] <= needed[:, 2]) & (needed[:, 1] <= needed[:, 3])]
    if len(needed) == 0:
        return chips
    left, top = needed[:, :2].min(0)
    right, bottom = needed[:, 2:].max(0)
    levels = [image[top:bottom + 1, left:right + 1]]
    for _ in range(depth.max()):
        levels.append(pyramid_down_2(levels[-1]))

    rects = details.rects - np.array([left, top, left, top])
    for i in range(count):
        rect = rects[i:i + 1]
        for _ in range(depth[i]):
            rect = _rect_down(rect)
        # the chip's corners (0, 0), (S - 1, 0), (0, S - 1) go to the turned rectangle's
        tl, tr, bl, _ = _turned_corners(rect, details.angles[i:i + 1])[0]
        source = levels[depth[i]]
        if source.size:
            chips[i] = _sample_chip(source, tl, (tr - tl) / max(size - 1, 1),
                                    (bl - tl) / max(size - 1, 1), size)
    return chips


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

    `backend="dlib"` runs dlib's own predictor and chips instead of facedist's NumPy ones (for
    the parity tests; needs the dlib package).

    >>> import numpy as np
    >>> from facedist.detect import FaceDetection
    >>> marks = np.array([[40, 45], [60, 45], [50, 55], [42, 66], [58, 66]], np.float32)
    >>> face = FaceDetection(np.array([30, 30, 70, 78], np.float32), 0.99, marks)
    >>> DlibChipAligner(views=2).align(np.zeros((100, 100, 3), np.uint8), [face]).shape
    (1, 2, 150, 150, 3)
    """

    def __init__(self, size: int = 150, padding: float = 0.25, views: int = 1,
                 backend: str = "numpy") -> None:
        if views not in (1, 2):
            raise ValueError("a dlib chip has 1 or 2 views")
        if backend not in ("numpy", "dlib"):
            raise ValueError(f"backend is 'numpy' or 'dlib', not {backend!r}")
        self.size = size
        self.padding = padding
        self.views = views
        self.backend = backend
        path = resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet")
        if backend == "dlib":
            import dlib

            self._dlib = dlib
            self.predictor = dlib.shape_predictor(str(path))
        else:
            self.predictor = ShapePredictor(path)
        # the template is for padding 0.25 at 150 px; other sizes scale it about the centre
        self.template = (CHIP_TEMPLATE_150 - 74.5) * (size / 150) + (size - 1) / 2

    @staticmethod
    def boxes(faces: list[FaceDetection]) -> np.ndarray:
        """The detector boxes as dlib rectangles: int [N, 4] (left, top, right, bottom)."""
        return np.array([[int(round(v)) for v in f.box] for f in faces], np.int64).reshape(-1, 4)

    def shapes(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        """dlib's 5 landmarks of each face, in its detector box: int [N, 5, 2]."""
        boxes = self.boxes(faces)
        if self.backend == "numpy":
            return self.predictor(image, boxes)
        return np.array([[(p.x, p.y) for p in self.predictor(image, self._dlib.rectangle(
            *map(int, box))).parts()] for box in boxes], np.int64).reshape(-1, 5, 2)

    def chips(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """dlib's face chips [N, S, S, 3] of one photo's faces from their 5-point landmarks."""
        if self.backend == "numpy":
            return extract_face_chips(image, face_chip_details(landmarks, self.size,
                                                               self.padding))
        dlib = self._dlib
        shapes = dlib.full_object_detections()
        for marks in landmarks:
            points = dlib.points()
            for x, y in marks:
                points.append(dlib.point(int(x), int(y)))
            shapes.append(dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), points))
        return np.stack([np.asarray(c, np.uint8) for c in dlib.get_face_chips(
            image, shapes, size=self.size, padding=self.padding)])

    def align(self, image: np.ndarray, faces: list[FaceDetection]) -> np.ndarray:
        out = np.empty((len(faces), self.views, self.size, self.size, 3), np.uint8)
        if not faces:
            return out
        image = np.ascontiguousarray(image)
        out[:, 0] = self.chips(image, self.shapes(image, faces))
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
