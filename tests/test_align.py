import json

import numpy as np
import pytest
from PIL import Image

from conftest import GOLDEN, HUMANS
from facedist.align import BoxAligner, DlibChipAligner, similarity_transform, warp_chip
from facedist.config import DetectSettings
from facedist.detect import FaceDetection, MtcnnDetector


@pytest.mark.slow  # the shared photos or golden data
def test_box_crop_matches_reference_crops():
    """Largest face, margin 0, 160x160 — as the reference crops in golden/facenet were made."""
    ref = json.loads((GOLDEN / "facenet" / "facenet_reference.json").read_text())
    det = MtcnnDetector(DetectSettings(exact=True, faces="largest"))
    aligner = BoxAligner(160)
    for item in ref["crops"][:4]:
        img = np.asarray(Image.open(HUMANS / item["image"]).convert("RGB"))
        crop = aligner.align(img, det.detect(img))[0, 0].astype(int)
        want = np.asarray(Image.open(GOLDEN / "facenet" / item["crop"]).convert("RGB")).astype(int)
        assert crop.shape == (160, 160, 3)
        assert np.abs(crop - want).mean() < 2.0, item


def test_box_partly_outside_is_clipped():
    """The crop is the part of the box inside the image, resized: not padded with black."""
    img = np.zeros((100, 100, 3), np.uint8)
    img[:50, :50] = (255, 255, 255)  # exactly the box's part inside the image
    face = FaceDetection(np.array([-20, -20, 50, 50], np.float32), 0.99, np.zeros((5, 2)))
    crop = BoxAligner(160).align(img, [face])
    assert crop.shape == (1, 1, 160, 160, 3)
    assert crop.min() == 255  # padding, or a crop past the edge at x or y 50, would show black
    assert BoxAligner(160).align(img, []).shape == (0, 1, 160, 160, 3)


@pytest.mark.slow  # the shared photos or golden data
def test_dlib_chip_is_upright_and_sized():
    """Each chip is 150x150 with the face upright where the chip template puts it: MTCNN run on
    the chip finds eyes level and above the nose, the nose above the mouth, each point near the
    template, also when the photo is turned by 25 degrees (the warp must undo the turn)."""
    img = np.asarray(Image.open(HUMANS / "1 (18).jpg").convert("RGB"))
    det = MtcnnDetector(DetectSettings())
    aligner = DlibChipAligner(views=2)
    turned_25 = np.asarray(Image.fromarray(img).rotate(25, Image.BILINEAR, expand=True))
    for turned in (img, turned_25):
        faces = det.detect(turned)
        assert faces
        chips = aligner.align(turned, faces)
        assert chips.shape == (len(faces), 2, 150, 150, 3) and chips.dtype == np.uint8
        for view in (0, 1):
            [face] = det.detect(chips[0, view])[:1]
            eye_l, eye_r, nose, mouth_l, mouth_r = face.landmarks
            assert eye_l[0] < eye_r[0] and abs(eye_l[1] - eye_r[1]) < 6  # level, not mirrored
            assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
            assert np.abs(face.landmarks - aligner.template).max() < 15  # a tenth of the chip


def test_similarity_transform_recovers_a_known_warp(rng):
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot) and np.allclose(m[:, 2], shift)


def test_warp_chip_samples_where_the_transform_says(rng):
    img = rng.integers(0, 255, (80, 90, 3), dtype=np.uint8)
    shift = np.array([[1.0, 0, -7], [0, 1.0, -11]])  # chip (u, v) shows image (u + 7, v + 11)
    chip = warp_chip(img, shift, 20)
    assert np.array_equal(chip, img[11:31, 7:27])
    half = np.array([[0.5, 0, 0], [0, 0.5, 0]])  # a 2x shrink box-reduces first: no aliasing
    flat = np.zeros((40, 40, 3), np.uint8)
    flat[:, ::2] = 255  # stripes one pixel wide average to grey, not to black or white
    small = warp_chip(flat, half, 20)[2:-2, 2:-2].astype(int)
    assert np.abs(small - 127).max() <= 2


def test_dlib_chip_aligner_needs_no_dlib(monkeypatch):
    """The default dlib-chip aligner is facedist's own: it works where dlib cannot be imported."""
    import sys

    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    marks = np.array([[40, 45], [60, 45], [50, 55], [42, 66], [58, 66]], np.float32)
    face = FaceDetection(np.array([30, 30, 70, 78], np.float32), 0.99, marks)
    img = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    chips = DlibChipAligner().align(img, [face])
    assert chips.shape == (1, 1, 150, 150, 3) and chips.std() > 10  # the photo, not black
    with pytest.raises(ImportError):
        DlibChipAligner(backend="dlib")
    with pytest.raises(ValueError, match="backend"):
        DlibChipAligner(backend="opencv")
