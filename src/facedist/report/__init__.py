"""report: write what a run found as files, and say it in a few lines (the HTML report of the
same results: report/html.py).

faces.csv (one row per face, with its person), people.csv (one row per person: faces, photos,
nearest other people), lookalikes.csv (closest pairs of faces of different people),
neighbors.csv (k nearest of each face), pairs.csv (pairs under the threshold, closest first)
and, unless too large, distances.npy (written by compare). Files are written under a temporary
name and renamed, so a killed run never leaves a half-written table behind.
"""
from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, IO

import numpy as np

from ..discover import DISPLAY_ERRORS
from ..compare import Comparison, compare, nearest_other
from ..store import FaceTable

LOOKALIKES_MAX = 1000  # rows of lookalikes.csv


@contextmanager
def replacing(path: Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path` that replaces it once written whole; on any failure
    (disk full) the temporary file is removed and `path` stays as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable]) -> None:
    """A UTF-8 CSV; paths that are not valid UTF-8 show their odd bytes as \\xNN."""
    with replacing(path, newline="", encoding="utf-8", errors=DISPLAY_ERRORS) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def lookalikes(table: FaceTable, person: np.ndarray, n: int | None = None) -> list[tuple]:
    """The closest pairs of faces of different people, closest first: (distance, a, b) with
    row indices a < b of `table`, each pair once."""
    other, dist = nearest_other(table.embeddings, person)
    pairs = {}
    for a in np.argsort(dist, kind="stable"):
        if other[a] < 0:
            break
        key = (min(int(a), int(other[a])), max(int(a), int(other[a])))
        pairs.setdefault(key, float(dist[a]))
        if n is not None and len(pairs) >= n:
            break
    return sorted((d, a, b) for (a, b), d in pairs.items())


def nearest_people(table: FaceTable, person: np.ndarray, k: int = 3) -> dict[int, list[tuple[int, float]]]:
    """For each person, the k people whose mean face (unit-length) is nearest to theirs."""
    ids, inverse = np.unique(person, return_inverse=True)
    if len(ids) < 2:
        return {int(p): [] for p in ids}
    x = table.embeddings.astype(np.float64)
    centre = np.zeros((len(ids), x.shape[1]))
    np.add.at(centre, inverse, x)
    centre /= np.maximum(np.linalg.norm(centre, axis=1, keepdims=True), 1e-12)
    res = compare(centre.astype(np.float32), k, 0.0)
    return {int(ids[i]): [(int(ids[j]), float(d)) for j, d in zip(res.neighbors[i], res.neighbor_dist[i])]
            for i in range(len(ids))}


def write_people(out: Path, table: FaceTable, person: np.ndarray, names: dict[int, str]) -> None:
    """faces.csv, people.csv and lookalikes.csv: what changes when people change."""
    def name(p) -> str:
        return names.get(int(p), "")

    def box(i) -> list[str]:
        return [f"{v:.1f}" for v in table.boxes[i]]

    write_csv(out / "faces.csv",
              ["face", "face_id", "path", "face_index", "x1", "y1", "x2", "y2", "prob", "person",
               "person_name"],
              ((i, int(table.face_ids[i]), table.paths[i], int(table.face_index[i]), *box(i),
                f"{table.probs[i]:.4f}", int(person[i]), name(person[i]))
               for i in range(len(table))))
    near = nearest_people(table, person)
    faces_of: dict[int, list[int]] = {}
    for i, p in enumerate(person.tolist()):
        faces_of.setdefault(p, []).append(i)
    order = sorted(faces_of, key=lambda p: (not name(p), -len(faces_of[p]), p))
    write_csv(out / "people.csv", ["person", "name", "faces", "photos", "nearest_people"],
              ((p, name(p), len(faces_of[p]), len({table.paths[i] for i in faces_of[p]}),
                " ".join(f"{q}:{d:.4f}" for q, d in near.get(p, [])))
               for p in order))
    write_csv(out / "lookalikes.csv",
              ["rank", "distance", "face_a", "path_a", "x1_a", "y1_a", "x2_a", "y2_a", "person_a",
               "face_b", "path_b", "x1_b", "y1_b", "x2_b", "y2_b", "person_b"],
              ((r + 1, f"{d:.4f}", int(table.face_ids[a]), table.paths[a], *box(a), int(person[a]),
                int(table.face_ids[b]), table.paths[b], *box(b), int(person[b]))
               for r, (d, a, b) in enumerate(lookalikes(table, person, LOOKALIKES_MAX))))


def write_results(out: Path, table: FaceTable, result: Comparison, person: np.ndarray,
                  names: dict[int, str]) -> None:
    write_people(out, table, person, names)
    write_csv(out / "neighbors.csv",
              ["face", "path", "face_index", "rank", "neighbor", "neighbor_path",
               "neighbor_face_index", "distance"],
              ((i, table.paths[i], int(table.face_index[i]), r + 1, int(j), table.paths[j],
                int(table.face_index[j]), f"{result.neighbor_dist[i, r]:.4f}")
               for i in range(len(table)) for r, j in enumerate(result.neighbors[i])))
    write_csv(out / "pairs.csv",
              ["face_a", "path_a", "face_index_a", "face_b", "path_b", "face_index_b", "distance"],
              ((int(a), table.paths[a], int(table.face_index[a]), int(b), table.paths[b],
                int(table.face_index[b]), f"{d:.4f}")
               for (a, b), d in zip(result.pairs, result.pair_dist)))


def summary_dict(s) -> dict:
    """A run's summary (pipeline.RunSummary) as plain JSON values, for `run --json`."""
    import dataclasses

    from ..discover import display_path

    d = dataclasses.asdict(s)
    d["out"] = display_path(s.out)
    d["files"] = {name: display_path(s.out / name) for name in (
        "faces.csv", "people.csv", "lookalikes.csv", "neighbors.csv", "pairs.csv",
        "distances.npy", "facedist.sqlite", "report/index.html") if (s.out / name).exists()}
    return d


def format_summary(s) -> str:
    """The closing lines of `facedist run` (s: pipeline.RunSummary)."""
    copies = f", {s.copies} copies of other files" if s.copies else ""
    lines = [f"facedist: {s.images} images ({s.processed} processed, {s.reused} unchanged{copies}), "
             f"{s.faces} faces, {s.people} people, {s.warnings} skipped, {s.total_seconds:.1f} s"
             + (f", {s.processed / s.total_seconds:.1f} images/s" if s.total_seconds else "")]
    if not s.faces:
        lines.append("  no face found: the tables hold only their headers")
    if s.stage_seconds:
        lines.append("  time per stage: " + ", ".join(f"{k} {v:.2f}s" for k, v in s.stage_seconds.items()))
    for reason, n in sorted(s.skipped.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped {n}: {reason}")
    if s.threshold is not None:
        suggested = f"{s.suggested_threshold:.3f}" if s.suggested_threshold is not None else "none"
        lines.append(f"  pair threshold {s.threshold:g}; suggested from these photos: {suggested} "
                     f"(perf/threshold.json)")
    lines.append(f"  results in {s.out}/ (faces.csv, people.csv, lookalikes.csv, neighbors.csv, pairs.csv"
                 + (", distances.npy" if (s.out / "distances.npy").exists() else "") + ", perf/)")
    if s.report is not None:
        lines.append(f"  report: {s.report} (open it in a browser)")
    return "\n".join(lines)


def write_threshold(perf: Path, neighbor_dist: np.ndarray, threshold: float,
                    suggested: float | None) -> None:
    """perf/threshold.json: the histogram of each face's distances to its nearest neighbours,
    the pair threshold in use and the one suggested from that histogram (people.py)."""
    import json

    perf.mkdir(parents=True, exist_ok=True)
    d = neighbor_dist[np.isfinite(neighbor_dist)]
    counts, edges = np.histogram(d, bins=50) if len(d) else (np.zeros(0, int), np.zeros(0))
    with replacing(perf / "threshold.json") as fh:
        json.dump({"threshold": threshold, "suggested": suggested,
                   "neighbor_distance_histogram": {"counts": counts.tolist(),
                                                   "edges": [round(float(e), 5) for e in edges]}},
                  fh, indent=1)
