"""The review's chances, measured on family albums: how often two groups near each other are one
person, how often a face at a group's edge is someone else's, how alone the family's one-face
leftovers are, and where bystanders sit (review.py's SAME_BASE, ONE_MANY_NEAREST, ODD_SMALL,
ODD_LARGE, STRANGER_GAP, BYSTANDER_*).

    python bench/review_chances.py ALBUM OUT [ALBUM OUT ...] [--results bench/results-review]
    python bench/review_chances.py ../shared/data/albums/D1 /tmp/D1 ../shared/data/albums/D2 /tmp/D2

OUT: a finished `facedist run ALBUM/photos --out OUT`, read as it is (its people before any
review). The truth is ALBUM/truth.csv, its labelled face the one overlapping the photo's middle
most (../shared/tools/album.py); other faces are bystanders nobody names. Writes
RESULTS/chances.md. These are the figures review.py's constants were chosen from: a selection on
these albums, checked on albums of other people.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

from facedist.facedb import FaceDB

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from who_margin import album_tool  # noqa: E402  (../shared/tools/album.py, loaded once)


def measure(album: Path, out: Path, A) -> dict:
    """The rows of one album: pairs of near people, faces at a group's edge, one-face people,
    and faces of photos with several faces."""
    truth = A.read_truth(album)
    family = {r["person"] for r in truth.values() if r["role"] == "family"}
    db = FaceDB(out)
    q = db.review_queue()
    cut = q.cut
    fid, _ = A.identities(album, out, truth)
    ident = {int(k): v for k, v in fid.items()}
    P = len(q.pid)
    top = {}
    for i in range(P):
        c = collections.Counter(ident.get(int(f), f"?{f}") for f in q.face_ids[q.of == i])
        top[i] = c.most_common(1)[0][0] if c else None
    pairs, seen = [], set()
    for i in range(P):
        for j, d in zip(q._near[i], q._near_d[i]):
            if j < 0 or (min(i, j), max(i, j)) in seen:
                continue
            seen.add((min(i, j), max(i, j)))
            xi, xj = q.x[q.of == i], q.x[q.of == j]
            nearest = np.sqrt(max(float(((xi[:, None] - xj[None]) ** 2).sum(-1).min()), 0))
            one = top[i] == top[j] and not str(top[i]).startswith("?")
            pairs.append((min(q.size[i], q.size[j]), max(q.size[i], q.size[j]), d / cut,
                          nearest / cut, one))
    edge = []
    rows, p, d = q._edge()
    for r, i, dd in zip(rows, p, d):
        edge.append((int(q.size[i]), dd / cut, ident.get(int(q.face_ids[r]), "?") != top[i],
                     top[i] in family))
    alone = []
    for r in np.nonzero(q.of >= 0)[0]:
        i = q.of[r]
        if q.size[i] == 1:
            alone.append((float(q._near_d[i].min()) / cut,
                          ident.get(int(q.face_ids[r])) in family))
    t = db.faces()
    sizes = db.store.image_sizes()
    labelled = set(ident)
    area = (t.boxes[:, 2] - t.boxes[:, 0]) * (t.boxes[:, 3] - t.boxes[:, 1])
    largest, count = collections.defaultdict(float), collections.Counter(t.paths)
    for path, a in zip(t.paths, area):
        largest[path] = max(largest[path], a)
    shared = []
    for k, path in enumerate(t.paths):
        if count[path] > 1:
            w, h = sizes.get(path, (0, 0))
            off = max(abs((t.boxes[k, 0] + t.boxes[k, 2]) / (2 * w) - 0.5),
                      abs((t.boxes[k, 1] + t.boxes[k, 3]) / (2 * h) - 0.5)) if w and h else 0.0
            shared.append((area[k] / largest[path], off, int(t.face_ids[k]) in labelled))
    db.close()
    return {"pairs": pairs, "edge": edge, "alone": alone, "shared": shared}


def band_table(rows, classes, value, bands, flag, head) -> list[str]:
    lines = ["| " + head + " | " + " | ".join(f"{a}-{b}" for a, b in bands) + " |",
             "|---|" + "---|" * len(bands)]
    for name, keep in classes:
        cells = []
        for a, b in bands:
            sel = [r for r in rows if keep(r) and a <= value(r) < b]
            cells.append(f"{sum(flag(r) for r in sel)}/{len(sel)}" if sel else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", type=Path, help="ALBUM OUT [ALBUM OUT ...]")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results-review")
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        ap.error("give ALBUM OUT pairs")
    A = album_tool()
    rows = collections.defaultdict(list)
    for album, out in zip(args.pairs[::2], args.pairs[1::2]):
        for k, v in measure(album, out, A).items():
            rows[k] += v
    names = " and ".join(a.name for a in args.pairs[::2])
    near = [(0, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.0), (1.0, 1.05),
            (1.05, 1.1), (1.1, 1.2), (1.2, 9)]
    md = [f"# The review's chances on {names}", "",
          f"`python bench/review_chances.py {' '.join(map(str, argv or sys.argv[1:]))}`", "",
          "Each cell: how many were one person (or someone else's face) / how many there "
          "were, by distance as a share of the people cut. From the people before any review.",
          "", "## Two people near each other (each person's 6 nearest): one person?", "",
          "By the root-mean-squared distance between the two groups:", ""]
    sizes = [("one face and one face", lambda r: r[1] == 1),
             ("one face and a larger person", lambda r: r[0] == 1 < r[1]),
             ("two larger people", lambda r: r[0] > 1)]
    md += band_table(rows["pairs"], sizes, lambda r: r[2], near, lambda r: r[4], "sizes")
    md += ["", "One face and a larger person, by the distance to its nearest face there:", ""]
    md += band_table(rows["pairs"], sizes[1:2], lambda r: r[3], near, lambda r: r[4], "sizes")
    md += ["", "## A face at its group's edge (distance to the rest of the group): someone "
           "else's?", ""]
    md += band_table(rows["edge"], [("2-5 faces", lambda r: r[0] <= 5),
                                    ("6 or more, family", lambda r: r[0] > 5 and r[3]),
                                    ("6 or more, not family", lambda r: r[0] > 5 and not r[3])],
                     lambda r: r[1], near, lambda r: r[2], "group")
    md += ["", "## One-face people: family? (by the distance to the nearest other person)", ""]
    md += band_table(rows["alone"], [("one-face people", lambda r: True)], lambda r: r[0],
                     near, lambda r: r[1], "")
    md += ["", "## Faces of photos with several faces: labelled (not a bystander)?", "",
           "By the face's area as a share of its photo's largest face's:", ""]
    md += band_table(rows["shared"], [("faces", lambda r: True)], lambda r: r[0],
                     [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 0.999), (0.999, 2)],
                     lambda r: r[2], "")
    md += ["", "Faces at least half as large as their photo's largest, by how far the centre is "
           "off the photo's middle (a share of its side):", ""]
    md += band_table([r for r in rows["shared"] if r[0] >= 0.5], [("faces", lambda r: True)],
                     lambda r: r[1], [(0, 0.1), (0.1, 0.15), (0.15, 0.25), (0.25, 0.35),
                                      (0.35, 1)], lambda r: r[2], "")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "chances.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
