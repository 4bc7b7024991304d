"""How far a true "who is this?" suggestion is from the person asked about, against a false one:
the margin over the people cut within which review.py offers a named suggestion as the answer
that `yes` (the y key) accepts.

    python bench/who_margin.py ALBUM OUT [ALBUM OUT ...] [--results bench/results-review]
    python bench/who_margin.py ../shared/data/albums/D1 /work/cache/D1-unit4 \\
                               ../shared/data/albums/D2 /work/cache/D2-unit4

Reads finished runs of the family albums (a copy in a temporary folder; nothing is written to
OUT) and their truth (truth.csv; the labelled face of a photo is the one overlapping its centre
most, as ../shared/tools/album.py reads it). Distances are the queue's own: the root-mean-squared
distance between two groups of faces (review.ReviewQueue._rms). Three sets of pairs:

- asked: the run's people as "who is this?" finds them once the owner has named each family
  member at their largest group: every other group of at least NAME_MIN_FACES faces, against its
  first (nearest named) suggestion: true when that suggestion is the group's own person;
- halves: each family member's labelled faces split at random into a group of 3-8 faces and the
  rest (200 splits a person): true pairs as a fragment left over by the clustering looks;
- others: each group of at least NAME_MIN_FACES faces (family or stranger) against the nearest
  named person who is someone else, and each of the halves' fragments against the nearest other
  family member (their labelled faces): the false suggestions, as close as they come.

Writes RESULTS/who-margin.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from facedist.facedb import FaceDB
from facedist.models import get_spec
from facedist.review import NAME_MIN_FACES, WHO_MARGIN

BANDS = [0.0, 0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 2.0, 9.0]  # as shares of the cut


def album_tool():
    shared = os.environ.get("FACEDIST_SHARED") or Path(__file__).resolve().parents[2] / "shared"
    here = Path(shared) / "tools" / "album.py"
    spec = importlib.util.spec_from_file_location("album", here)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rms(xa: np.ndarray, xb: np.ndarray) -> float:
    ma, mb = xa.mean(0), xb.mean(0)
    d2 = (xa * xa).sum(1).mean() + (xb * xb).sum(1).mean() - 2 * ma @ mb
    return float(np.sqrt(max(d2, 0.0)))


def measure(album: Path, out: Path, rng) -> dict:
    tool = album_tool()
    truth = tool.read_truth(album)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "out"
        shutil.copytree(out, copy, ignore=shutil.ignore_patterns("facedist.lock", "perf"))
        db = FaceDB(copy)
        t = db.faces()
        person = db.person_of(t)
        cut = db.settings.people_threshold or get_spec(db.settings.model).people_threshold
        lab = tool.labelled_faces(copy, truth)
        db.close()
    row = {int(f): i for i, f in enumerate(t.face_ids)}
    who = {row[int(r["face_id"])]: truth[f]["person"] for f, r in lab.items()}
    family = {r["person"] for r in truth.values() if r["role"] == "family"}
    x = np.asarray(t.embeddings, np.float64)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(person):
        if p >= 0:
            groups.setdefault(int(p), []).append(i)
    # each group's identity: its labelled faces' majority (bystanders: their own)
    ident = {p: Counter(who.get(i, f"?{i}") for i in rows).most_common(1)[0][0]
             for p, rows in groups.items()}
    named: dict[str, int] = {}  # family member -> the group named so (their largest)
    for p in sorted(groups, key=lambda p: -len(groups[p])):
        if ident[p] in family and ident[p] not in named:
            named[ident[p]] = p
    named_people = set(named.values())
    asked, others = [], []
    for p, rows in groups.items():
        if p in named_people or len(rows) < NAME_MIN_FACES:
            continue
        d = sorted((rms(x[rows], x[groups[q]]), ident[q]) for q in named_people)
        if d:
            asked.append({"d": d[0][0] / cut, "true": d[0][1] == ident[p], "faces": len(rows)})
            false = [v for v, i in d if i != ident[p]]
            if false:
                others.append({"d": false[0] / cut, "faces": len(rows)})
    for name, p in named.items():  # a named person against the nearest other named one
        rows = groups[p]
        d = [rms(x[rows], x[groups[q]]) for q in named_people if q != p]
        if d:
            others.append({"d": min(d) / cut, "faces": len(rows)})
    halves = []
    members = {name: np.array([i for i, n in who.items() if n == name]) for name in sorted(family)}
    for name, rows in members.items():
        if len(rows) < 6:
            continue
        for _ in range(200):
            k = int(rng.integers(3, min(8, len(rows) - 3) + 1))
            perm = rng.permutation(rows)
            halves.append({"d": rms(x[perm[:k]], x[perm[k:]]) / cut, "faces": k})
            d = min(rms(x[perm[:k]], x[o]) for n, o in members.items() if n != name and len(o))
            others.append({"d": d / cut, "faces": k})
    return {"album": album.name, "cut": cut, "asked": asked, "halves": halves, "others": others}


def table(results: list[dict]) -> str:
    lines = ["| distance / cut | " + " | ".join(
        f"{r['album']} asked true | {r['album']} asked false | {r['album']} halves | "
        f"{r['album']} others" for r in results) + " |",
        "|---|" + "---|" * (4 * len(results))]
    for lo, hi in zip(BANDS, BANDS[1:]):
        cells = []
        for r in results:
            for part, keep in (("asked", True), ("asked", False), ("halves", None),
                               ("others", None)):
                vals = [v["d"] for v in r[part] if keep is None or v["true"] == keep]
                cells.append(str(sum(lo <= v < hi for v in vals)))
        lines.append(f"| {lo:.2f}-{hi:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    out = []
    for r in results:
        true = sorted([v["d"] for v in r["asked"] if v["true"]] + [v["d"] for v in r["halves"]])
        false = sorted([v["d"] for v in r["asked"] if not v["true"]] + [v["d"] for v in r["others"]])
        q = lambda v, p: float(np.quantile(v, p)) if v else float("nan")  # noqa: E731
        out.append(f"- {r['album']} (cut {r['cut']}): true pairs {len(true)}, 99th percentile "
                   f"{q(true, 0.99):.3f} cut, max {max(true or [np.nan]):.3f}; false pairs "
                   f"{len(false)}, min {min(false or [np.nan]):.3f} cut, 1st percentile "
                   f"{q(false, 0.01):.3f}")
    return "\n".join(out)


def within(results: list[dict]) -> str:
    said = []
    for r in results:
        near = lambda vals: sum(v <= 1 + WHO_MARGIN for v in vals)  # noqa: E731
        true = [v["d"] for v in r["asked"] if v["true"]] + [v["d"] for v in r["halves"]]
        false = [v["d"] for v in r["asked"] if not v["true"]] + [v["d"] for v in r["others"]]
        said.append(f"{r['album']}: {near(true)} of {len(true)} true pairs within, "
                    f"{near(false)} of {len(false)} false ones")
    return "; ".join(said) + "."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="ALBUM OUT, repeated")
    ap.add_argument("--results", type=Path, default=Path("bench/results-review"))
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give ALBUM OUT pairs")
    rng = np.random.default_rng(0)
    results = [measure(Path(a), Path(o), rng) for a, o in zip(args.pairs[::2], args.pairs[1::2])]
    args.results.mkdir(parents=True, exist_ok=True)
    md = ("# \"Who is this?\": how far the true suggestion is\n\n"
          "`python bench/who_margin.py` (see its docstring). Pairs by root-mean-squared distance, "
          "as shares of the people cut.\n\n" + table(results) + "\n\n" + summary(results)
          + f"\n\nreview.py offers a suggestion to `yes` within {1 + WHO_MARGIN:.2f} cut "
          f"(WHO_MARGIN = {WHO_MARGIN}): " + within(results) + "\n")
    (args.results / "who-margin.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
