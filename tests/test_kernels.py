"""The numba kernels against the torch / NumPy code they replace, and their warm-up."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from conftest import LABELED

from facedist.kernels import (area_crops, area_resize, greedy_nms, integral_image, pooled_size,
                              prelu_max_pool)


def torch_area(image: np.ndarray, size) -> np.ndarray:
    """The reference: torch area interpolation of the float image, then MTCNN's normalization."""
    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float()
    out = (F.interpolate(x, size=size, mode="area") - 127.5) * 0.0078125
    return out[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (301, 437, 3), dtype=np.uint8)


def test_integral_image_sums(photo):
    table = integral_image(photo)
    assert table.shape == (302, 438, 3) and table[0].max() == 0 and table[:, 0].max() == 0
    assert table[-1, -1].tolist() == photo.reshape(-1, 3).sum(0).tolist()
    assert table[120, 77].tolist() == photo[:120, :77].reshape(-1, 3).sum(0).tolist()


def test_wrapped_integral_of_a_big_photo_gives_exact_means():
    # 18.5 Mpx of bright pixels: the table's sums pass 2**32 and wrap (uint32, a quarter of the
    # int64 table's memory), yet every bin's mean comes out as a direct mean
    rng = np.random.default_rng(5)
    photo = rng.integers(220, 256, (4300, 4300, 3), dtype=np.uint8)
    table = integral_image(photo)
    assert table.dtype == np.uint32 and photo[:, :, 0].sum(dtype=np.int64) >= 2**32
    means = photo.reshape(43, 100, 43, 100, 3).mean((1, 3), dtype=np.float64)
    np.testing.assert_allclose(area_resize(table, (43, 43)), (means - 127.5) / 128, rtol=0, atol=2e-6)
    crop = area_crops(table, np.array([[4000, 4000, 4300, 4300]]), 3)[0]
    direct = photo[4000:, 4000:].reshape(3, 100, 3, 100, 3).mean((1, 3), dtype=np.float64)
    np.testing.assert_allclose(crop, (direct - 127.5) / 128, rtol=0, atol=2e-6)


@pytest.mark.parametrize("size", [(181, 263), (128, 185), (12, 17), (301, 437), (5, 3)])
def test_area_resize_is_torch_area(photo, size):
    got = area_resize(integral_image(photo), size)
    np.testing.assert_allclose(got, torch_area(photo, size), rtol=0, atol=2e-6)


def test_area_crops_are_torch_area_of_each_window(photo):
    table = integral_image(photo)
    windows = np.array([[0, 0, 437, 301], [10, 20, 34, 44], [100, 5, 103, 200], [400, 290, 437, 301],
                        [7, 8, 8, 9]])
    crops = area_crops(table, windows, 24)
    assert crops.shape == (5, 24, 24, 3)
    for (x0, y0, x1, y1), crop in zip(windows, crops):
        np.testing.assert_allclose(crop, torch_area(photo[y0:y1, x0:x1], (24, 24)), rtol=0, atol=2e-6)


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2)])
@pytest.mark.parametrize("shape", [(1, 10, 23, 31), (3, 28, 22, 22), (2, 6, 3, 4), (1, 5, 10, 9)])
def test_fused_prelu_max_pool_equals_torch(kernel, stride, shape):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    slopes = torch.randn(shape[1])  # negative slopes too: max(prelu) is not prelu(max) then
    want = F.max_pool2d(F.prelu(x, slopes), kernel, stride, ceil_mode=True)
    got = prelu_max_pool(x, slopes, kernel, stride)
    assert got.shape == want.shape and torch.equal(got, want)
    assert pooled_size(shape[2], kernel, stride) == want.shape[2]


def plain_nms(boxes, order, threshold, use_min, one):
    """Greedy NMS written the obvious way, in float32 as the detector's boxes are: the box kept
    against every box still alive, elementwise (Python's min and max, NaN rules included)."""
    def lesser(a, b):  # min(a, b)
        return np.where(b < a, b, a)

    def greater(a, b):  # max(a, b)
        return np.where(b > a, b, a)

    zero = np.float32(0)
    keep, alive = [], np.asarray(order)
    while len(alive):
        i, rest = alive[0], alive[1:]
        keep.append(int(i))
        b, o = boxes[i], boxes[rest]
        iw = greater(zero, lesser(b[2], o[:, 2]) - greater(b[0], o[:, 0]) + one)
        ih = greater(zero, lesser(b[3], o[:, 3]) - greater(b[1], o[:, 1]) + one)
        a_i = (b[2] - b[0] + one) * (b[3] - b[1] + one)
        a_j = (o[:, 2] - o[:, 0] + one) * (o[:, 3] - o[:, 1] + one)
        denom = lesser(a_i, a_j) if use_min else a_i + a_j - iw * ih
        alive = rest[iw * ih / greater(denom, np.float32(1e-12)) <= threshold]
    return keep


@pytest.mark.parametrize("use_min,inclusive", [(False, False), (True, True), (False, True)])
def test_greedy_nms_equals_plain_greedy(use_min, inclusive):
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(1, 120))
        corner = np.round(rng.uniform(0, 150, (n, 2)) / 4) * 4  # many equal boxes and ties
        boxes = np.concatenate([corner, corner + rng.integers(4, 50, (n, 2))], 1).astype(np.float32)
        order = rng.permutation(n)
        one = np.float32(1.0 if inclusive else 0.0)
        want = plain_nms(boxes, order, np.float32(0.5), use_min, one)
        assert greedy_nms(boxes, order, 0.5, use_min, inclusive).tolist() == want


@pytest.mark.parametrize("use_min,inclusive", [(False, False), (True, True)])
def test_greedy_nms_grid_equals_plain_greedy_on_spread_and_mixed_boxes(use_min, inclusive):
    # the grid path: boxes of very different sizes, negative and far-flung corners, boxes that
    # only touch, and a busy field of same-size boxes like a P-Net level's
    rng = np.random.default_rng(11)
    one = np.float32(1.0 if inclusive else 0.0)
    for trial in range(12):
        n = 400
        corner = rng.uniform(-300, 3000, (n, 2))
        if trial % 3 == 1:
            corner[: n // 4] *= 1000  # a few boxes far away from the rest
        if trial % 3 == 2:
            corner = np.floor(rng.uniform(0, 400, (n, 2)) / 2) * 2
        side = rng.choice([3.0, 12.0, 40.0, 700.0], (n, 1)) * rng.uniform(0.8, 1.2, (n, 2))
        boxes = np.concatenate([corner, corner + side], 1).astype(np.float32)
        touching = boxes[:20].copy()
        touching[:, [0, 2]] += touching[:, 2:3] - touching[:, 0:1] + 1 - one
        boxes = np.concatenate([boxes, touching])
        order = rng.permutation(len(boxes))
        for threshold in (0.0, 0.3, 0.7):
            want = plain_nms(boxes, order, np.float32(threshold), use_min, one)
            assert greedy_nms(boxes, order, threshold, use_min, inclusive).tolist() == want


def test_greedy_nms_without_grid_still_suppresses():
    # a negative threshold suppresses even disjoint boxes; a NaN box must not break the rest
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    assert greedy_nms(boxes, np.arange(3), -1.0, False, False).tolist() == [0]
    boxes[1] = np.nan
    assert greedy_nms(boxes, np.arange(3), 0.5, False, False).tolist() == [0, 1]


def cache_state(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_after_the_warm_up_a_default_run_compiles_nothing(tmp_path):
    # numba caches a kernel per signature: each one a run compiles (a kernel, or a type, the
    # warm-up missed) adds or rewrites files in the cache, as the first run after install would
    photos = tmp_path / "photos"
    photos.mkdir()
    for source in ("people/obama/obama_1.jpg", "groups/obama_and_biden.jpg", "hard/rgba_32bit.png"):
        (photos / source.replace("/", "_")).write_bytes((LABELED / source).read_bytes())
    grey = np.asarray(Image.open(LABELED / "people/biden/biden_1.jpg").convert("L"), np.uint16)
    Image.fromarray(grey * 257).save(photos / "biden_grey16.png")  # decodes to a writable array
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    subprocess.run([sys.executable, "-m", "facedist.warmup"], env=env, check=True)
    warm = cache_state(tmp_path / "numba")
    assert len(warm) > 20
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "facedist", "run", str(photos), "--out", str(out), "-q"],
                   env=env, check=True)
    assert len(list(csv.DictReader(open(out / "faces.csv")))) >= 4
    after = cache_state(tmp_path / "numba")
    compiled = sorted({p.name.split("-")[0] for p in after if after[p] != warm.get(p)})
    assert not compiled, f"the run compiled kernels the warm-up left out: {compiled}"
