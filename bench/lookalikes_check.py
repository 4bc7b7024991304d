"""Look-alikes measured on finished runs, read only (copied first: a reader never writes into
the run's folder): which of the closest pairs of people are one person, and second boxes over
one face.

    python bench/lookalikes_check.py maybe OUT [OUT...]    # the look-alikes' truth, by chance_same
    python bench/lookalikes_check.py boxes OUT [OUT...]    # second boxes (detect.second_boxes)

OUT is a finished run of an album (../shared/data/albums/D1, D2: truth.csv), of lfw-dev
(lfw/NAME/ folders), of celeba (one folder per identity) or of unlabelled photos (humans,
labeled/groups). A face's identity: an album's or LFW's labelled face is the one overlapping
the middle of the 250x250 photo most (../shared/tools/album.py), celeba's the largest face of
the photo; other faces are bystanders (unknown). A person's identity: the most common one of
its labelled faces.
"""
from __future__ import annotations

import argparse
import collections
import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("FACEDIST_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CENTRE = (62.5, 62.5, 187.5, 187.5)


def open_copy(out: Path, tmp: Path):
    """A FaceDB of a copy of `out` (its database and CSVs, not distances.npy)."""
    from facedist.facedb import FaceDB

    dest = tmp / out.name
    dest.mkdir()
    for f in out.iterdir():
        if f.is_file() and f.name not in ("distances.npy", "facedist.lock", "facedist.sqlite-shm"):
            shutil.copy2(f, dest / f.name)
        elif f.is_dir() and f.name == "perf":
            shutil.copytree(f, dest / f.name)
    return FaceDB(dest)


def truth_of(out: Path, table) -> np.ndarray:
    """The identity of each face of `table` ("" where unknown: a bystander, no truth)."""
    paths = [Path(p) for p in table.paths]
    album = None
    for name in ("D1", "D2"):
        if name in out.name:
            album = SHARED / "data" / "albums" / name
    labels = np.full(len(table), "", object)
    if album is not None:
        with open(album / "truth.csv", newline="") as fh:
            who = {r["file"]: r["person"] for r in csv.DictReader(fh)}
        ident = [who.get(p.name, "") for p in paths]
    else:
        ident = [p.parent.name for p in paths]
    lfw_like = album is not None or "lfw" in out.name
    best: dict[str, tuple] = {}
    for i, (p, box) in enumerate(zip(table.paths, table.boxes.tolist())):
        x1, y1, x2, y2 = box
        if lfw_like:
            ov = max(0.0, min(x2, CENTRE[2]) - max(x1, CENTRE[0])) * \
                max(0.0, min(y2, CENTRE[3]) - max(y1, CENTRE[1]))
            if ov <= 0:
                continue
            key = (-ov, ((x1 + x2) / 2 - 125) ** 2 + ((y1 + y2) / 2 - 125) ** 2)
        else:
            key = (-(x2 - x1) * (y2 - y1),)
        if p not in best or key < best[p][0]:
            best[p] = (key, i)
    for p, (_, i) in best.items():
        labels[i] = ident[i]
    return labels


def maybe(outs: list[Path], tmp: Path, top: int) -> None:
    from facedist.models import get_spec
    from facedist.cluster import linkage_distance
    from facedist.report import lookalikes, maybe_same, people_rms
    from facedist.review import chance_same

    after = []
    print("| run | rule | pairs of people | one person (truth) | top 10: one person "
          "| of them maybe | one person, maybe | two people, maybe | top 10: two people, maybe |")
    print("|---|---|---|---|---|---|---|---|---|")
    for out in outs:
        db = open_copy(out, tmp)
        t = db.faces()
        person = db.person_of(t)
        cut = db.settings.people_threshold or get_spec(db.settings.model).people_threshold
        labels = truth_of(out, t)
        ident: dict[int, str] = {}
        for p in np.unique(person[person >= 0]):
            c = collections.Counter(l for l in labels[person == p] if l)
            ident[int(p)] = c.most_common(1)[0][0] if c else f"?{p}"
        pairs = lookalikes(t, person, top, min_quality=db.min_quality)
        pa = np.array([person[a] for _, a, _ in pairs])
        pb = np.array([person[b] for _, _, b in pairs])
        rms, na, nb = people_rms(t, person, pa, pb)
        spec = get_spec(db.settings.model)
        single = spec.people_single_threshold
        rules = {"rms": chance_same(rms, cut),
                 "linkage": chance_same(linkage_distance(rms, na, nb, cut, single), cut)}
        photos = {int(p): set() for p in np.unique(person[person >= 0])}
        for i in np.nonzero(person >= 0)[0]:
            photos[int(person[i])].add(t.paths[i])
        share = np.array([bool(photos[int(x)] & photos[int(y)]) for x, y in zip(pa, pb)], bool)
        rules["linkage, no shared photo"] = np.where(share, 0, rules["linkage"])
        one = np.array([ident[int(x)] == ident[int(y)] for x, y in zip(pa, pb)], bool)
        for rule, chance in rules.items():
            top10 = one[:10]
            print(f"| {out.name} (cut {cut}) | {rule} | {len(pairs)} | {one.sum()} | {top10.sum()} "
                  f"| {(top10 & (chance[:10] >= 0.5)).sum()} | {(one & (chance >= 0.5)).sum()} "
                  f"| {(~one & (chance >= 0.5)).sum()} | {(~top10 & (chance[:10] >= 0.5)).sum()} |")
        chance = rules["linkage, no shared photo"]
        looks, maybes = maybe_same(t, person, lookalikes(t, person, None, min_quality=db.min_quality),
                                   cut, single, db.store.person_names(db.pipeline_key),
                                   db.store.settled(db.pipeline_key))
        same = [ident[int(person[a])] == ident[int(person[b])] for _, a, b in looks]
        after.append(f"| {out.name} | {sum(same[:10])} of {len(same[:10])} "
                     f"| {sum(same[:100])} of {len(same[:100])} | {len(maybes)} "
                     f"| {sum(ident[m.person_a] == ident[m.person_b] for m in maybes)} |")
        if os.environ.get("VERBOSE"):
            for k, (d, a, b) in enumerate(pairs[:30]):
                print(f"  {k + 1:3d} d={d:.3f} chance={chance[k]:.3f} one={one[k]} "
                      f"{ident[int(pa[k])]} / {ident[int(pb[k])]}", file=sys.stderr)
        db.close()
    print("\nLook-alikes after the split (maybe_same), and the maybe-one-person pairs:\n")
    print("| run | top 10 look-alikes: one person | top 100: one person | maybe one person "
          "| of them one person |")
    print("|---|---|---|---|---|")
    print("\n".join(after))


def boxes(outs: list[Path], tmp: Path) -> None:
    """Per run: photos with two or more faces, pairs of faces of one photo overlapping at least
    SECOND_BOX_IOU (and the closest two of them in embedding), and the boxes second_boxes drops
    (the photo, IoU, distance, and which was kept)."""
    from facedist.detect import SECOND_BOX_IOU, SECOND_BOX_SHARE, box_iou, second_boxes
    from facedist.models import get_spec

    print(f"| run | faces | photos with 2+ faces | pairs overlapping (IoU >= {SECOND_BOX_IOU}) "
          "| their smallest distance | second boxes dropped |")
    print("|---|---|---|---|---|---|")
    dropped_rows = []
    for out in outs:
        db = open_copy(out, tmp)
        t = db.faces()
        limit = SECOND_BOX_SHARE * get_spec(db.settings.model).default_threshold
        by_photo: dict[str, list[int]] = collections.defaultdict(list)
        for i, p in enumerate(t.paths):
            by_photo[p].append(i)
        many = overlapping = dropped = 0
        closest = np.inf
        for p, rows in by_photo.items():
            if len(rows) < 2:
                continue
            many += 1
            rows = np.array(rows)
            iou = box_iou(t.boxes[rows])
            x = t.embeddings[rows].astype(np.float64)
            dist = np.linalg.norm(x[:, None] - x[None], axis=2)
            hi = np.triu(iou >= SECOND_BOX_IOU, 1)
            overlapping += int(hi.sum())
            if hi.any():
                closest = min(closest, float(dist[hi].min()))
            keep = second_boxes(t.boxes[rows], t.probs[rows], t.embeddings[rows], limit)
            dropped += int((~keep).sum())
            for j in np.nonzero(~keep)[0]:
                k = int(np.argmax(np.where(keep, iou[j], -1)))
                dropped_rows.append(f"- {out.name}: {Path(p).name}: face {int(t.face_ids[rows[j]])} "
                                    f"(p {t.probs[rows[j]]:.3f}) under face {int(t.face_ids[rows[k]])} "
                                    f"(p {t.probs[rows[k]]:.3f}): IoU {iou[j, k]:.2f}, "
                                    f"distance {dist[j, k]:.3f}")
        print(f"| {out.name} (distance < {limit:.3f}) | {len(t)} | {many} | {overlapping} "
              f"| {closest:.3f} | {dropped} |")
        db.close()
    print("\n" + ("\n".join(dropped_rows) if dropped_rows else "No box dropped."))
    golden = SHARED / "golden" / "mtcnn_humans.json"
    if golden.exists():
        import json

        data = json.loads(golden.read_text())
        photos = data["images"].values()
        pairs = many = 0
        for photo in photos:
            found = photo.get("boxes") if isinstance(photo, dict) else None
            if found and len(found) > 1:
                many += 1
                pairs += int(np.triu(box_iou(np.array(found)) >= SECOND_BOX_IOU, 1).sum())
        print(f"\nhumans ({golden.name}, MTCNN's boxes at the study's settings, no embeddings): "
              f"{many} photos with 2+ faces, {pairs} pairs overlapping (IoU >= {SECOND_BOX_IOU}): "
              "no second box to drop")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["maybe", "boxes"])
    ap.add_argument("outs", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=100, help="maybe: pairs of people looked at")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.what == "maybe":
            maybe(args.outs, Path(tmp), args.top)
        else:
            boxes(args.outs, Path(tmp))


if __name__ == "__main__":
    main()
