"""quality.py: the score's range and the direction of each cue, on made-up faces (no shared data)."""
import numpy as np
import pytest

from facedist import quality
from facedist.store import FaceTable

MODEL = "dlib-resnet"


def frontal(eye_px: float = 40.0, at=(300.0, 300.0)) -> tuple[np.ndarray, np.ndarray]:
    """A frontal upright face's box and landmarks (eyes, nose, mouth corners), eyes `eye_px` apart."""
    cx, cy = at
    d = eye_px
    marks = np.array([[cx - d / 2, cy], [cx + d / 2, cy], [cx, cy + 0.5 * d],
                      [cx - 0.4 * d, cy + d], [cx + 0.4 * d, cy + d]], np.float32)
    box = np.array([cx - d, cy - 0.9 * d, cx + d, cy + 1.6 * d], np.float32)
    return box, marks


def typical_embedding(n: int = 1) -> np.ndarray:
    """Unit vectors as far from the unrecognizable centre as real faces are (cosine about 0.89)."""
    centre = quality.fitted(MODEL)["centre"]
    other = np.zeros_like(centre)
    other[np.argmin(np.abs(centre))] = 1.0
    other -= (other @ centre) * centre
    other /= np.linalg.norm(other)
    v = 0.89 * centre + np.sqrt(1 - 0.89 ** 2) * other
    return np.tile(v, (n, 1)).astype(np.float32)


def score(boxes, marks, probs=None, emb=None, wh=(640, 480), model=MODEL) -> np.ndarray:
    boxes, marks = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(marks, np.float32).reshape(-1, 5, 2)
    n = len(boxes)
    probs = np.full(n, 0.999, np.float32) if probs is None else np.asarray(probs, np.float32)
    emb = typical_embedding(n) if emb is None else emb
    return quality.face_quality(boxes, marks, probs, emb, np.tile(wh, (n, 1)), model)


def test_range_and_type():
    rng = np.random.default_rng(0)
    boxes, marks = frontal()
    n = 200
    b = boxes + rng.normal(0, 300, (n, 4)).astype(np.float32)
    m = marks + rng.normal(0, 100, (n, 5, 2)).astype(np.float32)
    emb = rng.normal(size=(n, 128)).astype(np.float32)
    q = score(b, m, rng.uniform(0, 1, n), emb)
    assert q.dtype == np.float32 and q.shape == (n,)
    assert np.all((q >= 0) & (q <= 1)) and np.isfinite(q).all()
    # and a clear face scores well, else the gate would drop every face
    assert score(*frontal())[0] > 0.5


def test_cut_by_the_edge_scores_lower():
    box, marks = frontal(at=(320, 240))
    inside = score(box, marks)[0]
    shift = np.float32((box[0] + box[2]) / 2)  # the box's centre onto the photo's left edge
    half_out = score(box - [shift, 0, shift, 0], marks - [shift, 0], wh=(640, 480))[0]
    c = quality.cues((box - [shift, 0, shift, 0])[None], (marks - [shift, 0])[None], [0.999],
                     typical_embedding(), [[640, 480]], MODEL)
    assert c["outside"][0] == pytest.approx(0.5, abs=0.02)
    assert half_out < inside - 0.1


def test_turned_face_scores_lower():
    box, marks = frontal()
    turned = marks.copy()
    turned[2, 0] = marks[1, 0]  # the nose at the right eye's x: a face in near profile
    assert quality.cues(box[None], turned[None], [0.999], typical_embedding(), [[640, 480]],
                        MODEL)["yaw"][0] == pytest.approx(0.5, abs=0.01)
    assert score(box, turned)[0] < score(box, marks)[0] - 0.02


def test_tiny_face_scores_lower():
    assert score(*frontal(eye_px=6))[0] < score(*frontal(eye_px=40))[0] - 0.2


def test_unrecognizable_embedding_scores_lower():
    centre = quality.fitted(MODEL)["centre"][None].astype(np.float32)
    box, marks = frontal()
    at_centre = score(box, marks, emb=centre)[0]
    away = score(box, marks, emb=typical_embedding())[0]
    assert at_centre < away - 0.02
    # a model without a fitted centre has no recognizability cue, and is scored all the same
    q = score(box, marks, emb=np.zeros((1, 512), np.float32), model="facenet-vggface2")
    assert "recognizability" not in quality.cues(box[None], marks[None], [0.999], np.zeros((1, 512)),
                                                 [[640, 480]], "facenet-vggface2")
    assert 0.5 < q[0] <= 1


def test_no_faces():
    empty = dict(boxes=np.zeros((0, 4)), landmarks=np.zeros((0, 5, 2)), probs=np.zeros(0),
                 embeddings=np.zeros((0, 128), np.float32), image_wh=np.zeros((0, 2)))
    for model in (MODEL, "facenet-vggface2"):
        q = quality.face_quality(**empty, model=model)
        assert q.shape == (0,) and q.dtype == np.float32
        assert all(v.shape == (0,) for v in quality.cues(**empty, model=model).values())


def test_fill_quality_only_fills_missing():
    box, marks = frontal()
    table = FaceTable(np.array([1, 2]), ["a.jpg", "b.jpg"], np.zeros(2, np.int64), np.stack([box, box]),
                      np.full(2, 0.999, np.float32), typical_embedding(2), np.stack([marks, marks]),
                      np.array([0.25, np.nan], np.float32))
    filled = quality.fill_quality(table, {"a.jpg": (640, 480), "b.jpg": (640, 480)}, MODEL)
    assert filled.tolist() == [False, True]
    assert table.quality[0] == np.float32(0.25)
    assert table.quality[1] == pytest.approx(score(box, marks)[0])
