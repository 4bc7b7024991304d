import json

import numpy as np
from PIL import Image

from conftest import GOLDEN, HUMANS
from facedist.align import BoxAligner, DlibChipAligner
from facedist.config import DetectSettings
from facedist.detect import FaceDetection, MtcnnDetector


def test_box_crop_matches_reference_crops():
    """Largest face, margin 0, 160x160 — as the reference crops in golden/facenet were made."""
    ref = json.loads((GOLDEN / "facenet" / "facenet_reference.json").read_text())
    det = MtcnnDetector(DetectSettings(exact=True, faces="largest"))
    aligner = BoxAligner(160)
    for item in ref["crops"][:4]:
        img = np.asarray(Image.open(HUMANS / item["image"]).convert("RGB"))
        crop = aligner.align(img, det.detect(img))[0].astype(int)
        want = np.asarray(Image.open(GOLDEN / "facenet" / item["crop"]).convert("RGB")).astype(int)
        assert crop.shape == (160, 160, 3)
        assert np.abs(crop - want).mean() < 2.0, item


def test_box_partly_outside_is_clipped():
    img = np.zeros((100, 100, 3), np.uint8)
    face = FaceDetection(np.array([-20, -20, 50, 50], np.float32), 0.99, np.zeros((5, 2)))
    assert BoxAligner(160).align(img, [face]).shape == (1, 160, 160, 3)
    assert BoxAligner(160).align(img, []).shape == (0, 160, 160, 3)


def test_dlib_chip_is_upright_and_sized():
    img = np.asarray(Image.open(HUMANS / "1 (18).jpg").convert("RGB"))
    faces = MtcnnDetector(DetectSettings()).detect(img)
    chips = DlibChipAligner().align(img, faces)
    assert chips.shape == (len(faces), 150, 150, 3) and chips.dtype == np.uint8
    # the chip centres the face: its middle is brighter-varying skin, not flat background
    assert chips[0, 50:100, 50:100].std() > 10
