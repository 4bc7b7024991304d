"""What a person sees first, measured on labelled photos: the top of the look-alikes and the
largest people of a finished run, against the labelled face of each photo (the one nearest its
centre, as `facedist eval` takes it; one folder per person).

    python bench/first_screen.py OUT PHOTOS [--json FILE]
    python bench/first_screen.py /tmp/runs/lfw ../shared/data/lfw-dev/lfw

- look-alikes: of the top 10 and top 100 pairs (lookalikes.csv), how many join two labelled
  faces (the others hold a background face, a false detection, an unclear face);
- people: of the 12 largest (people.csv's order), how many are mostly unlabelled faces;
- BCubed precision, recall and F of the labelled faces' people against the folder names.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from facedist.cluster import bcubed
from facedist.evaluate import central_faces


def first_screen(out: Path, photos: Path) -> dict:
    rows, table, db = central_faces(out, photos, "center")
    db.close()
    labelled = set(int(table.face_ids[i]) for i in rows.values())
    with open(out / "lookalikes.csv", newline="") as fh:
        pairs = [(int(r["face_a"]), int(r["face_b"])) for r in csv.DictReader(fh)]
    with open(out / "faces.csv", newline="") as fh:
        faces = list(csv.DictReader(fh))
    with open(out / "people.csv", newline="") as fh:
        people = [int(r["person"]) for r in csv.DictReader(fh)]
    person_of = {int(f["face_id"]): int(f["person"]) for f in faces if f["person"] not in ("", "-1")}
    members: dict[int, list[int]] = {}
    for face, p in person_of.items():
        members.setdefault(p, []).append(face)
    largest = [p for p in people if p in members][:12]
    mostly_unlabelled = [p for p in largest
                         if sum(f in labelled for f in members[p]) * 2 < len(members[p])]
    both = [a in labelled and b in labelled for a, b in pairs]
    face_row = {int(f): i for i, f in enumerate(table.face_ids)}
    lab = sorted(labelled)
    truth = np.array([Path(table.paths[face_row[f]]).parent.name for f in lab])
    pred = np.array([person_of.get(f, -1 - k) for k, f in enumerate(lab)])  # unplaced: alone
    p, r, f = bcubed(pred, truth)
    unclear = sum(1 for x in faces if x.get("status") == "unclear")
    return {"out": str(out), "photos": str(photos), "faces": len(faces), "labelled": len(labelled),
            "unclear_faces": unclear,
            "unclear_labelled": sum(1 for x in faces if x.get("status") == "unclear"
                                    and int(x["face_id"]) in labelled),
            "top10_labelled_pairs": sum(both[:10]), "top100_labelled_pairs": sum(both[:100]),
            "pairs": len(pairs), "largest12_mostly_unlabelled": len(mostly_unlabelled),
            "largest12_sizes": [len(members[p]) for p in largest],
            "bcubed_precision": round(p, 4), "bcubed_recall": round(r, 4), "bcubed_f": round(f, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("photos", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = first_screen(a.out, a.photos)
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
