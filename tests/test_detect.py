import json

import numpy as np
import pytest
from PIL import Image

from conftest import GOLDEN, HUMANS, LABELED, SHARED
from facedist.config import DetectSettings
import torch

from facedist.backend import tf32_enabled
from facedist.detect import (MtcnnDetector, _DeviceTables, _IntegralSampler, _normalize,
                             _pack_levels, _TorchAreaSampler, nms, pyramid_scales)
from facedist.nets.mtcnn import max_pool_2x2_ceil


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.9).tolist() == [1, 0, 2]
    # "min": a small box inside a big one is suppressed even when IoU is low
    inner = np.array([[0, 0, 100, 100], [10, 10, 20, 20]], np.float32)
    assert nms(inner, np.array([0.9, 0.8]), 0.7, "min").tolist() == [0]
    assert nms(inner, np.array([0.9, 0.8]), 0.7, "union").tolist() == [0, 1]


def test_pyramid_covers_min_face_to_image():
    scales = pyramid_scales(1000, 800, 20, 0.709)
    assert scales[0] == pytest.approx(0.6)
    assert 800 * scales[-1] >= 12 > 800 * scales[-1] * 0.709


@pytest.mark.parametrize("shape", [(1, 10, 7, 9), (2, 3, 8, 8), (1, 4, 1, 5)])
def test_slice_max_pool_is_torch_max_pool(shape):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool_2x2_ceil(x), torch.nn.MaxPool2d(2, 2, ceil_mode=True)(x))


@pytest.mark.parametrize("height", [61, 62, 97, 130])
def test_pnet_in_bands_equals_pnet_on_the_whole_level(monkeypatch, height):
    import facedist.detect as detect

    monkeypatch.setattr(detect, "PNET_BAND_PIXELS", 900)  # bands of 8 output rows here
    fast = MtcnnDetector(DetectSettings())
    level = torch.randn(1, 3, height, 57).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        reg, prob = fast._pnet(level)
        whole_reg, whole_prob = fast.pnet(level)
    assert prob.shape == whole_prob.shape == (1, (height - 1) // 2 - 4, 24)
    torch.testing.assert_close(prob, whole_prob, rtol=0, atol=1e-5)  # float32 rounding
    torch.testing.assert_close(reg, whole_reg, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sizes", [[(61, 57), (40, 33), (25, 80)], [(30, 30), (30, 30)], [(13, 12)]])
def test_pnet_on_padded_levels_equals_pnet_on_each_level(sizes):
    """detect_many's P-Net over a padded batch: each level's cells as on the level alone (odd
    sizes pool a partial window at the edge, which the padding must not enter)."""
    pnet = MtcnnDetector(DetectSettings()).pnet
    gen = torch.Generator().manual_seed(0)
    levels = [torch.randn(1, 3, h, w, generator=gen) for h, w in sizes]
    batch = torch.zeros(len(sizes), 3, max(h for h, _ in sizes), max(w for _, w in sizes))
    for k, (h, w) in enumerate(sizes):
        batch[k, :, :h, :w] = levels[k][0]
    with torch.inference_mode():
        reg, prob = pnet.forward_padded(batch, torch.tensor(sizes))
        for k, level in enumerate(levels):
            one_reg, one_prob = pnet(level)
            rows, cols = one_prob.shape[1:]
            assert (rows, cols) == ((sizes[k][0] - 1) // 2 - 4, (sizes[k][1] - 1) // 2 - 4)
            torch.testing.assert_close(prob[k:k + 1, :rows, :cols], one_prob, rtol=0, atol=1e-5)
            torch.testing.assert_close(reg[k:k + 1, :, :rows, :cols], one_reg, rtol=0, atol=1e-5)


def test_device_tables_give_the_integral_samplers_values(rng):
    images = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(3)]
    ours = _DeviceTables(images, torch.device("cpu"))
    theirs = [_IntegralSampler(img, torch.device("cpu")) for img in images]
    for size in [(37, 53), (20, 29), (12, 12), (50, 70)]:
        levels = ours.levels(1, 3, size)
        for k in (1, 2):
            assert torch.equal(levels[k - 1], theirs[k].level(size)[0].permute(1, 2, 0))
    windows = np.array([[0, 0, 53, 37], [3, 5, 20, 30], [10, 10, 11, 12], [3, 5, 20, 30]])
    which = np.array([0, 2, 1, 1])
    crops = ours.crops(which, windows, 24)
    for n, k in enumerate(which):
        assert torch.equal(crops[n], theirs[k].crops(windows[n:n + 1], 24)[0].permute(1, 2, 0))


def test_exact_sampler_gives_the_references_bits(rng):
    """The exact mode resamples a planar copy of the photo; the reference resamples its
    channels-last view. torch's area kernel must give the same bits on both (it did on every
    level and 60 crops of 40 of the humans photos), or --exact is no longer the reference."""
    import torch.nn.functional as F

    image = rng.integers(0, 256, (613, 457, 3), dtype=np.uint8)
    ours = _TorchAreaSampler(image, torch.device("cpu"))
    theirs = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float()  # the reference's
    assert not theirs.is_contiguous()
    for scale in pyramid_scales(613, 457, 20, 0.709):
        size = (int(613 * scale + 1), int(457 * scale + 1))
        assert torch.equal(ours.level(size), _normalize(F.interpolate(theirs, size=size, mode="area")))
    windows = np.array([[0, 0, 457, 613], [3, 5, 20, 30], [100, 7, 101, 9], [17, 33, 400, 301]])
    for size in (24, 48):
        want = torch.cat([F.interpolate(theirs[:, :, y0:y1, x0:x1], size=(size, size), mode="area")
                          for x0, y0, x1, y1 in windows])
        assert torch.equal(ours.crops(windows, size), _normalize(want))


def test_levels_are_packed_once_each_with_little_padding():
    sizes = [(100, 100)] * 5 + [(98, 100), (60, 80), (59, 80), (10, 12), (400, 400)]
    jobs = [(g, 0, 1 + g % 2, 0, 1.0, size) for g, size in enumerate(sizes)]
    batches = list(_pack_levels(jobs, 30_000))
    assert sorted(j for b in batches for j in b) == sorted(jobs)
    for b in batches:
        rows = sum(j[2] - j[1] for j in b)
        padded = rows * max(j[5][0] for j in b) * max(j[5][1] for j in b)
        assert len(b) == 1 or (padded <= 30_000 and
                               padded <= 1.25 * sum((j[2] - j[1]) * j[5][0] * j[5][1] for j in b))
    assert [len(b) for b in batches][:1] == [1]  # the 400x400 level, over the budget, goes alone


@pytest.mark.slow  # the shared photos or golden data
def test_detection_never_runs_in_tf32(tf32_on):
    """TF32 convolutions moved MTCNN's boxes on a GPU (IoU 0.80 against the CPU): each network
    call of detection must see it off, whatever the process had, and find it as it was after."""
    det = MtcnnDetector(DetectSettings())
    seen = []
    hooks = [net.register_forward_pre_hook(lambda *_: seen.append(tf32_enabled()))
             for net in (det.pnet, det.rnet, det.onet)]
    img = np.asarray(Image.open(LABELED / "groups" / "two_people.jpg").convert("RGB"))
    try:
        assert len(det.detect(img)) == 2 and len(det.detect_many([img])[0]) == 2
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) >= 6 and not any(seen)
    assert tf32_enabled()


@pytest.fixture(scope="module")
def detector():
    return MtcnnDetector(DetectSettings(exact=True))


@pytest.mark.slow  # the shared photos or golden data
def test_largest_keeps_one_face(detector):
    img = np.asarray(Image.open(LABELED / "groups" / "two_people.jpg").convert("RGB"))
    everyone = detector.detect(img)
    one = MtcnnDetector(DetectSettings(exact=True, faces="largest")).detect(img)
    assert len(everyone) == 2 and len(one) == 1
    assert one[0].area == max(f.area for f in everyone)


def test_no_face_in_a_plain_image(detector):
    assert detector.detect(np.full((300, 400, 3), 128, np.uint8)) == []


def _reference_faces_found(detector: MtcnnDetector, names: list[str]) -> None:
    """The detector finds, in each full-resolution photo, the reference's faces: as many, and
    each box and its landmarks within 0.01 px (measured: 0.0013 px at worst, in both modes).
    One photo per core, each on one torch thread, as a run does."""
    from concurrent.futures import ThreadPoolExecutor

    golden = json.loads((GOLDEN / "mtcnn_humans.json").read_text())
    assert golden["settings"]["min_face_size"] == 20

    def detect(name: str):
        torch.set_num_threads(1)
        return detector.detect(np.asarray(Image.open(HUMANS / name).convert("RGB")))

    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(threads) as pool:
            found = dict(zip(names, pool.map(detect, names)))
    finally:
        torch.set_num_threads(threads)
    for name in names:
        ref, faces = golden["images"][name], found[name]
        assert len(faces) == len(ref["boxes"]), name
        for box, marks in zip(ref["boxes"], ref["landmarks"]):
            best = max(faces, key=lambda f: iou(f.box, box))
            assert np.abs(best.box - np.array(box[:4])).max() <= 0.01, name
            assert np.abs(best.landmarks - np.array(marks)).max() <= 0.01, name


@pytest.mark.slow
def test_full_resolution_gives_the_reference_faces():
    """--max-side 0 (every pyramid level, the fast kernels) on all 160 golden photos."""
    golden = json.loads((GOLDEN / "mtcnn_humans.json").read_text())
    _reference_faces_found(MtcnnDetector(DetectSettings(max_side=0)), list(golden["images"]))


@pytest.mark.slow
def test_exact_mode_gives_the_reference_faces(detector):
    """--exact on every 8th golden photo by size, the largest (15 Mpx) first: 20 photos of every
    size. All 160 take 3x longer than the full-resolution test; measured on all of them:
    0.0012 px at worst (docs/detection.md)."""
    golden = json.loads((GOLDEN / "mtcnn_humans.json").read_text())
    by_size = sorted(golden["images"], key=lambda n: -np.prod(Image.open(HUMANS / n).size))
    _reference_faces_found(detector, by_size[::8])


@pytest.mark.slow
def test_default_coarse_to_fine_agrees_with_reference():
    """Default (not --exact) detection on the humans photos against the full-resolution reference.

    Measured: counts agree on 155 of 160 images (the misses are the reference's 18-63 px
    detections on fabric, wool and shadow in 2500-5300 px photos, under the coarse levels' reach),
    matched boxes IoU >= 0.9 on all faces."""
    from facedist.decode import decode_image

    golden = json.loads((GOLDEN / "mtcnn_humans.json").read_text())["images"]
    det = MtcnnDetector(DetectSettings())
    same, matched = 0, []
    for name, ref in golden.items():
        img = decode_image(HUMANS / name, 10**9, det.settings.max_side)
        faces = det.detect(img.pixels, img.scale)
        same += len(faces) == len(ref["boxes"])
        for box in ref["boxes"]:
            best = max((iou(f.box * img.scale, box) for f in faces), default=0.0)
            if best > 0.5:
                matched.append(best)
    assert same >= 0.96 * len(golden), same
    assert np.mean(np.array(matched) >= 0.9) >= 0.99


@pytest.fixture(scope="module")
def photos_of_many_sizes():
    """Photos of many sizes, decoded as a run does, and each one's faces found alone."""
    from facedist.decode import decode_image

    lfw = sorted((SHARED / "data" / "lfw-dev").rglob("*.jpg"))[:24]  # one shape: stacked
    names = sorted(HUMANS.iterdir())[::8] + sorted((LABELED / "groups").iterdir()) + lfw
    images = [decode_image(p, 10**9, 1024) for p in names]
    det = MtcnnDetector(DetectSettings())
    return images, [det.detect(im.pixels, im.scale) for im in images]


def _same_faces(alone: list, together: list) -> None:
    assert len(together) == len(alone)
    for a, b in zip(alone, together):
        assert np.abs(a.box - b.box).max() < 0.01 and abs(a.prob - b.prob) < 1e-4
        assert np.abs(a.landmarks - b.landmarks).max() < 0.01


@pytest.mark.slow
def test_many_images_at_once_find_the_faces_of_each_alone(photos_of_many_sizes):
    """detect_many (the GPU path, here on CPU tensors) against detect, image by image, on photos
    of many sizes: the same faces, boxes and landmarks up to float rounding."""
    images, found_alone = photos_of_many_sizes
    many = MtcnnDetector(DetectSettings()).detect_many([im.pixels for im in images],
                                                       [im.scale for im in images])
    for alone, together in zip(found_alone, many):
        _same_faces(alone, together)
    assert sum(map(len, found_alone)) >= len(images)


@pytest.mark.slow
def test_many_images_at_once_keep_the_largest_face_of_each(photos_of_many_sizes):
    """faces="largest" in detect_many: of each photo with several faces (and one with one), the
    largest face alone finds. (Only the last step differs from the test above: on these photos.)"""
    images, found_alone = photos_of_many_sizes
    chosen = [i for i, faces in enumerate(found_alone) if len(faces) > 1]
    chosen.append(next(i for i, faces in enumerate(found_alone) if len(faces) == 1))
    assert len(chosen) >= 4
    many = MtcnnDetector(DetectSettings(faces="largest")).detect_many(
        [images[i].pixels for i in chosen], [images[i].scale for i in chosen])
    for i, together in zip(chosen, many):
        _same_faces(found_alone[i][:1], together)  # largest first
