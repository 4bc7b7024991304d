"""report: write what a run found as files, and say it in a few lines.

faces.csv (one row per face, with its same-person group), neighbors.csv (k nearest of each face),
pairs.csv (pairs under the threshold, closest first) and, unless too large, distances.npy (written
by compare). Files are written under a temporary name and renamed, so a killed run never leaves
a half-written table behind.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from .compare import Comparison
from .store import FaceTable


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def write_results(out: Path, table: FaceTable, result: Comparison, group: np.ndarray) -> None:
    write_csv(out / "faces.csv",
              ["face", "path", "face_index", "x1", "y1", "x2", "y2", "prob", "group"],
              ((i, table.paths[i], int(table.face_index[i]),
                *(f"{v:.1f}" for v in table.boxes[i]), f"{table.probs[i]:.4f}", int(group[i]))
               for i in range(len(table))))
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


def format_summary(s) -> str:
    """The closing lines of `facedist run` (s: pipeline.RunSummary)."""
    copies = f", {s.copies} copies of other files" if s.copies else ""
    lines = [f"facedist: {s.images} images ({s.processed} processed, {s.reused} unchanged{copies}), "
             f"{s.faces} faces, {s.warnings} skipped, {s.total_seconds:.1f} s"
             + (f", {s.processed / s.total_seconds:.1f} images/s" if s.total_seconds else "")]
    if s.stage_seconds:
        lines.append("  time per stage: " + ", ".join(f"{k} {v:.2f}s" for k, v in s.stage_seconds.items()))
    for reason, n in sorted(s.skipped.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped {n}: {reason}")
    lines.append(f"  results in {s.out}/ (faces.csv, neighbors.csv, pairs.csv"
                 + (", distances.npy" if (s.out / "distances.npy").exists() else "") + ", perf/)")
    return "\n".join(lines)
