"""warmup: `python -m facedist.warmup` compiles, into numba's disk cache, every kernel a default
run uses (`make install` runs it), so that the first run is as fast as the second. A module of its
own: it calls every stage that has kernels, and no stage imports it."""
from __future__ import annotations

import numpy as np
import torch

from . import align, cluster
from .kernels import area_crops, area_resize, greedy_nms, integral_image, prelu_max_pool
from .nets import dlib_shape


def warm_up() -> None:
    """Compile (or load from numba's disk cache) every numba kernel that a default run uses (MTCNN
    here, dlib's landmarks and chips, the people merge loop), for every type it passes them:
    numba compiles once per signature, so a photo read-only or not, a chip sampled from the whole
    photo or a strided part of it, each has its own. `make install` runs this module; a first run
    then compiles nothing (tests/test_kernels.py checks it)."""
    # dlib's landmarks: a one-tree cascade with the dtypes read_shape_predictor gives
    predictor = object.__new__(dlib_shape.ShapePredictor)
    predictor.model = dlib_shape.ShapePredictorModel(
        np.eye(5, 2, dtype=np.float32), np.zeros((1, 2), np.int64),
        np.zeros((1, 2, 2), np.float32), np.zeros((1, 1, 1), np.int64),
        np.ones((1, 1, 1), np.int64), np.zeros((1, 1, 1), np.float32),
        np.zeros((1, 1, 2, 5, 2), np.float32))
    # chips: of the whole photo (one from its pyramid, one from the photo itself, contiguous),
    # and of a corner only (sampled from a strided view of the photo)
    whole = align.ChipDetails(np.array([[0.0, 0, 31, 31], [0, 0, 7, 7]]), np.zeros(2), 8)
    corner = align.ChipDetails(np.array([[0.0, 0, 7, 7]]), np.zeros(1), 8)
    photo = np.zeros((32, 32, 3), np.uint8)
    read_only = photo.copy()
    read_only.flags.writeable = False
    # decoded photos come read-only (Pillow's buffer) or not (reduced or grey ones, copies)
    for image in (photo, read_only):
        table = integral_image(image)
        area_resize(table, (12, 12))
        area_crops(table, np.array([[0, 0, 16, 16]]), 24)
        predictor(image, np.array([[4, 4, 27, 27]]))
        for details in (whole, corner):
            align.extract_face_chips(image, details)
    dlib_shape._decode_int_stream(np.frombuffer(bytes(2), np.uint8))  # read_bytes' buffer
    for kernel, stride in ((2, 2), (3, 2)):
        prelu_max_pool(torch.zeros(1, 2, 6, 6).contiguous(memory_format=torch.channels_last),
                       torch.ones(2), kernel, stride)
    greedy_nms(np.zeros((2, 4), np.float32), np.arange(2), 0.5, False, False)
    # people: the merge loop as people.assign_people calls it (float32 embeddings, seeds, photos)
    x = np.zeros((3, 2), np.float32)
    graph = cluster.Graph(3, np.array([0, 1]), np.array([1, 2]), np.array([0.1, 0.2]))
    seeds = np.full(3, -1, np.int64)
    cluster.average_linkage(x, graph, 0.5, seeds)
    cluster.average_linkage(x, graph, 0.5, seeds, np.array([0, 0, 1], np.int64))


if __name__ == "__main__":
    warm_up()
