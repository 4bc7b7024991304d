"""dlib's 5-point shape predictor and face chip in NumPy (nets/dlib_shape.py, align.py): unit
tests without dlib, then parity with dlib itself on the shared photos."""
import numpy as np
import pytest
from PIL import Image

from conftest import HUMANS, LABELED, require
from facedist.align import (DLIB_FACE_TEMPLATE_5, DlibChipAligner, extract_face_chips,
                            face_chip_details, pyramid_down_2, similarity_transform)
from facedist.models import DLIB_SHAPE_PREDICTOR, resolve_file
from facedist.nets.dlib_resnet import _read_int
from facedist.nets.dlib_shape import (ShapePredictor, _decode_int_stream, load_shape_predictor,
                                      read_shape_predictor)

DAT = resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet")


# -- reader -------------------------------------------------------------------------------------

def test_reader_gives_the_packaged_model_sizes():
    model = load_shape_predictor(str(DAT))
    assert model.initial_shape.shape == (5, 2) and model.initial_shape.dtype == np.float32
    assert model.anchor_index.shape == (15, 800) and model.deltas.shape == (15, 800, 2)
    assert model.split_pixel_a.shape == model.split_threshold.shape == (15, 500, 15)
    assert model.leaf_values.shape == (15, 500, 16, 5, 2) and model.tree_depth == 4
    assert 0 < model.initial_shape.min() and model.initial_shape.max() < 1  # inside the box
    assert model.anchor_index.max() == 4 and model.split_pixel_b.max() < 800
    assert load_shape_predictor(DAT) is model  # parsed once per process


def test_bulk_decoder_reads_ints_as_read_int_does():
    buf = DAT.read_bytes()[:20000]
    pos, scalar = 0, []
    while pos < 19000:
        value, pos = _read_int(buf, pos)
        scalar.append(value)
    bulk, _ = _decode_int_stream(np.frombuffer(buf[:pos], np.uint8))
    assert bulk.tolist() == scalar


def test_reader_rejects_what_is_not_a_5_point_predictor(tmp_path):
    good = DAT.read_bytes()
    cases = {
        "random.dat": np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes(),
        "68_points.dat": bytes([1, 1, 0x81, 136, 0x81, 1]) + good[6:],  # a 136x1 initial shape
        "truncated.dat": good[:len(good) // 2],
        "longer.dat": good + bytes([1, 7]),
        "empty.dat": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="shape predictor"):
            read_shape_predictor(tmp_path / name)


def test_docstring_examples_run():
    import doctest

    import facedist.nets.dlib_shape as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- predictor ----------------------------------------------------------------------------------

def face_like_image(rng, h=120, w=100):
    """Noise with dark blobs where eyes and a nose would be: the trees take varied paths."""
    img = rng.integers(90, 200, (h, w, 3)).astype(np.uint8)
    for x, y in ((35, 45), (65, 45), (50, 70)):
        img[y - 5:y + 5, x - 7:x + 7] //= 3
    return img


def test_predictor_reads_dlibs_integer_mean_of_rgb(rng):
    """An RGB photo gives the landmarks of its grey version (r + g + b) // 3 (dlib's
    get_pixel_intensity): any other grey level (luminance weights, a rounded mean, uint8
    overflow in the sum) moves some of the 30 faces' landmarks."""
    predictor = ShapePredictor(DAT)
    rgb = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    grey = (rgb.astype(np.int64).sum(2) // 3).astype(np.uint8)
    boxes = np.array([[x, y, x + 79, y + 79] for x in range(0, 80, 16) for y in range(0, 80, 16)])
    assert np.array_equal(predictor(rgb, boxes), predictor(grey, boxes))
    rounded = np.round(rgb.astype(np.float64).mean(2)).astype(np.uint8)
    assert not np.array_equal(predictor(rgb, boxes), predictor(rounded, boxes))


def test_predictor_is_deterministic_and_batches_photos(rng):
    predictor = ShapePredictor(DAT)
    a, b = face_like_image(rng), face_like_image(rng, 90, 130)
    boxes_a, boxes_b = np.array([[10, 20, 89, 99], [0, 0, 59, 59]]), np.array([[30, 5, 110, 85]])
    marks_a = predictor(a, boxes_a)
    assert marks_a.shape == (2, 5, 2) and marks_a.dtype == np.int64
    assert np.array_equal(marks_a, predictor(a.copy(), boxes_a))
    both = predictor.predict_many([a, b], [boxes_a, boxes_b])
    assert np.array_equal(both[0], marks_a) and np.array_equal(both[1], predictor(b, boxes_b))
    assert predictor(a, np.zeros((0, 4))).shape == (0, 5, 2)
    # landmarks in and around the box: eyes above the nose
    box = boxes_a[0]
    assert (marks_a[0] >= box[:2] - 10).all() and (marks_a[0] <= box[2:] + 10).all()
    assert marks_a[0, :4, 1].max() < marks_a[0, 4, 1]


def test_predictor_reads_pixels_outside_the_photo_as_black(rng):
    """A box half outside the photo gives the landmarks of the same box in the photo padded
    with black; so reading outside as anything but 0 (or a wrong image stride) fails."""
    predictor = ShapePredictor(DAT)
    img = face_like_image(rng)
    box = np.array([[-30, -25, 59, 69]])
    padded = np.zeros((img.shape[0] + 40, img.shape[1] + 40, 3), np.uint8)
    padded[40:, 40:] = img
    assert np.array_equal(predictor(img, box) + 40, predictor(padded, box + 40))


def test_predictor_moves_with_the_photo(rng):
    """Shifting photo and box by whole pixels shifts the landmarks by as much."""
    predictor = ShapePredictor(DAT)
    img = face_like_image(rng)
    box = np.array([[12, 15, 87, 104]])
    assert np.array_equal(predictor(img, box) - (3, 7), predictor(img[7:, 3:], box - [3, 7, 3, 7]))


# -- chip ---------------------------------------------------------------------------------------

def ramp_image(h, w, step=1.0):
    """Red = x * step, green = y * step: a chip of it shows where each of its pixels came from."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * step, y * step, np.full_like(x, 128)], -1).astype(np.uint8)


@pytest.mark.parametrize("zoom", [1.0, 3.0])
def test_chip_puts_the_landmarks_on_dlibs_template(zoom):
    """Landmarks placed where a known turn + scale takes the template: the chip shows, at each
    template point, the photo at that landmark (read back from a ramp image). At zoom 3 the
    chip comes from the image pyramid."""
    size, padding = 150, 0.25
    template = (padding + DLIB_FACE_TEMPLATE_5) / (2 * padding + 1) * size
    angle = 0.2
    turn = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    marks = template @ turn.T + (40, 10)
    step = 1 / zoom  # keeps the ramp under 255 at either zoom
    img = ramp_image(int(250 * zoom), int(250 * zoom), step)
    details = face_chip_details(marks[None], size, padding)
    chip = extract_face_chips(img, details)
    assert chip.shape == (1, size, size, 3)
    for (u, v), (x, y) in zip(template, marks):
        got = chip[0, int(round(v)), int(round(u)), :2].astype(float)
        assert np.abs(got - (x * step, y * step)).max() <= 1.5, (u, v, x, y, got)


def test_chip_of_turned_landmarks_is_upright():
    """The chip's geometry is the similarity from template to landmarks."""
    marks = np.array([[120, 50], [100, 52], [40, 50], [60, 52], [80, 100]], float)
    details = face_chip_details(marks[None])
    size, padding = 150, 0.25
    template = (padding + DLIB_FACE_TEMPLATE_5) / (2 * padding + 1) * size
    to_image = similarity_transform(template, marks)
    assert np.isclose(details.angles[0], np.arctan2(to_image[1, 0], to_image[0, 0]))
    centre = (details.rects[0, :2] + details.rects[0, 2:]) / 2
    assert np.allclose(centre, to_image[:, :2] @ (75, 75) + to_image[:, 2])


def test_pyramid_down_is_dlibs_binomial_filter():
    img = np.zeros((20, 16, 3), np.uint8)
    img[6, 6] = 255  # an impulse at (6, 6) lands on output (2, 2) with weight 6 * 6 / 256
    down = pyramid_down_2(img)
    assert down.shape == ((20 - 3) // 2, (16 - 3) // 2, 3)
    assert down[2, 2].tolist() == [255 * 36 // 256] * 3
    assert down[2, 1].tolist() == [255 * 6 // 256] * 3 and down[1, 2, 0] == 255 * 6 // 256
    assert down.sum() == (255 * np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[::2, ::2] // 256
                          ).sum() * 3  # the taps that fall on kept pixels, each floored
    assert np.all(pyramid_down_2(np.full((30, 30, 3), 200, np.uint8)) == 200)
    assert pyramid_down_2(np.zeros((8, 50, 3), np.uint8)).size == 0


# -- parity with dlib (needs the dlib package and the shared photos) ----------------------------

def photos():
    humans = sorted(p for p in HUMANS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return humans[:40] + sorted(p for p in LABELED.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def both_backends():
    """For each photo with faces: dlib's landmarks and chips and ours (also our chips cut from
    dlib's landmarks, to test the chip on its own), and both aligners' output."""
    require("dlib")
    from facedist.config import DetectSettings
    from facedist.detect import MtcnnDetector

    detector = MtcnnDetector(DetectSettings())
    ours, theirs = DlibChipAligner(), DlibChipAligner(backend="dlib")
    found = []
    for path in photos():
        img = np.asarray(Image.open(path).convert("RGB"))
        faces = detector.detect(img)
        if faces:
            dlib_marks = theirs.shapes(img, faces)
            found.append(dict(marks=ours.shapes(img, faces), dlib_marks=dlib_marks,
                              chips=ours.chips(img, dlib_marks),
                              dlib_chips=theirs.chips(img, dlib_marks),
                              aligned=ours.align(img, faces)[:, 0],
                              dlib_aligned=theirs.align(img, faces)[:, 0]))
    assert sum(len(f["marks"]) for f in found) >= 60
    return found


@pytest.mark.slow
def test_landmarks_match_dlib(both_backends):
    diff = max(np.abs(f["marks"] - f["dlib_marks"]).max() for f in both_backends)
    assert diff <= 0.5  # whole pixels both: equal


@pytest.mark.slow
def test_chips_match_dlib(both_backends):
    diffs = np.concatenate([np.abs(f["chips"].astype(int) - f["dlib_chips"]).ravel()
                            for f in both_backends])
    assert diffs.max() <= 1
    assert (diffs > 0).mean() < 1e-4  # one grey level, in a few pixels of a million


@pytest.mark.slow
def test_embeddings_of_our_chips_match_dlibs(both_backends):
    from facedist.embed import build_embedder
    from facedist.models import get_spec

    embedder = build_embedder(get_spec("dlib-resnet"), device="cpu")
    ours = embedder.embed_batch(np.concatenate([f["aligned"] for f in both_backends]))
    theirs = embedder.embed_batch(np.concatenate([f["dlib_aligned"] for f in both_backends]))
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.9999, cos.min()
