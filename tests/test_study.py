"""The study's versions for the bench: on facenet-pytorch itself (installed by `make install`
without its pins) and on this project's reproduction, which must agree."""
import numpy as np
import pytest
import torch

from conftest import HUMANS, LABELED
from facedist.bench.study import ReproducedStudy, implementation
from facedist.bench.study_reference import FacenetPytorchStudy, _batched_nms, face_recognition_run


def _greedy(boxes, scores, idxs, threshold):
    """torchvision's batched_nms written out: per index, best first, drop IoU > threshold."""
    keep = []
    for i in np.argsort(-scores, kind="stable"):
        def iou(j):
            a, b = boxes[i], boxes[j]
            w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
            return w * h / (area(a) + area(b) - w * h)
        if all(idxs[j] != idxs[i] or iou(j) <= threshold for j in keep):
            keep.append(i)
    return keep


def test_batched_nms_shim_is_torchvisions_greedy_per_index(rng):
    xy = rng.uniform(0, 60, (80, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(8, 30, (80, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 80).astype(np.float32)
    idxs = rng.integers(0, 3, 80)
    kept = _batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs), 0.5)
    assert kept.tolist() == _greedy(boxes, scores, idxs, 0.5)
    assert len(set(idxs[kept.numpy()])) == 3  # each index keeps its own best


@pytest.mark.slow
def test_facenet_pytorch_and_the_reproduction_give_the_same_faces():
    """study-v3 on facenet-pytorch 2.6.0 and on the reproduction: the same box and embedding."""
    if implementation() != "facenet-pytorch":
        pytest.fail("facenet-pytorch 2.6.0 is not installed here, so study-v3 cannot be checked "
                    "against it: `make install-study` installs the bench's peers")
    theirs, ours = FacenetPytorchStudy("synthetic"), ReproducedStudy("synthetic")
    for name in ["1 (100).png", "1 (106).jpg", "1 (109).jpg"]:
        (box_a, vec_a), (box_b, vec_b) = theirs.embed_one(HUMANS / name), ours.embed_one(HUMANS / name)
        assert np.abs(box_a - box_b).max() < 0.01
        assert vec_a @ vec_b / np.linalg.norm(vec_a) / np.linalg.norm(vec_b) > 0.99999


def test_implementation_can_be_forced_to_the_reproduction(monkeypatch):
    monkeypatch.setenv("FACEDIST_STUDY", "reproduction")
    assert implementation() == "reproduction"


@pytest.mark.slow
def test_face_recognition_as_its_readme_calls_it():
    from PIL import ImageFile

    from facedist.monitor import Monitor

    paths = [LABELED / "groups" / "two_people.jpg", LABELED / "people" / "obama" / "obama_1.jpg"]
    found = face_recognition_run(paths, Monitor(enabled=False))
    assert [len(found[p.name]) for p in paths] == [2, 1]
    box, vec = found["obama_1.jpg"][0]
    assert vec.shape == (128,) and box[2] > box[0] and box[3] > box[1]
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # its import sets it: a run here must not keep it
