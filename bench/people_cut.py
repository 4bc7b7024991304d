"""The people cut of raw descriptors, swept on the family albums (and any labelled run).

    python bench/people_cut.py --album ../shared/data/albums/D1 RUN_D1 --album ... \\
        --cuts 0.5,0.52,0.55 --singles 0.45,0.48,none [--json OUT.json]

RUN: a finished `facedist run ALBUM/photos --out RUN`. For every (cut, single cut) the people are
clustered again from nothing (people.assign_people, full, as a first run does: quality gate,
faces of one photo apart) in a copy of the run's database, and scored as
../shared/tools/album.py scores them: BCubed P/R/F over each photo's labelled (centre) face, the
groups that mix two people. Nothing is written to RUN.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from facedist.facedb import FaceDB
from facedist.people import assign_people, photo_ids
from facedist.store import writing

TOOLS = Path(__file__).resolve().parents[2] / "shared" / "tools"


def labelled(table, truth: dict) -> tuple[np.ndarray, list[str]]:
    """Row of each photo's labelled face (album.py's rule: most overlap with the centre, then
    nearest the centre) and its person."""
    sys.path.insert(0, str(TOOLS))
    from album import overlap

    best: dict[str, tuple] = {}
    for i, path in enumerate(table.paths):
        name = Path(path).name
        if name not in truth:
            continue
        box = table.boxes[i]
        ov = overlap(box)
        d = ((box[0] + box[2]) / 2 - 125) ** 2 + ((box[1] + box[3]) / 2 - 125) ** 2
        if ov > 0 and (name not in best or (-ov, d) < best[name][0]):
            best[name] = ((-ov, d), i)
    files = sorted(best)
    return np.array([best[f][1] for f in files]), [truth[f]["person"] for f in files]


def by_folder(table) -> tuple[np.ndarray, list[str]]:
    """Row of each photo's largest face and its folder's name (celeba, lfw-dev: eval people)."""
    area = (table.boxes[:, 2] - table.boxes[:, 0]) * (table.boxes[:, 3] - table.boxes[:, 1])
    best: dict[str, int] = {}
    for i, path in enumerate(table.paths):
        if path not in best or area[i] > area[best[path]]:
            best[path] = i
    files = sorted(best)
    return np.array([best[f] for f in files]), [Path(f).parent.name for f in files]


def sweep(album: Path | None, run: Path, cuts: list[float], singles: list[float | None]) -> list[dict]:
    sys.path.insert(0, str(TOOLS))
    from album import bcubed, read_truth

    db = FaceDB(run)
    table = db.faces()
    rows, labels = labelled(table, read_truth(album)) if album else by_folder(table)
    photo = photo_ids(table)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("facedist.sqlite", "facedist.sqlite-wal"):
            if (run / part).exists():
                shutil.copy(run / part, Path(tmp) / part)
        with writing(tmp, "people cut sweep", check=False) as store:
            for cut in cuts:
                for single in singles:
                    with store.transaction():
                        store.db.execute("DELETE FROM face_people")
                        store.db.execute("DELETE FROM people")
                    person = assign_people(store, db.pipeline_key, table.face_ids, table.embeddings,
                                           cut, full=True, quality=table.quality,
                                           min_quality=db.min_quality, photo=photo,
                                           single_cut=single)
                    groups = [f"p:{person[r]}" if person[r] >= 0 else f"single:{r}" for r in rows]
                    p, r, f = bcubed(groups, labels)
                    members: dict[str, set] = {}
                    for g, lab in zip(groups, labels):
                        members.setdefault(g, set()).add(lab)
                    out.append({"album": album.name if album else run.name, "cut": cut, "single": single,
                                "P": round(p, 4), "R": round(r, 4), "F": round(f, 4),
                                "mixed": sum(len(v) > 1 for v in members.values())})
    db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--album", nargs=2, action="append", metavar=("ALBUM", "RUN"), default=[])
    ap.add_argument("--folders", action="append", metavar="RUN", default=[],
                    help="a run over photos in one folder per person (celeba, lfw-dev)")
    ap.add_argument("--cuts", default="0.5,0.52,0.55")
    ap.add_argument("--singles", default="none")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cuts = [float(c) for c in args.cuts.split(",")]
    singles = [None if s == "none" else float(s) for s in args.singles.split(",")]
    results = []
    for album, run in args.album:
        results += sweep(Path(album), Path(run), cuts, singles)
    for run in args.folders:
        results += sweep(None, Path(run), cuts, singles)
    for r in results:
        print(f"{r['album']}  cut {r['cut']:.3f}  single {r['single']}  P {r['P']:.4f}  "
              f"R {r['R']:.4f}  F {r['F']:.4f}  mixed {r['mixed']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
