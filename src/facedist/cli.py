"""cli: the `facedist` command.

    facedist run PHOTOS --out OUT [--model dlib-resnet] [--faces all|largest] [--exact] ...
    facedist near IMAGE --db OUT [-k 10]
    facedist export --db OUT [--dest DIR]
    facedist plot OUT
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
    parser = argparse.ArgumentParser(prog="facedist", description="Which faces look like which?")
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
        print(f"{args.image}: no face found, or no faces stored")
        return 0
    print("query_face,rank,path,face_index,distance")
    for m in matches:
        print(f"{m.query_face},{m.rank},{m.path},{m.face_index},{m.distance:.4f}")
    return 0


def cmd_export(args) -> int:
    from .api import open_db

    for path in open_db(args.db).export(args.dest):
        print(path)
    return 0


def cmd_plot(args) -> int:
    from .monitor import plot_timeline

    print(plot_timeline(args.out / "perf"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"run": cmd_run, "near": cmd_near, "export": cmd_export, "plot": cmd_plot}
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


if __name__ == "__main__":
    sys.exit(main())
