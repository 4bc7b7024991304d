"""dlib's 5-point face landmark predictor (shape_predictor_5_face_landmarks.dat) without dlib.

dlib's shape_predictor is a cascade of regression forests (Kazemi and Sullivan, 2014). Each level
of the cascade reads a few hundred pixels placed relative to the current guess of the shape,
walks its trees on differences of pairs of those pixels, and adds the leaves it reaches to the
shape. `ShapePredictor` runs that cascade (a numba kernel, face by face) and reproduces dlib's
arithmetic (float32 shapes, its rounding of points to pixels, its grey level of an RGB pixel),
so that its landmarks are dlib's, pixel for pixel.

`read_shape_predictor` reads the weights straight from dlib's serialized `.dat` (no dlib needed):
that file is nothing but a stream of dlib-encoded integers (see `dlib_resnet._read_int`); a float
is two of them, mantissa and exponent.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..jit import compiled
from .dlib_resnet import _read_int

NUM_PARTS = 5  # eyes' outer and inner corners, base of the nose


@dataclass(frozen=True)
class ShapePredictorModel:
    """The arrays of a shape predictor with C cascade levels of T trees, each tree with S splits
    and L = S + 1 leaves, each level reading P feature pixels.

    Shapes live in the normalized box: (0, 0) is the box's top-left corner, (1, 1) its
    bottom-right one.

    >>> from facedist.models import DLIB_SHAPE_PREDICTOR, resolve_file
    >>> model = load_shape_predictor(resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet"))
    >>> model.leaf_values.shape, model.tree_depth
    ((15, 500, 16, 5, 2), 4)
    """

    initial_shape: np.ndarray  # float32 [parts, 2]: the mean shape the cascade starts from
    anchor_index: np.ndarray  # int64 [C, P]: the part each feature pixel is placed relative to
    deltas: np.ndarray  # float32 [C, P, 2]: its offset from that part in the initial shape
    split_pixel_a: np.ndarray  # int64 [C, T, S]: a split compares feature pixels a and b ...
    split_pixel_b: np.ndarray  # int64 [C, T, S]
    split_threshold: np.ndarray  # float32 [C, T, S]: ... going left when a - b > threshold
    leaf_values: np.ndarray  # float32 [C, T, L, parts, 2]: the shape change at each leaf

    @property
    def tree_depth(self) -> int:
        return int(np.log2(self.leaf_values.shape[2]))


# -- reading dlib's .dat -----------------------------------------------------------------------

@compiled
def _decode_int_stream(buf):
    """All the dlib-encoded integers in `buf` (the encoding of `dlib_resnet._read_int`), and
    whether the bytes parsed as such a stream to their very end."""
    values = np.empty(len(buf) // 2 + 1, np.int64)  # each integer takes two bytes or more
    count = 0
    pos = 0
    while pos < len(buf):
        head = buf[pos]
        size = head & 0x0F
        # dlib writes at most 8 bytes and leaves bits 0x70 clear: anything else is not dlib's
        if size > 8 or head & 0x70 or pos + 1 + size > len(buf):
            return values[:count], False
        value = 0
        for k in range(size):
            value |= np.int64(buf[pos + 1 + k]) << (8 * k)
        values[count] = -value if head & 0x80 else value
        count += 1
        pos += 1 + size
    return values[:count], True


class _TokenReader:
    """Walks the integer stream of a .dat file, with errors that say what was expected."""

    def __init__(self, tokens: np.ndarray, path: Path) -> None:
        self.tokens, self.pos, self.path = tokens, 0, path

    def take(self, count: int, what: str) -> np.ndarray:
        if self.pos + count > len(self.tokens):
            raise ValueError(f"{self.path}: not a dlib shape predictor (ends inside {what})")
        out = self.tokens[self.pos:self.pos + count]
        self.pos += count
        return out

    def int(self, what: str, expect: int | None = None) -> int:
        value = int(self.take(1, what)[0])
        if expect is not None and value != expect:
            raise ValueError(f"{self.path}: not a dlib 5-point shape predictor ({what} is "
                             f"{value}, expected {expect})")
        return value


def _floats(pairs: np.ndarray) -> np.ndarray:
    """dlib's portable floats: (mantissa, exponent) pairs → float32 mantissa * 2**exponent."""
    pairs = pairs.reshape(-1, 2)
    if (pairs[:, 1] >= 32000).any():  # dlib's codes for inf and NaN
        raise ValueError("shape predictor holds an infinite or NaN value")
    return np.ldexp(pairs[:, 0].astype(np.float64), pairs[:, 1]).astype(np.float32)


def read_shape_predictor(path: str | Path) -> ShapePredictorModel:
    """The arrays of dlib's shape_predictor_5_face_landmarks.dat (dlib's `serialize` of a
    shape_predictor: version, initial shape, forests, anchor indices, deltas)."""
    path = Path(path)
    buf = path.read_bytes()
    # Check the head first, with the scalar reader: rejects another model without decoding it.
    try:
        version, pos = _read_int(buf, 0)
        rows, pos = _read_int(buf, pos)
        cols, pos = _read_int(buf, pos)
    except IndexError:
        raise ValueError(f"{path}: not a dlib shape predictor (too short)") from None
    if version != 1 or (abs(rows), abs(cols)) != (2 * NUM_PARTS, 1):
        raise ValueError(f"{path}: not a dlib 5-point shape predictor (version {version}, "
                         f"initial shape {abs(rows)}x{abs(cols)}, expected 1 and "
                         f"{2 * NUM_PARTS}x1)")
    tokens, complete = _decode_int_stream(np.frombuffer(buf, np.uint8))
    if not complete:
        raise ValueError(f"{path}: not a dlib shape predictor (not dlib's integer encoding)")
    reader = _TokenReader(tokens, path)
    reader.take(3, "header")
    coords = 2 * NUM_PARTS
    initial_shape = _floats(reader.take(2 * coords, "initial shape")).reshape(NUM_PARTS, 2)

    # forests: per level, T trees, each [S, then S x (a, b, mantissa, exponent), L, then L
    # leaves of (rows, cols, coords x (mantissa, exponent))]. Every tree has the same shape,
    # so a level is a [T, tree length] block of tokens.
    levels = reader.int("number of cascade levels")
    pixel_a, pixel_b, thresholds, leaves = [], [], [], []
    for _ in range(levels):
        trees = reader.int("number of trees")
        splits = int(reader.tokens[reader.pos])  # the first tree's, checked for all below
        leaf_count = splits + 1
        leaf_length = 2 + 2 * coords
        tree_length = 1 + 4 * splits + 1 + leaf_count * leaf_length
        block = reader.take(trees * tree_length, "the trees").reshape(trees, tree_length)
        split_part = block[:, 1:1 + 4 * splits].reshape(trees, splits, 4)
        leaf_part = block[:, 2 + 4 * splits:].reshape(trees, leaf_count, leaf_length)
        if (leaf_count & splits or (block[:, 0] != splits).any()
                or (block[:, 1 + 4 * splits] != leaf_count).any()
                or (np.abs(leaf_part[:, :, :2]) != (coords, 1)).any()):
            raise ValueError(f"{path}: not a dlib 5-point shape predictor (trees of "
                             f"different sizes, or not full binary trees)")
        pixel_a.append(split_part[:, :, 0])
        pixel_b.append(split_part[:, :, 1])
        thresholds.append(_floats(split_part[:, :, 2:]).reshape(trees, splits))
        leaves.append(_floats(leaf_part[:, :, 2:]).reshape(trees, leaf_count, NUM_PARTS, 2))

    reader.int("number of levels of anchor indices", levels)
    anchors = []
    for _ in range(levels):
        pixels = reader.int("number of feature pixels")
        anchors.append(reader.take(pixels, "anchor indices").copy())
    reader.int("number of levels of deltas", levels)
    deltas = []
    for anchor in anchors:
        reader.int("number of deltas", len(anchor))
        deltas.append(_floats(reader.take(4 * len(anchor), "deltas")).reshape(-1, 2))
    if reader.pos != len(tokens):
        raise ValueError(f"{path}: not a dlib shape predictor ({len(tokens) - reader.pos} "
                         f"values left over)")
    try:
        model = ShapePredictorModel(
            initial_shape, np.stack(anchors), np.stack(deltas), np.stack(pixel_a),
            np.stack(pixel_b), np.stack(thresholds), np.stack(leaves))
    except ValueError:  # np.stack: levels of different sizes
        raise ValueError(f"{path}: cascade levels of different sizes are not supported") from None
    if (model.anchor_index.max() >= NUM_PARTS
            or max(model.split_pixel_a.max(), model.split_pixel_b.max())
            >= model.anchor_index.shape[1]):
        raise ValueError(f"{path}: index out of range in the shape predictor")
    return model


def load_shape_predictor(path: str | Path) -> ShapePredictorModel:
    """`read_shape_predictor`, once per process and file (the 5-point model is ~9 MB)."""
    return _load_once(str(Path(path).resolve()))


@lru_cache(maxsize=4)
def _load_once(path: str) -> ShapePredictorModel:
    return read_shape_predictor(path)


# -- running it --------------------------------------------------------------------------------

class ShapePredictor:
    """dlib's 5-point landmarks for many face boxes at once.

    Boxes are dlib rectangles, integer and inclusive: (left, top, right, bottom), the right
    column and the bottom row inside the box. Landmarks come as dlib gives them, whole pixels.

    >>> import numpy as np
    >>> from facedist.models import DLIB_SHAPE_PREDICTOR, resolve_file
    >>> predictor = ShapePredictor(resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet"))
    >>> predictor(np.zeros((100, 100, 3), np.uint8), np.array([[20, 20, 79, 79]])).shape
    (1, 5, 2)
    """

    def __init__(self, path: str | Path) -> None:
        self.model = load_shape_predictor(path)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """RGB (or grey) uint8 image [H, W(, 3)], int boxes [N, 4] → int64 landmarks [N, 5, 2]."""
        return self.predict_many([image], [boxes])[0]

    def predict_many(self, images: list[np.ndarray],
                     boxes: list[np.ndarray]) -> list[np.ndarray]:
        """Landmarks for the boxes of many photos: images[i] with boxes[i] [n_i, 4] → a list
        of [n_i, 5, 2]."""
        m = self.model
        out = []
        for image, found in zip(images, boxes):
            image = np.asarray(image)
            if image.ndim == 2 or image.shape[2] == 1:  # grey g reads as (g + g + g) // 3 = g
                image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, 2)
            out.append(_cascade_rgb(np.ascontiguousarray(image),
                                    np.asarray(found, np.int64).reshape(-1, 4), m.initial_shape,
                                    m.anchor_index, m.deltas, m.split_pixel_a, m.split_pixel_b,
                                    m.split_threshold, m.leaf_values))
        return out


@compiled
def _cascade_rgb(image, boxes, initial, anchor_index, deltas, pixel_a, pixel_b, thresholds,
                 leaves):
    # The cascade for the boxes [N, 4] of one RGB photo, in dlib's arithmetic (landmarks equal
    # to dlib's, pixel for pixel): per level, the similarity from the initial shape to the
    # current one (Umeyama, closed form in 2-D: [[a, -b], [b, a]]) in double, cast to float32;
    # each feature pixel its anchor part plus the turned delta, in float32, mapped into the box
    # in double and rounded as dlib's point conversion does, floor(v + 0.5); outside the photo
    # it reads 0, inside the grey level (r + g + b) // 3; each tree walked (left child 2i + 1
    # when a - b > threshold) and its leaf added to the float32 shape in tree order.
    levels, trees, splits = pixel_a.shape
    parts = initial.shape[0]
    height, width = image.shape[0], image.shape[1]
    out = np.empty((boxes.shape[0], parts, 2), np.int64)
    src = initial.astype(np.float64)
    src_mean_x, src_mean_y = src[:, 0].mean(), src[:, 1].mean()
    norm = 0.0
    for k in range(parts):
        norm += (src[k, 0] - src_mean_x) ** 2 + (src[k, 1] - src_mean_y) ** 2
    features = np.empty(anchor_index.shape[1], np.float32)
    for n in range(boxes.shape[0]):
        left, top = np.float64(boxes[n, 0]), np.float64(boxes[n, 1])
        box_width = np.float64(boxes[n, 2] - boxes[n, 0])
        box_height = np.float64(boxes[n, 3] - boxes[n, 1])
        shape = initial.copy()
        for level in range(levels):
            dst_mean_x, dst_mean_y = 0.0, 0.0
            for k in range(parts):
                dst_mean_x += np.float64(shape[k, 0])
                dst_mean_y += np.float64(shape[k, 1])
            dst_mean_x /= parts
            dst_mean_y /= parts
            a = 0.0
            b = 0.0
            for k in range(parts):
                sx, sy = (src[k, 0] - src_mean_x) / norm, (src[k, 1] - src_mean_y) / norm
                dx, dy = np.float64(shape[k, 0]) - dst_mean_x, np.float64(shape[k, 1]) - dst_mean_y
                a += dx * sx + dy * sy
                b += dy * sx - dx * sy
            ta, tb = np.float32(a), np.float32(b)
            for p in range(anchor_index.shape[1]):
                anchor = anchor_index[level, p]
                ddx, ddy = deltas[level, p, 0], deltas[level, p, 1]
                px = (ta * ddx + (-tb) * ddy) + shape[anchor, 0]
                py = (tb * ddx + ta * ddy) + shape[anchor, 1]
                x = np.int64(np.floor(np.float64(px) * box_width + left + 0.5))
                y = np.int64(np.floor(np.float64(py) * box_height + top + 0.5))
                if 0 <= x < width and 0 <= y < height:
                    features[p] = np.float32((np.int64(image[y, x, 0]) + np.int64(image[y, x, 1])
                                              + np.int64(image[y, x, 2])) // 3)
                else:
                    features[p] = 0.0
            for t in range(trees):
                node = 0
                while node < splits:
                    diff = features[pixel_a[level, t, node]] - features[pixel_b[level, t, node]]
                    node = 2 * node + 1 if diff > thresholds[level, t, node] else 2 * node + 2
                leaf = leaves[level, t, node - splits]
                for k in range(parts):
                    shape[k, 0] += leaf[k, 0]
                    shape[k, 1] += leaf[k, 1]
        for k in range(parts):
            out[n, k, 0] = np.int64(np.floor(np.float64(shape[k, 0]) * box_width + left + 0.5))
            out[n, k, 1] = np.int64(np.floor(np.float64(shape[k, 1]) * box_height + top + 0.5))
    return out
