"""report: write what a run found as files, and say it in a few lines (the HTML report of the
same results: report/html.py).

faces.csv (one row per face, with its person), people.csv (one row per person: faces, photos,
nearest other people), lookalikes.csv (the closest pairs of people, by their closest faces),
maybe_same.csv (pairs of people that are maybe one person: a question for the review),
neighbors.parquet and, up to CSV_MAX_FACES faces, neighbors.csv (k nearest of each face),
pairs.parquet and pairs.csv (pairs under the threshold, closest first, at most --max-pairs)
and, unless too large, distances.npy (written by compare). The Parquet files name faces by
face_id (faces.csv holds their paths and boxes) and are read in pieces (FaceDB.neighbors,
FaceDB.pairs). Files are written under a temporary name and renamed, so a killed run never
leaves a half-written table behind.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..atomic import replacing
from ..discover import display_path
from ..display import DISPLAY_ERRORS, shown
from ..compare import APPROX_FROM, Comparison, knn, nearest_other
from ..store import FaceTable

LOOKALIKES_MAX = 1000  # rows of lookalikes.csv
CSV_MAX_FACES = 100_000  # neighbors.csv and pairs.csv up to this many faces (Parquet always)


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable]) -> None:
    """A UTF-8 CSV; paths (the columns named *path*) as display_path shows them: odd bytes as
    \\xNN, a backslash doubled; names (the columns named *name*) as display.shown shows them:
    control characters as \\xNN too, at most its length; in other text, odd bytes as \\xNN."""
    paths = [i for i, name in enumerate(header) if "path" in name]
    names = [i for i, name in enumerate(header) if "name" in name]
    shown_as: dict[str, str] = {}  # names repeat (a person's, per face): each shown once
    with replacing(path, newline="", encoding="utf-8", errors=DISPLAY_ERRORS) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            row = list(row)
            for i in paths:
                if isinstance(row[i], str):
                    row[i] = display_path(row[i])
            for i in names:
                if isinstance(row[i], str) and row[i]:
                    row[i] = shown_as.get(row[i]) or shown_as.setdefault(row[i], shown(row[i]))
            w.writerow(row)


def shown_faces(table: FaceTable, person: np.ndarray, min_quality: float) -> np.ndarray:
    """The faces that may stand in look-alikes and people's comparisons: in a person (not
    ignored, not left unclear) and at or above the quality gate."""
    return (person >= 0) & ~(table.quality < min_quality)


def face_status(person: np.ndarray, ignored: np.ndarray) -> list[str]:
    """faces.csv's status of each face: "" (in a person), "ignored" (set aside by the user) or
    "unclear" (under the quality gate and clearly nobody's)."""
    return ["ignored" if g else "unclear" if p < 0 else ""
            for p, g in zip(person.tolist(), ignored.tolist())]


def lookalikes(table: FaceTable, person: np.ndarray, n: int | None = None,
               neighbors: tuple[np.ndarray, np.ndarray] | None = None,
               min_quality: float = 0.0) -> list[tuple]:
    """The closest pairs of people, closest first, each pair of people once, by its closest
    faces: (distance, a, b) with row indices a < b of `table`; only faces in a person and at or
    above `min_quality` (shown_faces). Each face's nearest face of another person is a
    candidate (with `neighbors`, [N, k] indices and distances, from those only: at scale the
    closest other-person face is among a face's nearest, or the pair is not among the
    closest); a pair of people is listed by its closest candidate. `n`: pairs of people."""
    shown = shown_faces(table, person, min_quality)
    if neighbors is not None:
        near, near_dist = neighbors
        other_person = (person[near] != person[:, None]) & shown[near] & shown[:, None]
        dist = np.where(other_person, near_dist, np.inf).astype(np.float32)
        col = np.argmin(dist, axis=1)
        dist = dist[np.arange(len(near)), col]
        other = np.where(np.isfinite(dist), near[np.arange(len(near)), col], -1)
    else:
        rows = np.nonzero(shown)[0]
        other = np.full(len(table), -1, np.int64)
        dist = np.full(len(table), np.inf, np.float32)
        o, d = nearest_other(table.embeddings[rows], person[rows])
        other[rows] = np.where(o >= 0, rows[o], -1)
        dist[rows] = d
    pairs: dict[tuple[int, int], tuple[float, int, int]] = {}
    for a in np.argsort(dist, kind="stable"):
        if other[a] < 0:
            break
        a, b = sorted((int(a), int(other[a])))
        # the closest candidate of a pair of people comes first (distance order)
        pairs.setdefault(tuple(sorted((int(person[a]), int(person[b])))), (float(dist[a]), a, b))
        if n is not None and len(pairs) >= n:
            break
    return sorted(pairs.values())


@dataclass
class MaybeSame:
    """Two people who are likely one person (maybe_same): not look-alikes but a question,
    `same:A:B` in the review. `chance`: review.chance_same of their distance as the clustering
    weighs it (cluster.linkage_distance of their root-mean-squared distance `rms`); `a`, `b`,
    `distance`: their closest faces (rows of the table), as in lookalikes."""

    chance: float
    rms: float
    distance: float
    a: int
    b: int
    person_a: int
    person_b: int

    @property
    def question(self) -> str:
        return f"same:{min(self.person_a, self.person_b)}:{max(self.person_a, self.person_b)}"


MAYBE_SAME_HEADER = ["rank", "chance_same", "rms_distance", "question", "distance",
                     "face_a", "path_a", "x1_a", "y1_a", "x2_a", "y2_a", "person_a", "name_a",
                     "face_b", "path_b", "x1_b", "y1_b", "x2_b", "y2_b", "person_b", "name_b"]
MAYBE_SAME = 0.5  # the chance of one person from which a pair of people is "maybe one person"


def people_rms(table: FaceTable, person: np.ndarray, a: np.ndarray, b: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The root-mean-squared distance over all cross pairs of faces of people a[i] and b[i]
    (their faces: those of `person`), as cluster.py and review.py measure two groups:
    msq(A) + msq(B) - 2 mean(A).mean(B), from each person's sums; and their numbers of faces."""
    from ..cluster import group_sums  # (numba: not for every reader of this module)

    placed = person >= 0
    ids, inverse = np.unique(person[placed], return_inverse=True)
    if len(a) == 0 or len(ids) == 0:
        return np.zeros(len(a)), np.zeros(len(a)), np.zeros(len(a))
    sums, squares, size = group_sums(table.embeddings, np.flatnonzero(placed), inverse, len(ids))
    i, j = np.searchsorted(ids, a), np.searchsorted(ids, b)
    dot = np.empty(len(i))
    step = 1 << 16  # (a million pairs: sums[i] alone would be 1 GB)
    for s in range(0, len(i), step):
        dot[s:s + step] = np.einsum("ij,ij->i", sums[i[s:s + step]], sums[j[s:s + step]])
    d2 = squares[i] / size[i] + squares[j] / size[j] - 2 * dot / (size[i] * size[j])
    return np.sqrt(np.maximum(d2, 0)), size[i], size[j]


def maybe_same(table: FaceTable, person: np.ndarray, pairs: list[tuple], cut: float | None,
               single_cut: float | None = None, names: dict[int, str] | None = None,
               settled: Iterable[str] = ()) -> tuple[list[tuple], list[MaybeSame]]:
    """Split lookalikes' `pairs` into the look-alikes (two people) and the pairs of people
    that are maybe one person: review.chance_same of their distance as the clustering weighs
    it (cluster.linkage_distance: the root-mean-squared distance of their faces, and the
    people `cut` and `single_cut`) at least MAYBE_SAME, unless they share a photo (two faces
    of one photo are two people) or the user already said who they are (named differently,
    or their "same person?" settled: answered, skipped or `people apart`). Measured on the
    albums, lfw-dev and celeba: bench/results-quality/lookalikes.md. Without a cut every pair
    is a look-alike. The maybe pairs come most likely first."""
    from ..cluster import linkage_distance
    from ..review import chance_same

    if cut is None or not pairs:
        return list(pairs), []
    names = names or {}
    settled = set(settled)
    pa = np.array([int(person[a]) for _, a, _ in pairs], np.int64)
    pb = np.array([int(person[b]) for _, _, b in pairs], np.int64)
    rms, na, nb = people_rms(table, person, pa, pb)
    chance = chance_same(linkage_distance(rms, na, nb, cut, single_cut), cut)
    candidates = {int(p) for k in np.nonzero(chance >= MAYBE_SAME)[0] for p in (pa[k], pb[k])}
    photos: dict[int, set[str]] = {p: set() for p in candidates}
    for i in np.nonzero(np.isin(person, list(candidates)))[0]:
        photos[int(person[i])].add(table.paths[i])
    looks, maybe = [], []
    for k, (d, a, b) in enumerate(pairs):
        p, q = sorted((int(pa[k]), int(pb[k])))
        na_, nb_ = names.get(p), names.get(q)
        told = f"same:{p}:{q}" in settled or bool(na_ and nb_ and na_ != nb_)
        if chance[k] >= MAYBE_SAME and not told and not photos[p] & photos[q]:
            maybe.append(MaybeSame(float(chance[k]), float(rms[k]), d, a, b,
                                   int(person[a]), int(person[b])))
        else:
            looks.append((d, a, b))
    maybe.sort(key=lambda m: (-m.chance, m.distance, m.a, m.b))
    return looks, maybe


def nearest_people(table: FaceTable, person: np.ndarray, k: int = 3,
                   min_quality: float = 0.0) -> dict[int, list[tuple[int, float]]]:
    """For each person, the k people whose mean face (unit-length) is nearest to theirs; the
    mean of the faces at or above `min_quality` (of all its faces where none is)."""
    from ..cluster import group_sums

    placed = person >= 0
    shown = shown_faces(table, person, min_quality)
    ids, inverse = np.unique(person[placed], return_inverse=True)
    if len(ids) < 2:
        return {int(p): [] for p in ids}
    has_clear = np.bincount(inverse, weights=shown[placed], minlength=len(ids)) > 0
    use = shown[placed] | ~has_clear[inverse]
    centre = group_sums(table.embeddings, np.flatnonzero(placed)[use], inverse[use], len(ids))[0]
    centre /= np.maximum(np.linalg.norm(centre, axis=1, keepdims=True), 1e-12)
    # a hint per person, not a measured answer: HNSW's lighter search is enough (at a million
    # faces, ~300,000 people: 60 s less than the faces' own efSearch)
    near, dist = knn(centre.astype(np.float32), k, ef_search=64)
    return {int(ids[i]): [(int(ids[j]), float(d)) for j, d in zip(near[i], dist[i])]
            for i in range(len(ids))}


def write_people(out: Path, table: FaceTable, person: np.ndarray, names: dict[int, str],
                 min_quality: float, ignored: np.ndarray,
                 neighbors: tuple[np.ndarray, np.ndarray] | None = None,
                 cut: float | None = None, single_cut: float | None = None,
                 settled: Iterable[str] = ()) -> None:
    """faces.csv, people.csv, lookalikes.csv and maybe_same.csv: what changes when people
    change. Look-alikes come from `neighbors` when given, else (at scale) from
    neighbors.parquet; the pairs of people that are maybe one person (maybe_same: the people
    `cut` and `single_cut`, the review's `settled` questions) are in maybe_same.csv, not in
    lookalikes.csv. Faces without a person (unclear, ignored) are in faces.csv only, with their
    status."""
    if neighbors is None and len(table) >= APPROX_FROM:
        neighbors = read_neighbors(out, table)
    def name(p) -> str:
        return names.get(int(p), "")

    def box(i) -> list[str]:
        return [f"{v:.1f}" for v in table.boxes[i]]

    status = face_status(person, ignored)
    write_csv(out / "faces.csv",
              ["face", "face_id", "path", "face_index", "x1", "y1", "x2", "y2", "prob", "quality",
               "person", "person_name", "status"],
              ((i, int(table.face_ids[i]), table.paths[i], int(table.face_index[i]), *box(i),
                f"{table.probs[i]:.4f}", f"{table.quality[i]:.3f}",
                int(person[i]) if person[i] >= 0 else "", name(person[i]), status[i])
               for i in range(len(table))))
    near = nearest_people(table, person, min_quality=min_quality)
    faces_of: dict[int, list[int]] = {}
    for i, p in enumerate(person.tolist()):
        if p >= 0:
            faces_of.setdefault(p, []).append(i)
    order = sorted(faces_of, key=lambda p: (not name(p), -len(faces_of[p]), p))
    write_csv(out / "people.csv", ["person", "name", "faces", "photos", "nearest_people"],
              ((p, name(p), len(faces_of[p]), len({table.paths[i] for i in faces_of[p]}),
                " ".join(f"{q}:{d:.4f}" for q, d in near.get(p, [])))
               for p in order))
    pairs = lookalikes(table, person, None, neighbors, min_quality)
    looks, maybe = maybe_same(table, person, pairs, cut, single_cut, names, settled)
    write_csv(out / "lookalikes.csv",
              ["rank", "distance", "face_a", "path_a", "x1_a", "y1_a", "x2_a", "y2_a", "person_a",
               "face_b", "path_b", "x1_b", "y1_b", "x2_b", "y2_b", "person_b"],
              ((r + 1, f"{d:.4f}", int(table.face_ids[a]), table.paths[a], *box(a), int(person[a]),
                int(table.face_ids[b]), table.paths[b], *box(b), int(person[b]))
               for r, (d, a, b) in enumerate(looks[:LOOKALIKES_MAX])))
    write_csv(out / "maybe_same.csv", MAYBE_SAME_HEADER,
              ((r + 1, f"{m.chance:.3f}", f"{m.rms:.4f}", m.question, f"{m.distance:.4f}",
                int(table.face_ids[m.a]), table.paths[m.a], *box(m.a), m.person_a,
                name(m.person_a), int(table.face_ids[m.b]), table.paths[m.b], *box(m.b),
                m.person_b, name(m.person_b))
               for r, m in enumerate(maybe[:LOOKALIKES_MAX])))


def write_results(out: Path, table: FaceTable, result: Comparison, person: np.ndarray,
                  names: dict[int, str], min_quality: float, ignored: np.ndarray,
                  cut: float | None = None, single_cut: float | None = None,
                  settled: Iterable[str] = ()) -> None:
    neighbors = (result.neighbors, result.neighbor_dist) if result.approximate else None
    write_people(out, table, person, names, min_quality, ignored, neighbors, cut, single_cut,
                 settled)
    write_parquet(out, table, result)
    if len(table) > CSV_MAX_FACES:
        for name in ("neighbors.csv", "pairs.csv"):  # those of a smaller earlier run would mislead
            (out / name).unlink(missing_ok=True)
        return
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


def write_parquet(out: Path, table: FaceTable, result: Comparison) -> None:
    """neighbors.parquet (face_id, rank, neighbor_face_id, distance) and pairs.parquet (face_a,
    face_b, distance): faces by their face_id, in row groups of a million rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = table.face_ids.astype(np.int64)
    k = result.neighbors.shape[1] if result.neighbors.ndim == 2 else 0
    near = {"face_id": np.repeat(ids, k), "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), len(ids)),
            "neighbor_face_id": ids[result.neighbors].ravel() if len(ids) else np.zeros(0, np.int64),
            "distance": result.neighbor_dist.astype(np.float32).ravel()}
    pairs = {"face_a": ids[result.pairs[:, 0]] if len(result.pairs) else np.zeros(0, np.int64),
             "face_b": ids[result.pairs[:, 1]] if len(result.pairs) else np.zeros(0, np.int64),
             "distance": result.pair_dist.astype(np.float32)}
    for name, columns in (("neighbors.parquet", near), ("pairs.parquet", pairs)):
        arrays = [_arrow_column(pa, np.ascontiguousarray(v)) for v in columns.values()]
        with replacing(out / name, "wb") as fh:
            pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), fh,
                           row_group_size=1 << 20)


def _arrow_column(pa, values: np.ndarray):
    """A numeric NumPy column as an Arrow array over the same memory. (pa.array and pa.table
    look for pandas types first, which imports pandas where installed: 0.4-0.6 s of a run.)"""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [None, pa.py_buffer(values)])


def read_neighbors(out: Path, table: FaceTable) -> tuple[np.ndarray, np.ndarray] | None:
    """The k nearest of each face of `table` from neighbors.parquet, as row indices; None when
    that file is missing or is not of these faces."""
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(out / "neighbors.parquet")
    except (OSError, ValueError):
        return None
    face = t.column("face_id").to_numpy()
    n = len(table)
    if n == 0 or len(face) == 0 or len(face) % n:
        return None
    k = len(face) // n
    order = np.argsort(table.face_ids, kind="stable")
    sorted_ids = table.face_ids[order]

    def rows(ids: np.ndarray) -> np.ndarray | None:
        at = np.minimum(np.searchsorted(sorted_ids, ids), n - 1)
        return order[at] if np.array_equal(sorted_ids[at], ids) else None

    row, near = rows(face), rows(t.column("neighbor_face_id").to_numpy())
    if row is None or near is None or not np.array_equal(np.sort(row[::k]), np.arange(n)):
        return None
    near_rows = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    rank = t.column("rank").to_numpy().astype(np.int64) - 1
    near_rows[row, rank] = near
    dist[row, rank] = t.column("distance").to_numpy()
    return near_rows, dist


def summary_dict(s) -> dict:
    """A run's summary (pipeline.RunSummary) as plain JSON values, for `run --json`."""
    import dataclasses

    from ..discover import display_path

    d = dataclasses.asdict(s)
    d["out"] = display_path(s.out)
    d["files"] = {name: display_path(s.out / name) for name in (
        "faces.csv", "people.csv", "lookalikes.csv", "maybe_same.csv", "neighbors.csv", "pairs.csv",
        "neighbors.parquet", "pairs.parquet", "distances.npy", "facedist.sqlite",
        "report/index.html") if (s.out / name).exists()}
    return d


def format_summary(s) -> str:
    """The closing lines of `facedist run` (s: pipeline.RunSummary)."""
    copies = f", {s.copies} copies of other files" if s.copies else ""
    n = len(s.unreadable_folders)
    folders = f", {n} folder{'s' if n > 1 else ''} unreadable" if n else ""
    lines = [f"facedist: {s.images} images ({s.processed} processed, {s.reused} unchanged{copies}), "
             f"{s.faces} faces, {s.people} people, {sum(s.skipped.values())} skipped{folders}, "
             f"{s.total_seconds:.1f} s"
             + (f", {s.processed / s.total_seconds:.1f} images/s" if s.total_seconds else "")]
    if not s.faces:
        lines.append("  no face found: the tables hold only their headers")
    if s.stage_seconds:
        lines.append("  time per stage: " + ", ".join(f"{k} {v:.2f}s" for k, v in s.stage_seconds.items()))
    for reason, count in sorted(s.skipped.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped {count}: {reason}")
    for folder, reason in s.unreadable_folders.items():
        lines.append(f"  unreadable folder, its photos left out: {folder} ({reason})")
    if s.pairs_found > s.pairs:
        lines.append(f"  pairs: the {s.pairs} closest of {s.pairs_found} under the threshold "
                     f"(--max-pairs)")
    if s.approximate:
        lines.append("  neighbours and pairs from the approximate search (HNSW; --exact-neighbors "
                     "for exact)")
    if s.threshold is not None:
        suggested = f"{s.suggested_threshold:.3f}" if s.suggested_threshold is not None else "none"
        lines.append(f"  pair threshold {s.threshold:g}; suggested from these photos: {suggested} "
                     f"(perf/threshold.json)")
    csv = ", neighbors.csv, pairs.csv" if (s.out / "neighbors.csv").exists() else ""
    lines.append(f"  results in {s.out}/ (faces.csv, people.csv, lookalikes.csv, maybe_same.csv{csv}, "
                 f"neighbors.parquet, pairs.parquet"
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
