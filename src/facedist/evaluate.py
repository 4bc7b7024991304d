"""evaluate: how right the identities are, on labelled photos (`facedist eval`).

- `lfw`: LFW's verification protocol on a folder laid out as LFW (`pairs.txt`, `lfw/<name>/
  <name>_<iiii>.jpg`): per fold, the accuracy at the threshold that is best on the other folds;
  mean and standard deviation over the folds. The face of a photo is the one nearest its centre;
  a photo where no face is found gets the median centre face box of the others (LFW's faces are
  centred), so that every pair is decided.
- `people`: BCubed precision, recall and F of the people of a run against folder names (one
  folder per person); the labelled face of a photo is its largest, or the one nearest the centre.
  Every face is clustered; only labelled faces are scored.

Both first run the pipeline on the photos (incremental: a second call reuses the database).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cluster import bcubed
from .config import Settings


@dataclass
class LfwResult:
    accuracy: float  # mean over folds, 0..1
    std: float
    folds: list[float]
    threshold: float  # mean of the per-fold thresholds
    pairs: int
    no_face: int  # photos where no face was found (median box used)
    thresholds: list[float] = field(default_factory=list)  # each fold's, chosen on the others


def read_pairs(path: Path) -> tuple[int, list[tuple[str, str, bool]]]:
    """LFW's pairs.txt: (number of folds, [(file a, file b, same person)]) in file order."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    folds, per_fold = int(lines[0][0]), int(lines[0][1])

    def name(person: str, i: str) -> str:
        return f"{person}/{person}_{int(i):04d}.jpg"

    pairs = [(name(t[0], t[1]), name(t[0], t[2]), True) if len(t) == 3
             else (name(t[0], t[1]), name(t[2], t[3]), False) for t in lines[1:]]
    if len(pairs) != folds * 2 * per_fold:
        raise ValueError(f"{path}: expected {folds * 2 * per_fold} pairs, found {len(pairs)}")
    return folds, pairs


def fold_accuracy(dist: np.ndarray, same: np.ndarray, folds: int) -> tuple[list[float], list[float]]:
    """Per fold (consecutive equal parts), the accuracy at the threshold best on the others."""
    fold = np.repeat(np.arange(folds), len(dist) // folds)
    accs, thresholds = [], []
    for f in range(folds):
        train = fold != f
        d = np.sort(dist[train])
        candidates = np.concatenate([[d[0] - 1e-6], (d[1:] + d[:-1]) / 2, [d[-1] + 1e-6]])
        correct = [np.mean((dist[train] < t) == same[train]) for t in candidates]
        t = float(candidates[int(np.argmax(correct))])
        thresholds.append(t)
        accs.append(float(np.mean((dist[~train] < t) == same[~train])))
    return accs, thresholds


def central_faces(out: Path, root: Path, pick: str = "center"):
    """For each photo (path relative to `root`) the row of its labelled face, nearest the centre
    or largest; the stored faces of the last run in `out`; and the open database."""
    from .api import open_db

    db = open_db(out)
    table = db.faces()
    sizes = db.store.image_sizes()
    best: dict[str, tuple[float, int]] = {}
    for i, path in enumerate(table.paths):
        x1, y1, x2, y2 = table.boxes[i]
        if pick == "center":
            w, h = sizes[path]
            score = ((x1 + x2) / 2 - w / 2) ** 2 + ((y1 + y2) / 2 - h / 2) ** 2
        else:
            score = -(x2 - x1) * (y2 - y1)
        # by the paths under root as found, not where links lead: a tree of links to photos
        # elsewhere (albums that link to originals) is evaluated as laid out
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
        if rel not in best or score < best[rel][0]:
            best[rel] = (score, i)
    return {k: v[1] for k, v in best.items()}, table, db


def eval_lfw(root: Path, out: Path, settings: Settings) -> LfwResult:
    """Run the pipeline on root/lfw into `out`, then score root/pairs.txt."""
    from . import pipeline
    from .compute import FacePipeline
    from .detect import FaceDetection

    folds, pairs = read_pairs(root / "pairs.txt")
    settings.photos, settings.out = root / "lfw", out
    pipeline.run(settings)
    rows, table, db = central_faces(out, root / "lfw")
    vectors = {rel: table.embeddings[i] for rel, i in rows.items()}
    missing = sorted({p for a, b, _ in pairs for p in (a, b)} - set(vectors))
    if missing:
        # LFW's faces are centred: where none was found, embed the median box of the others
        x = np.array([table.boxes[i] for i in rows.values()])
        marks = np.array([table.landmarks[i] for i in rows.values()])
        face = FaceDetection(np.median(x, 0), 0.0, np.median(marks, 0))
        faces_pipeline = FacePipeline(settings)
        for rel in missing:
            vectors[rel] = faces_pipeline.embed_given(root / "lfw" / rel, [face])[0]
    dist = np.array([np.linalg.norm(vectors[a] - vectors[b]) for a, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    accs, thresholds = fold_accuracy(dist, same, folds)
    db.close()
    return LfwResult(float(np.mean(accs)), float(np.std(accs)), accs, float(np.mean(thresholds)),
                     len(pairs), len(missing), [float(t) for t in thresholds])


@dataclass
class PeopleResult:
    precision: float
    recall: float
    f: float
    people_found: int  # among labelled faces
    people_true: int
    faces: int  # all faces clustered
    labelled: int


def eval_people(root: Path, out: Path, settings: Settings, pick: str = "largest") -> PeopleResult:
    """Run the pipeline on `root` (one folder per person) into `out`, score its people."""
    from . import pipeline

    settings.photos, settings.out, settings.recluster = root, out, True
    pipeline.run(settings)
    rows, table, db = central_faces(out, root, pick)
    person = db.person_of(table)
    labelled = sorted(rows.values())
    truth = np.array([Path(table.paths[i]).parent.name for i in labelled])
    p, r, f = bcubed(person[labelled], truth)
    db.close()
    return PeopleResult(p, r, f, len(set(person[labelled].tolist())), len(set(truth.tolist())),
                        len(table), len(labelled))
