"""cli: the `facedist` command.

    facedist run PHOTOS --out OUT [--model dlib-resnet] [--faces all|largest] [--exact] ...
    facedist near IMAGE --db OUT [-k 10]
    facedist export --db OUT [--dest DIR]
    facedist plot OUT
    facedist people OUT [list | name ID NAME | merge ID ID | move FACE_ID ID|new | apart ID ID]
    facedist lookalikes OUT [-n 50]
    facedist eval lfw DIR --out OUT    |    facedist eval people DIR --out OUT
    facedist bench PHOTOS --out OUT [--variants ...] [--limit N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .models import EMBEDDERS, WeightsUnavailable


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="detect, embed and compare every face under PHOTOS")
    p.add_argument("photos", type=Path, help="folder of photos (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="output folder (database, CSVs, perf/)")
    p.add_argument("--config", type=Path, help="YAML file of settings; flags override it")
    p.add_argument("--model", choices=sorted(EMBEDDERS), help="embedder (default dlib-resnet)")
    p.add_argument("--weights", help="weights file for the embedder ('synthetic': timing only)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto")
    g = p.add_argument_group("detection (MTCNN)")
    g.add_argument("--faces", choices=["all", "largest"], help="faces kept per image (default all)")
    g.add_argument("--exact", action="store_true", default=None,
                   help="reference MTCNN on the full-resolution image (slower)")
    g.add_argument("--max-side", type=int, help="long side P-Net sees images at (default 1024; 0: full resolution)")
    g.add_argument("--min-face-size", type=float, help="smallest face in pixels (default 20)")
    g.add_argument("--thresholds", type=float, nargs=3, metavar=("P", "R", "O"),
                   help="P-, R-, O-Net thresholds (default 0.6 0.7 0.7)")
    g.add_argument("--factor", type=float, help="image pyramid factor (default 0.709)")
    c = p.add_argument_group("comparison")
    c.add_argument("-k", type=int, help="nearest neighbours per face (default 10)")
    c.add_argument("--threshold", type=float, help="pair distance threshold (default: the model's)")
    c.add_argument("--views", type=int, choices=[1, 2, 4],
                   help="embedding views averaged per face: 1, 2 (+ mirror), 4 (+ a chip from "
                        "MTCNN's landmarks and its mirror; dlib models; their default)")
    c.add_argument("--people-threshold", type=float,
                   help="people: groups merge while the root of their mean squared distance "
                        "is under this (default: the model's)")
    c.add_argument("--recluster", action="store_true", default=None,
                   help="cluster all faces into people again (default: only new faces join)")
    c.add_argument("--matrix-max-faces", type=int,
                   help="write distances.npy only up to this many faces (default 50000)")
    r = p.add_argument_group("resources")
    r.add_argument("--embed-batch-size", type=int, help="faces per embedding batch (default 32)")
    r.add_argument("--decode-workers", type=int, help="decoding threads (default 2)")
    r.add_argument("--max-pixels", type=int, help="refuse images declaring more pixels")
    r.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    m = p.add_argument_group("measurement")
    m.add_argument("--sample-interval", type=float, help="monitor sampling period in s (default 0.1)")
    m.add_argument("--plot", action="store_true", default=None, help="write perf/timeline.png")
    m.add_argument("--profile", action="store_true", default=None,
                   help="cProfile the run: perf/profile.txt (top 20) and perf/profile.prof")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="facedist", description="Which faces look like which?")
    parser.add_argument("--version", action="version", version=f"facedist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    p = sub.add_parser("near", help="most similar stored faces to each face in IMAGE")
    p.add_argument("image", type=Path)
    p.add_argument("--db", type=Path, required=True, help="output folder of an earlier run")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--weights", help="weights file, if the run's model needs one")
    p = sub.add_parser("export", help="embeddings.npy + faces.csv (+ parquet with pyarrow)")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--dest", type=Path, help="default DB/export")
    p = sub.add_parser("plot", help="draw perf/timeline.png of a finished run")
    p.add_argument("out", type=Path)
    p = sub.add_parser("people", help="list people, or correct them (name, merge, move, apart)")
    p.add_argument("out", type=Path, help="output folder of an earlier run")
    p.add_argument("action", nargs="?", default="list",
                   choices=["list", "name", "merge", "move", "apart"])
    p.add_argument("values", nargs="*", help="name ID NAME | merge INTO OTHER | "
                   "move FACE_ID PERSON_ID|new | apart ID ID")
    p = sub.add_parser("lookalikes", help="closest faces of different people")
    p.add_argument("out", type=Path)
    p.add_argument("-n", type=int, default=50, help="pairs to list (default 50)")
    p = sub.add_parser("eval", help="identity quality on labelled photos")
    p.add_argument("protocol", choices=["lfw", "people"],
                   help="lfw: LFW verification (DIR has pairs.txt and lfw/); people: BCubed of "
                        "people against folder names")
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output folder for the run")
    p.add_argument("--model", choices=sorted(EMBEDDERS))
    p.add_argument("--weights")
    p.add_argument("--views", type=int, choices=[1, 2, 4])
    p.add_argument("--people-threshold", type=float)
    p.add_argument("--label-face", choices=["largest", "center"], default="largest",
                   help="people: the labelled face of a photo (default largest)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    from .bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def cmd_run(args) -> int:
    from . import pipeline, report
    from .config import Settings, load_yaml

    settings = Settings(photos=args.photos, out=args.out)
    if args.config:
        settings.update(load_yaml(args.config))
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config", "func", "photos", "out")}
    settings.update(flags)
    if settings.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        summary = prof.runcall(pipeline.run, settings)
        perf = settings.out / "perf"
        prof.dump_stats(perf / "profile.prof")
        with open(perf / "profile.txt", "w") as fh:
            pstats.Stats(prof, stream=fh).sort_stats("cumulative").print_stats(20)
        print((perf / "profile.txt").read_text())
    else:
        summary = pipeline.run(settings)
    if settings.plot:
        from .monitor import plot_timeline

        plot_timeline(settings.out / "perf")
    print(report.format_summary(summary))
    if summary.warnings:
        print(f"facedist: {summary.warnings} warning(s): files skipped, reasons above "
              f"(and in the database)", file=sys.stderr)
    return 0


def cmd_near(args) -> int:
    from .api import open_db

    db = open_db(args.db)
    matches = db.near(args.image, k=args.k, weights=args.weights)
    if not matches:
        print(f"facedist: {args.image}: no face found, or no faces stored", file=sys.stderr)
    out = _csv_out(["query_face", "rank", "path", "face_index", "distance"])
    out.writerows([m.query_face, m.rank, m.path, m.face_index, f"{m.distance:.4f}"] for m in matches)
    return 0


def _csv_out(header: list[str]):
    """A CSV writer on stdout, its header written: paths with commas, quotes or newlines stay
    one field."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    return writer


def cmd_export(args) -> int:
    from .api import open_db

    for path in open_db(args.db).export(args.dest):
        print(path)
    return 0


def cmd_plot(args) -> int:
    from .monitor import plot_timeline

    print(plot_timeline(args.out / "perf"))
    return 0


def _ints(values: list[str], what: str) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(f"{what} takes numbers (ids from people.csv / faces.csv)") from None


def cmd_people(args) -> int:
    from .api import open_db

    db = open_db(args.out)
    v, act = args.values, args.action
    need = {"list": 0, "name": 2, "merge": 2, "move": 2, "apart": 2}[act]
    if len(v) != need:
        raise ValueError(f"people {act} takes {need} values: see facedist people --help")
    if act == "name":
        db.name_person(_ints(v[:1], "name")[0], v[1])
        print(f"person {v[0]} is now named {v[1]!r}")
    elif act == "merge":
        into, other = _ints(v, "merge")
        db.merge_people(into, other)
        print(f"person {other} merged into {into}")
    elif act == "move":
        face = _ints(v[:1], "move")[0]
        to = db.move_face(face, None if v[1] == "new" else _ints(v[1:], "move")[0])
        print(f"face {face} moved to person {to}")
    elif act == "apart":
        a, b = _ints(v, "apart")
        db.apart(a, b)
        print(f"persons {a} and {b} will stay apart")
    else:
        _csv_out(["person", "name", "faces", "photos"]).writerows(
            [p.id, p.name or "", p.faces, p.photos] for p in db.people())
    return 0


def cmd_lookalikes(args) -> int:
    from .api import open_db

    pairs = open_db(args.out).lookalikes(args.n)
    _csv_out(["rank", "distance", "face_a", "path_a", "person_a", "face_b", "path_b", "person_b"]) \
        .writerows([m.rank, f"{m.distance:.4f}", m.face_a, m.path_a, m.person_a, m.face_b, m.path_b,
                    m.person_b] for m in pairs)
    return 0


def cmd_eval(args) -> int:
    import dataclasses
    import json

    from .config import Settings
    from .evaluate import eval_lfw, eval_people
    from .pipeline import resolved_views

    settings = Settings(progress=False).update(
        {"model": args.model, "weights": args.weights, "views": args.views,
         "people_threshold": args.people_threshold})
    if args.protocol == "lfw":
        res = eval_lfw(args.dir, args.out, settings)
        print(f"LFW verification, {settings.model}: {100 * res.accuracy:.2f}% ± {100 * res.std:.2f} "
              f"over {len(res.folds)} folds ({res.pairs} pairs, threshold {res.threshold:.3f}, "
              f"{res.no_face} photos without a detected face)")
    else:
        res = eval_people(args.dir, args.out, settings, args.label_face)
        print(f"people, {settings.model}: BCubed precision {res.precision:.3f}, recall "
              f"{res.recall:.3f}, F {res.f:.3f}; {res.people_found} people found, "
              f"{res.people_true} true ({res.labelled} labelled of {res.faces} faces)")
    if settings.weights == "synthetic":
        print("(synthetic weights: this only shows the code path; the figure means nothing)")
    if args.json:
        args.json.write_text(json.dumps({"protocol": args.protocol, "model": settings.model,
                                         "views": resolved_views(settings),
                                         **dataclasses.asdict(res)},
                                        indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"run": cmd_run, "near": cmd_near, "export": cmd_export, "plot": cmd_plot,
                "people": cmd_people, "lookalikes": cmd_lookalikes, "eval": cmd_eval}
    if args.command == "bench":
        from .bench import cmd_bench

        commands["bench"] = cmd_bench
    try:
        return commands[args.command](args)
    except WeightsUnavailable as exc:
        print(f"facedist: {exc}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as exc:
        print(f"facedist: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `facedist people OUT | head`: the reader has all it wants
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
