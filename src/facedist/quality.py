"""quality: how usable each face is for identity, a score in [0, 1].

Computed only from what the store keeps per face (box, five landmarks, detector probability,
embedding, the photo's size), so that any stored run can be scored again without its photos.
The cues (`cues`):

- `size`: the distance between the eyes in photo pixels (log2, capped: past about 32 px a face
  holds all the detail the 150 px chip can use, so bigger is no better);
- `yaw`: how far the nose sits off the face's midline (the line half-way between the eyes'
  and the mouth corners' midpoints), in eye distances: 0 frontal, about 0.5 in profile;
- `outside`: the share of the face's core outside the photo (a face cut by the edge): the box
  of its five landmarks grown by half an eye distance (a quarter above the eyes), not the detector's box, whose
  forehead and chin often pass the edge of a close-up portrait that is perfectly clear;
- `prob`: the detector's probability (as a logit: MTCNN's values crowd near 1);
- `recognizability` (Deng et al., CVPR 2023): unrecognizable faces (blurred, tiny, not faces)
  gather near one point of embedding space; the cosine distance to that point, the mean
  embedding of heavily degraded faces run through facedist itself (bench/quality.py). It is
  known for the models fitted there only (dlib's); others are scored without it.

Past `YAW_CLEAR` the score falls to 0 at `YAW_LIMIT`: on lfw-dev a labelled face turned that
far (yaw >= 0.35, 1% of them) has another person as its nearest face 15% of the time, against
5-6% below (bench/results-quality), and turned-away faces look alike whoever they are; LFW holds
too few of them for the regression to learn it.

`face_quality` combines them with a logistic regression on standardized cues fitted on lfw-dev
(bench/quality.py: the labelled face of each photo against the other detections, classes
weighted equally, a strong ridge so that no cue becomes a cliff) whose coefficients ship in
weights/quality-*.json: 0.5 means even odds of a usable face. Roll was dropped (alignment undoes
it; lfw-dev's faces are upright because an upright detector chose them), pitch too (it told
nothing): bench/results-quality/quality.md.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).parent / "weights"
SIZE_CAP = 32.0  # eye distance (px) past which a face is as good as it gets
# the face's core: its landmarks' box grown by these many eye distances (left, top, right,
# bottom); less above the eyes, where close-up portraits are cut at the forehead
CORE_MARGIN = np.array([-0.5, -0.25, 0.5, 0.5])
YAW_CLEAR, YAW_LIMIT = 0.35, 0.45  # yaw from which the score fades, and where it is 0


@functools.lru_cache(maxsize=None)
def fitted(model: str) -> dict:
    """The fitted combination of `model` (its recognizability centre included), else the one on
    the detector's cues alone, which every model shares."""
    name = "dlib-resnet" if model == "dlib-resnet-native" else model  # the same network
    path = WEIGHTS / f"quality-{name}.json"
    if not path.is_file():
        path = WEIGHTS / "quality-detector.json"
    spec = json.loads(path.read_text())
    spec["mean"], spec["scale"], spec["coef"] = (np.asarray(spec[k], np.float64)
                                                 for k in ("mean", "scale", "coef"))
    if spec.get("centre") is not None:
        centre = np.asarray(spec["centre"], np.float32)
        spec["centre"] = centre / np.linalg.norm(centre)
    return spec


def cues(boxes, landmarks, probs, embeddings, image_wh, model: str) -> dict[str, np.ndarray]:
    """The raw cues of N faces (module docstring): name -> [N] float64."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    marks = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    wh = np.asarray(image_wh, np.float64).reshape(-1, 2)
    left, right, nose, mouth = marks[:, 0], marks[:, 1], marks[:, 2], marks[:, 3:].mean(1)
    across = right - left
    eyes = np.maximum(np.linalg.norm(across, axis=1), 1e-6)
    unit = across / eyes[:, None]
    midline = ((left + right) / 2 + mouth) / 2
    yaw = np.abs(((nose - midline) * unit).sum(1)) / eyes
    roll = np.degrees(np.abs(np.arctan2(across[:, 1], across[:, 0])))
    # pitch: where the nose falls between the eyes' and the mouth's heights (about 0.5 frontal)
    down = np.stack([-unit[:, 1], unit[:, 0]], 1)
    drop = ((mouth - (left + right) / 2) * down).sum(1)
    pitch = ((nose - (left + right) / 2) * down).sum(1) / np.where(np.abs(drop) > 1e-6, drop, 1e-6)
    core = np.concatenate([marks.min(1), marks.max(1)], 1)
    core += CORE_MARGIN * eyes[:, None]
    w, h = core[:, 2] - core[:, 0], core[:, 3] - core[:, 1]
    inside_w = np.clip(np.minimum(core[:, 2], wh[:, 0]) - np.maximum(core[:, 0], 0), 0, None)
    inside_h = np.clip(np.minimum(core[:, 3], wh[:, 1]) - np.maximum(core[:, 1], 0), 0, None)
    outside = 1 - inside_w * inside_h / np.maximum(w * h, 1e-6)
    p = np.clip(np.asarray(probs, np.float64).reshape(-1), 1e-6, 1 - 1e-6)
    found = {"size": np.log2(np.clip(eyes, 1.0, SIZE_CAP)), "yaw": yaw, "roll": roll,
             "pitch": pitch, "outside": np.clip(outside, 0, 1), "prob": np.log(p / (1 - p))}
    centre = fitted(model).get("centre")
    emb = np.asarray(embeddings, np.float32)
    if centre is not None and emb.ndim == 2 and emb.shape[1] == len(centre):
        norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", emb, emb)), 1e-12)  # no N x d square
        found["recognizability"] = 1 - (emb @ centre).astype(np.float64) / norms
    return found


def face_quality(boxes, landmarks, probs, embeddings, image_wh, model: str) -> np.ndarray:
    """Each face's quality in [0, 1] ([N] float32): the fitted combination of its cues."""
    spec = fitted(model)
    found = cues(boxes, landmarks, probs, embeddings, image_wh, model)
    if len(spec["cues"]) and spec["cues"][-1] == "recognizability" and "recognizability" not in found:
        spec = fitted("detector")  # embeddings of another size than the centre's
    x = np.stack([found[c] for c in spec["cues"]], 1) if len(boxes) else np.zeros((0, len(spec["cues"])))
    z = spec["intercept"] + ((x - spec["mean"]) / spec["scale"]) @ spec["coef"]
    pose = np.clip((YAW_LIMIT - found["yaw"]) / (YAW_LIMIT - YAW_CLEAR), 0, 1)
    return (pose / (1 + np.exp(-z))).astype(np.float32)


def fill_quality(table, sizes: dict[str, tuple[int, int]], model: str,
                 every: bool = False) -> np.ndarray:
    """Compute in place the quality of the faces of `table` (store.FaceTable) that have none
    (NaN), or of `every` face (a run: a newer facedist may score differently), from their
    photos' sizes (`sizes`: path -> (w, h)); returns which values changed."""
    rows = np.arange(len(table)) if every else np.flatnonzero(np.isnan(table.quality))
    changed = np.zeros(len(table), bool)
    if len(rows):
        indices = rows
        if len(rows) == len(table):  # a slice, not a copy of the embeddings (1M faces: 512 MB)
            rows = slice(None)
        # a photo without a recorded size: its faces' own extent (nothing counted outside)
        wh = table.boxes[rows, 2:].astype(np.float64)
        for at, i in enumerate(indices.tolist()):
            size = sizes.get(table.paths[i])
            if size:
                wh[at] = size
        q = face_quality(table.boxes[rows], table.landmarks[rows], table.probs[rows],
                         table.embeddings[rows], wh, model)
        changed[rows] = ~(np.abs(q - table.quality[rows]) < 1e-6)  # NaN before: changed
        table.quality[rows] = q
    return changed
