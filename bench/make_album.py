"""Family albums of other people, made from lfw-dev like ../shared/data/albums (photos/ with
neutral shuffled names, truth.csv), for checking what was tuned on D1 and D2 on albums it never
saw. Family: people of lfw-dev with at least --min-photos photos (all of them), strangers: people
with one photo; nobody of D1 or D2 (their truth's sources). lfw-dev has no people of 15-40 photos
as D1 and D2 do: these families are smaller (6-13 photos).

    python bench/make_album.py ../shared/data/lfw-dev ../shared/data/albums /work/cache/albums \
        --albums A3:16:150,A4:24:300 --seed 1
"""
from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lfw_dev", type=Path)
    ap.add_argument("albums", type=Path, help="the albums to leave out (D1, D2: their truth.csv)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--albums", dest="make", default="A3:16:150,A4:24:300",
                    help="NAME:FAMILY:STRANGERS, comma-separated; no person in two albums")
    ap.add_argument("--min-photos", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    taken = set()
    for truth in sorted(args.albums.glob("*/truth.csv")):
        with open(truth, newline="") as fh:
            taken |= {row["source"].split("/")[0] for row in csv.DictReader(fh)}
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted((args.lfw_dev / "lfw").iterdir())
              if d.is_dir() and d.name not in taken}
    rng = random.Random(args.seed)
    family_pool = [p for p, photos in people.items() if len(photos) >= args.min_photos]
    stranger_pool = [p for p, photos in people.items() if len(photos) == 1]
    rng.shuffle(family_pool)
    rng.shuffle(stranger_pool)
    for spec in args.make.split(","):
        name, n_family, n_strangers = spec.split(":")
        family = [family_pool.pop() for _ in range(int(n_family))]
        strangers = [stranger_pool.pop() for _ in range(int(n_strangers))]
        photos = [(p, "family", f) for p in family for f in people[p]]
        photos += [(p, "stranger", people[p][0]) for p in strangers]
        rng.shuffle(photos)
        album = args.out / name
        if album.exists():
            shutil.rmtree(album)
        (album / "photos").mkdir(parents=True)
        with open(album / "truth.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "person", "role", "source"])
            for i, (person, role, src) in enumerate(photos, 1):
                file = f"img_{i:04d}.jpg"
                shutil.copyfile(src, album / "photos" / file)
                w.writerow([file, person, role, f"{person}/{src.name}"])
        print(f"{album}: {len(family)} family people ({sum(r == 'family' for _, r, _ in photos)} "
              f"photos), {len(strangers)} strangers, {len(photos)} photos")


if __name__ == "__main__":
    main()
