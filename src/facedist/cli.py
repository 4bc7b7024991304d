"""cli: the `facedist` command.

    facedist run PHOTOS --out OUT [--model dlib-resnet] [--faces all|largest] [--exact] ...
    facedist near IMAGE --db OUT [-k 10]
    facedist export OUT [--dest DIR]
    facedist export OUT --xmp [named|all] [--sidecar-name photo.jpg.xmp|photo.xmp]
                        [--dest DIR | --in-place]      names as XMP face regions
    facedist plot OUT
    facedist people OUT [list | name ID NAME | merge ID ID | move FACE_ID ID|new | apart ID ID
                         | ignore face FACE_ID | ignore person ID | unignore face|person ID
                         | review [-n N] | answer QUESTION yes|no|skip|ignore|name=NAME|person=ID
                         | undo | tags]
    facedist review OUT [--open]        a local page to answer the review queue
    facedist lookalikes OUT [-n 50] [--maybe-same]
    facedist report OUT                 → OUT/report/index.html
    facedist eval lfw DIR --out OUT    |    facedist eval people DIR --out OUT
    facedist bench PHOTOS --out OUT [--variants ...] [--limit N]
    facedist weights [fetch MODEL ...]  each model's files: source, SHA-256, where (or get them)
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import FacedistError, InternalError, explain
from .models import EMBEDDERS, WEIGHTS_MODELS

log = logging.getLogger("facedist")


class _Parser(argparse.ArgumentParser):
    """argparse, whose errors (a wrong choice, a number that is not one) are one line and exit
    2, as every other bad setting (config.py), not a page of usage."""

    def error(self, message: str):
        self.exit(2, f"facedist: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    """--port: a whole number 0..65535 (0: any free port); a wrong one is argparse's one line."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535 (0: any "
                                         f"free port), not {text!r}")
    return int(text)


def _common(json_output: bool) -> argparse.ArgumentParser:
    """Flags every command takes: -v/-q, and --json where the output is a result."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="say more on stderr (each "
                   "skipped file, tracebacks of internal errors)")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr, no progress")
    if json_output:
        p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    return p


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="detect, embed and compare every face under PHOTOS",
                       parents=[_common(True)])
    p.add_argument("photos", type=Path, help="folder of photos (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="output folder (database, CSVs, perf/)")
    p.add_argument("--config", type=Path, help="YAML file of settings; flags override it")
    p.add_argument("--model", choices=sorted(EMBEDDERS), help="embedder (default dlib-resnet)")
    p.add_argument("--weights", help="weights file for the embedder ('synthetic': timing only)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto")
    p.add_argument("--precision", choices=["fp32", "fp16"],
                   help="fp32: the CPU's answers on any device (default); fp16: the embedder in "
                        "half precision on a GPU (detection stays fp32)")
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
    c.add_argument("--min-quality", type=float,
                   help="faces under this quality (0-1) never start, link or join people "
                        "unclearly, nor show in look-alikes (default: the model's; 0: no gate)")
    c.add_argument("--same-photo-apart", action=argparse.BooleanOptionalAction, default=None,
                   help="faces of one photo never become one person by themselves (default on)")
    c.add_argument("--tags", action=argparse.BooleanOptionalAction, default=None,
                   help="read names from the photos' XMP face regions (their own and sidecars "
                        "beside them: digiKam, Lightroom, exiftool); --no-tags: not (default on)")
    c.add_argument("--recluster", action="store_true", default=None,
                   help="cluster all faces into people again (default: only new faces join)")
    c.add_argument("--matrix-max-faces", type=int,
                   help="write distances.npy only up to this many faces (default 50000)")
    c.add_argument("--exact-neighbors", action="store_true", default=None,
                   help="exact neighbour search at any size (default: exact below 200,000 "
                        "faces, approximate HNSW from there)")
    c.add_argument("--max-pairs", type=int,
                   help="list at most this many pairs under the threshold, the closest "
                        "(default 1000000)")
    r = p.add_argument_group("resources")
    r.add_argument("--engine", choices=["local", "ray"],
                   help="local: this machine (default); ray: the Ray cluster of RAY_ADDRESS, or "
                        "a local Ray instance (pip install 'facedist[ray]')")
    r.add_argument("--ray-actors", type=int,
                   help="Ray actors processing photos (default: one per --ray-actor-cpus CPUs "
                        "of the cluster, or one per GPU)")
    r.add_argument("--ray-actor-cpus", type=int, help="CPUs (torch threads) per Ray actor (default 1)")
    r.add_argument("--embed-batch-size", type=int,
                   help="faces per embedding batch (default 32; 256 on a GPU)")
    r.add_argument("--chunk-images", type=int,
                   help="photos decoded, detected and stored together (default 16; 256 on a GPU)")
    r.add_argument("--decode-workers", type=int,
                   help="decoding threads (default 2; every core with a GPU)")
    r.add_argument("--max-pixels", type=int, help="refuse images declaring more pixels")
    r.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    r.add_argument("--wait", action="store_true", default=None,
                   help="if another run is writing OUT, wait for it (default: exit 6 at once)")
    m = p.add_argument_group("measurement")
    m.add_argument("--sample-interval", type=float, help="monitor sampling period in s (default 0.1)")
    m.add_argument("--plot", action="store_true", default=None, help="write perf/timeline.png")
    m.add_argument("--report", action="store_true", default=None,
                   help="write the HTML report, OUT/report/index.html (as `facedist report OUT`)")
    m.add_argument("--profile", action="store_true", default=None,
                   help="cProfile the run: perf/profile.txt (top 20) and perf/profile.prof")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="facedist", description="Which faces look like which?")
    parser.add_argument("--version", action="version", version=f"facedist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    p = sub.add_parser("near", help="most similar stored faces to each face in IMAGE",
                       parents=[_common(True)])
    p.add_argument("image", type=Path)
    p.add_argument("--db", type=Path, required=True, help="output folder of an earlier run")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--weights", help="weights file, if the run's model needs one")
    p = sub.add_parser("export", help="embeddings.npy + faces.csv (+ parquet with pyarrow); "
                       "with --xmp, XMP sidecars naming the faces (digiKam, Lightroom, Immich)",
                       parents=[_common(True)])
    p.add_argument("out", type=Path, nargs="?", help="output folder of an earlier run")
    p.add_argument("--db", type=Path, help="the output folder (as OUT)")
    p.add_argument("--dest", type=Path, help="default OUT/export; with --xmp OUT/xmp, mirroring "
                   "the photo tree")
    p.add_argument("--xmp", nargs="?", const="named", choices=["named", "all"],
                   help="XMP sidecars with a face region per face of a named person (all: of "
                        "every person, the unnamed as 'person 12'); merged into existing ones")
    p.add_argument("--sidecar-name", choices=["photo.jpg.xmp", "photo.xmp"],
                   default="photo.jpg.xmp",
                   help="photo.jpg.xmp (digiKam's, default) or photo.xmp (Lightroom's)")
    p.add_argument("--in-place", action="store_true",
                   help="--xmp: write the sidecars beside the photos (never into them)")
    p = sub.add_parser("plot", help="draw perf/timeline.png of a finished run",
                       parents=[_common(False)])
    p.add_argument("out", type=Path)
    p = sub.add_parser("people", help="list people, or correct them (name, merge, move, apart, "
                       "ignore, unignore)",
                       parents=[_common(True)])
    p.add_argument("out", type=Path, help="output folder of an earlier run")
    p.add_argument("action", nargs="?", default="list",
                   choices=["list", "name", "merge", "move", "apart", "ignore", "unignore",
                            "review", "answer", "undo", "tags"])
    p.add_argument("values", nargs="*", help="name ID NAME | merge INTO OTHER | "
                   "move FACE_ID PERSON_ID|new | apart ID ID | ignore face FACE_ID | "
                   "ignore person ID | unignore face FACE_ID | unignore person ID | "
                   "review (the questions worth most; none when done) | answer QUESTION "
                   "yes|no|skip|ignore|name=NAME|person=ID|not=FACE_ID,FACE_ID|none | "
                   "undo (the last answer) | "
                   "tags (face regions read from the photos' XMP, disagreements first)")
    p.add_argument("-n", type=int, default=10, help="review: questions to list (default 10)")
    p.add_argument("--all", action="store_true",
                   help="review: also the questions past done (strangers to hide first)")
    p = sub.add_parser("review", help="a local page to answer the review queue (who is who)",
                       parents=[_common(False)])
    p.add_argument("out", type=Path, help="output folder of an earlier run")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument("--port", type=_port, default=0,
                   help="port on 127.0.0.1, 0 to 65535 (default 0: a free one)")
    p = sub.add_parser("lookalikes", help="closest faces of different people",
                       parents=[_common(True)])
    p.add_argument("out", type=Path)
    p.add_argument("-n", type=int, default=50, help="pairs to list (default 50)")
    p.add_argument("--maybe-same", action="store_true",
                   help="list the pairs of people that are maybe one person instead (the "
                        "review's \"same person?\" questions)")
    p = sub.add_parser("report", help="offline HTML report: OUT/report/index.html",
                       parents=[_common(True)])
    p.add_argument("out", type=Path, help="output folder of an earlier run")
    p.add_argument("--dest", type=Path, help="report folder (default OUT/report)")
    p.add_argument("--workers", type=int, default=2, help="threads cutting thumbnails (default 2)")
    p = sub.add_parser("eval", help="identity quality on labelled photos", parents=[_common(False)])
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
    p.add_argument("--json-file", dest="json_file", type=Path,
                   help="also write the figures to this JSON file")
    p = sub.add_parser("weights", help="each model's files: source, SHA-256, present or not; "
                       "`weights fetch MODEL` gets them", parents=[_common(True)])
    p.add_argument("action", nargs="?", default="list", choices=["list", "fetch"])
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help=f"fetch: {', '.join(WEIGHTS_MODELS)}, or all")
    # listed here; its arguments are the bench package's own (_main hands them over), so that
    # no other command imports that package
    sub.add_parser("bench", help="run the study's versions and facedist side by side "
                   "(facedist bench --help)", add_help=False)
    return parser


def cmd_run(args) -> int:
    from .config import Settings, load_yaml

    settings = Settings()
    if args.config:
        settings.update(load_yaml(args.config))
    flags = {k: v for k, v in vars(args).items()  # flags win, PHOTOS and --out included
             if k not in ("command", "config", "verbose", "quiet", "json", "own_process")}
    settings.update(flags)
    if args.quiet:
        settings.progress = False
    from . import pipeline, report  # torch: after the settings, so a wrong value is told at once
    if args.own_process:  # torch's modules, loaded for good: no collection walks them again
        from .memory import freeze_loaded

        freeze_loaded()

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
    if args.json:  # the summary as the result, on stdout
        _print_json(report.summary_dict(summary))
    elif not args.quiet:  # else a message (the results are OUT's files): on stderr, as all are
        print(report.format_summary(summary), file=sys.stderr)
    if summary.skipped:
        log.warning(f"warning: {sum(summary.skipped.values())} file(s) skipped, the reasons in "
                    f"the summary (each file with -v, and in the database)")
    if summary.unreadable_folders:
        log.warning(f"warning: {len(summary.unreadable_folders)} folder(s) could not be listed, "
                    f"their photos left out (named in the summary)")
    return 0


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


def cmd_near(args) -> int:
    from .api import open_db

    from .discover import display_path

    db = open_db(args.db)
    matches = db.near(args.image, k=args.k, weights=args.weights)
    if not matches:
        log.warning(f"{display_path(args.image)}: no face found, or no faces stored")
    header = ["query_face", "rank", "path", "face_index", "distance"]
    _results(args, header, [[m.query_face, m.rank, display_path(m.path), m.face_index,
                             round(m.distance, 4)] for m in matches])
    return 0


def _results(args, header: list[str], rows: list[list]) -> None:
    """Result rows on stdout: CSV with its header, or with --json a list of objects."""
    if getattr(args, "json", False):
        _print_json([dict(zip(header, r)) for r in rows])
    else:
        _csv_out(header).writerows(rows)


def _csv_out(header: list[str]):
    """A CSV writer on stdout, its header written: paths with commas, quotes or newlines stay
    one field."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    return writer


def cmd_export(args) -> int:
    from .api import open_db

    from .discover import display_path

    if (args.out is None) == (args.db is None):
        raise ValueError("export takes one output folder: facedist export OUT (or --db OUT)")
    db = open_db(args.out or args.db)
    if args.xmp:
        written = db.export_xmp(args.xmp, args.sidecar_name, args.dest, args.in_place)
        if not written and not args.json:
            log.warning("no sidecar written: no photo has a face of a named person"
                        + ("" if args.xmp == "all" else " (--xmp all: of any person)"))
    elif args.in_place:
        raise ValueError("--in-place goes with --xmp (the sidecars beside the photos)")
    else:
        written = db.export(args.dest)
    written = [display_path(p) for p in written]
    if args.json:
        _print_json(written)
    else:
        print("\n".join(written))
    return 0


def cmd_plot(args) -> int:
    from .monitor import plot_timeline

    print(plot_timeline(args.out / "perf"))
    return 0


def _ids(values: list[str], kind: str) -> list[int]:
    """Ids as typed, each checked before it reaches the database (config.checked_id)."""
    from .config import checked_id

    return [checked_id(v, kind) for v in values]


def _review_rows(args, db) -> None:
    """`people OUT review`: the questions worth most, each with the people and the faces it
    shows (ids, per side, as the page shows them) and the answers it takes. CSV: a row a
    question, faces and answers space-separated; --json: faces as {"left": [...], "right":
    [...]} and each suggestion with its faces."""
    from .display import shown

    queue = db.review_queue()
    questions = db.review_questions(args.n, past_done=args.all)
    header = ["question", "kind", "value", "person", "other", "face_id", "distance",
              "suggestions", "people", "faces", "answers", "reason"]
    rows = []
    for q in questions:
        faces = queue.shown(q)
        people = [q.a] + ([q.b] if q.b is not None else [])
        sides = {k: v for k, v in faces.items() if k != "suggestions"}
        if args.json:
            sugg = [{"person": p, "name": shown(n), "distance": round(d, 4),
                     "near": i == 0 and q.near, "faces": faces["suggestions"][p]}
                    for i, (p, n, d) in enumerate(q.suggestions)]
            rows.append([q.id, q.kind, round(q.value, 4), q.a, q.b, q.face, round(q.distance, 4),
                         sugg, people, sides, q.answers, shown(q.reason)])
        else:
            rows.append([q.id, q.kind, round(q.value, 4), q.a, "" if q.b is None else q.b,
                         "" if q.face is None else q.face, round(q.distance, 4),
                         " ".join(f"{p}:{shown(n)}" for p, n, _ in q.suggestions),
                         " ".join(map(str, people)),
                         " ".join(f"{k}:{','.join(map(str, v))}" for k, v in sides.items()),
                         " ".join(q.answers), shown(q.reason)])
    _results(args, header, rows)


def cmd_people(args) -> int:
    from .api import open_db
    from .display import shown

    db = open_db(args.out)
    v, act = args.values, args.action
    need = {"list": 0, "name": 2, "merge": 2, "move": 2, "apart": 2, "ignore": 2, "unignore": 2,
            "review": 0, "answer": 2, "undo": 0, "tags": 0}[act]
    if act in ("ignore", "unignore") and (len(v) != 2 or v[0] not in ("face", "person")):
        raise ValueError(f"people {act} takes face FACE_ID or person ID (face ids from faces.csv, "
                         f"person ids from people.csv)")
    if len(v) != need:
        raise ValueError(f"people {act} takes {need} values: see facedist people --help")
    if act == "name":
        person = _ids(v[:1], "person")[0]
        db.name_person(person, v[1])
        said, done = f'person {person} is now named "{shown(v[1])}"', {"person": person,
                                                                      "name": shown(v[1])}
    elif act == "merge":
        into, other = _ids(v, "person")
        db.merge_people(into, other)
        said, done = f"person {other} merged into {into}", {"person": into, "merged": other}
    elif act == "move":
        face = _ids(v[:1], "face")[0]
        to = db.move_face(face, None if v[1] == "new" else _ids(v[1:], "person")[0])
        said, done = f"face {face} moved to person {to}", {"face_id": face, "person": to}
    elif act == "apart":
        a, b = _ids(v, "person")
        db.apart(a, b)
        said, done = f"persons {a} and {b} will stay apart", {"apart": [a, b]}
    elif act == "review":
        _review_rows(args, db)
        return 0
    elif act == "answer":
        reply = v[1]
        if reply.startswith("name="):
            reply = {"name": reply[5:]}
        elif reply.startswith("person="):
            reply = {"person": _ids([reply[7:]], "person")[0]}
        elif reply.startswith("not="):
            reply = {"not": _ids(reply[4:].split(","), "face")}
        result = db.answer(v[0], reply)
        # what the user typed (a name) as shown, here as everywhere
        done = {**result, "question": shown(v[0]),
                "answer": {k: shown(x) if isinstance(x, str) else x for k, x in reply.items()}
                if isinstance(reply, dict) else reply,
                "done": [[shown(x) if isinstance(x, str) else x for x in d] for d in result["done"]]}
        said = f"{done['question']}: {shown(v[1])} (" + (
            "; ".join(" ".join(map(str, d[:-1])) for d in done["done"]) or "nothing to change") + ")"
    elif act == "tags":
        from .discover import display_path

        regions = db.tags()
        header = ["path", "source", "name", "x", "y", "w", "h", "face_id", "person", "outcome",
                  "note"]
        _results(args, header, [[display_path(r["path"]), shown(r["source"]), shown(r["name"]),
                                 *(round(r[k], 4) for k in "xywh"),
                                 "" if r["face_id"] is None else r["face_id"],
                                 "" if r["person"] is None else r["person"], r["outcome"],
                                 shown(r["note"] or "")] for r in regions])
        disagree = sum(r["outcome"] in ("conflict", "apart") for r in regions)
        if disagree and not args.json:
            log.warning(f"{disagree} region(s) disagree with facedist or with one another "
                        f"(outcome conflict: not applied; apart: one name on people facedist "
                        f"keeps apart): the note says what to do")
        return 0
    elif act == "undo":
        undone = db.undo()
        if undone is None:
            raise ValueError("no review answer to undo")
        undone = {k: shown(str(v)) for k, v in undone.items()}
        said, done = f"{undone['question']}: answer {undone['answer']} taken back", undone
    elif act in ("ignore", "unignore"):
        what, n = v[0], _ids(v[1:], v[0])[0]
        count = getattr(db, f"{act}_{what}")(n)
        count = 1 if count is None else count
        said = (f"{what} {n} {act}d ({count} face{'s' if count != 1 else ''})" if what == "person"
                else f"face {n} {act}d")
        done = {what: n, act + "d": count}
    else:
        _results(args, ["person", "name", "faces", "photos"],
                 [[p.id, shown(p.name or ""), p.faces, p.photos] for p in db.people()])
        return 0
    if args.json:
        _print_json({"action": act, **done})
    else:
        print(said)
    return 0


def cmd_review(args) -> int:
    from .review_server import serve

    return serve(args.out, open_browser=args.open, port=args.port)


def cmd_lookalikes(args) -> int:
    from .api import open_db

    from .discover import display_path

    db = open_db(args.out)
    if args.maybe_same:
        pairs = db.maybe_same(args.n)
        _results(args, ["rank", "chance_same", "rms_distance", "question", "distance", "face_a",
                        "path_a", "person_a", "face_b", "path_b", "person_b"],
                 [[m.rank, round(m.chance, 3), round(m.rms, 4), m.question, round(m.distance, 4),
                   m.face_a, display_path(m.path_a), m.person_a, m.face_b,
                   display_path(m.path_b), m.person_b] for m in pairs])
        return 0
    pairs = db.lookalikes(args.n)
    _results(args, ["rank", "distance", "face_a", "path_a", "person_a", "face_b", "path_b",
                    "person_b"],
             [[m.rank, round(m.distance, 4), m.face_a, display_path(m.path_a), m.person_a,
               m.face_b, display_path(m.path_b), m.person_b] for m in pairs])
    maybe = len(db.maybe_same(10_000))
    if maybe:  # on stderr: stdout stays the table (or JSON)
        log.info(f"{maybe} pair{'s' if maybe != 1 else ''} of people may be one person, not "
                 f"listed here: `facedist lookalikes {display_path(args.out)} --maybe-same` lists "
                 f"them; `facedist review` asks them")
    return 0


def cmd_report(args) -> int:
    from .api import open_db
    from .discover import display_path

    if args.workers < 1:
        raise ValueError(f"--workers takes a whole number, at least 1, not {args.workers}")
    db = open_db(args.out)
    try:
        r = db.report(args.dest, args.workers, progress=not (args.quiet or args.json))
    finally:
        db.close()
    if args.json:
        _print_json({"index": display_path(r.index), "pages": r.pages, "faces": r.faces,
                     "people": r.people, "thumbnails_made": r.thumbs_made,
                     "thumbnails_kept": r.thumbs_kept, "thumbnails_failed": r.thumbs_failed,
                     "seconds": round(r.seconds, 3)})
        return 0
    print(display_path(r.index))
    log.info(f"{r.pages} pages, {r.faces} faces, {r.people} people; thumbnails: {r.thumbs_made} "
             f"cut, {r.thumbs_kept} kept from before; {r.seconds:.1f} s")
    for photo, reason in r.thumbs_failed.items():
        log.warning(f"no thumbnails from {photo}: {reason}")
    return 0


def cmd_eval(args) -> int:
    import dataclasses

    from .config import Settings
    from .evaluate import eval_lfw, eval_people
    from .models import resolved_views

    settings = Settings(progress=False).update(
        {"model": args.model, "weights": args.weights, "views": args.views,
         "people_threshold": args.people_threshold})
    if args.protocol == "lfw":
        res = eval_lfw(args.dir, args.out, settings)
        print(f"LFW verification, {settings.model}: {100 * res.accuracy:.2f}% ± {100 * res.std:.2f} "
              f"over {len(res.folds)} folds ({res.pairs} pairs, threshold {res.threshold:.3f}, "
              f"{res.no_face} photos without a detected face)")
        print("per fold (threshold chosen on the other folds): " + "; ".join(
            f"{100 * a:.2f}% at {t:.3f}" for a, t in zip(res.folds, res.thresholds)))
    else:
        res = eval_people(args.dir, args.out, settings, args.label_face)
        print(f"people, {settings.model}: BCubed precision {res.precision:.3f}, recall "
              f"{res.recall:.3f}, F {res.f:.3f}; {res.people_found} people found, "
              f"{res.people_true} true ({res.labelled} labelled of {res.faces} faces)")
    if settings.weights == "synthetic":
        print("(synthetic weights: this only shows the code path; the figure means nothing)")
    if args.json_file:
        args.json_file.write_text(json.dumps({"protocol": args.protocol, "model": settings.model,
                                         "views": resolved_views(settings),
                                         **dataclasses.asdict(res)},
                                        indent=1) + "\n")
    return 0


def cmd_weights(args) -> int:
    from .models import fetch_weights, weights_files, weights_status

    if args.action == "fetch":
        models = WEIGHTS_MODELS if args.models == ["all"] else args.models
        if not models:
            raise ValueError(f"weights fetch: name a model ({', '.join(WEIGHTS_MODELS)}) or all")
        for model in models:
            weights_files(model)  # an unknown name: one line, before anything is fetched
        for model in models:
            for path in fetch_weights(model):
                log.info(f"{model}: {path}")
        return 0
    rows = [{"model": r.model, "file": r.source.filename, "source": r.source.url or
             f"package {r.source.package}", "sha256": r.source.sha256, "license": r.source.license,
             "where": r.where, "path": str(r.path) if r.path else None}
            for r in weights_status()]
    if args.json:
        _print_json(rows)
        return 0
    line = "{:<19} {:<42} {:<32} {:<17} {}"
    print(line.format("MODEL", "FILE", "PRESENT", "SHA-256", "SOURCE"))
    for r in rows:  # a hash the registry lacks is recorded at download and checked from then on
        print(line.format(r["model"], Path(r["file"]).name, r["where"],
                          (r["sha256"] or "at download")[:16], r["source"]))
    return 0


def program() -> int:
    """The `facedist` command and `python -m facedist`: main() in a process of its own."""
    return main(own_process=True)


def main(argv: list[str] | None = None, own_process: bool = False) -> int:
    """The command line: every failure is one line on stderr and an exit code (errors.py).
    Ctrl-C exits 130 and SIGTERM 143, each with one line; a run is then recorded as failed.
    `own_process`: the process ends with this command, so what it loaded is frozen out of the
    garbage collector (memory.freeze_loaded), which a caller that goes on would not want."""
    from .interrupts import stop_on_signals

    with stop_on_signals():
        try:
            return _main(argv, own_process)
        except KeyboardInterrupt as exc:  # at start-up, or while a failure was being reported
            return _interrupted(exc)
        finally:
            if own_process:  # the interpreter's last collection would walk torch's objects
                from .memory import freeze_loaded

                freeze_loaded()


def _interrupted(exc: KeyboardInterrupt) -> int:
    code = getattr(exc, "exit_code", 130)
    how = "interrupted (SIGTERM)" if code == 143 else "interrupted"
    return _fail(f"{how}: what was stored is kept, and a rerun goes on from there", code)


def _main(argv: list[str] | None, own_process: bool) -> int:
    from . import tune_process

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from .bench import bench_parser

        args = bench_parser([_common(False)], _Parser).parse_args(argv[1:])
        args.command = "bench"
    else:
        args = build_parser().parse_args(argv)
    args.own_process = own_process
    _setup_logging(args)
    tune_process()  # this process is ours: leaner malloc and oneDNN caches for long runs
    commands = {"run": cmd_run, "near": cmd_near, "export": cmd_export, "plot": cmd_plot,
                "people": cmd_people, "lookalikes": cmd_lookalikes, "report": cmd_report,
                "eval": cmd_eval, "weights": cmd_weights, "review": cmd_review}
    if args.command == "bench":
        from .bench import cmd_bench

        commands["bench"] = cmd_bench
    out = getattr(args, "out", None) or getattr(args, "db", None)
    try:
        return commands[args.command](args)
    except InternalError as exc:  # a bug met in the database (errors.explain)
        log.debug("traceback of the internal error:", exc_info=True)
        return _fail(str(exc), exc.exit_code)
    except FacedistError as exc:
        return _fail(str(exc), exc.exit_code)
    except (ValueError, FileNotFoundError) as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except BrokenPipeError:  # `facedist people OUT | head`: the reader has all it wants
        sys.stdout = None
        return 0
    except Exception as exc:
        fault = explain(exc, out, getattr(args, "dest", None))
        if fault is not None and not isinstance(fault, InternalError):
            return _fail(str(fault), fault.exit_code)
        log.debug("traceback of the internal error:", exc_info=True)
        if fault is not None:
            return _fail(str(fault), fault.exit_code)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _fail(f"internal error: {type(exc).__name__}: {first} (a bug: run again with -v "
                     f"for the traceback, and please report it)", 1)


def _fail(message: str, code: int) -> int:
    from .display import shown

    # its first line; a path's bytes that are not UTF-8, or a control character (a name's) in
    # it, as \xNN
    print(f"facedist: {shown(message.splitlines()[0], None) if message.strip() else 'failed'}",
          file=sys.stderr)
    return code


def _setup_logging(args) -> None:
    """Messages on stderr as `facedist: ...` lines; results alone go to stdout."""
    level = (logging.DEBUG if getattr(args, "verbose", False)
             else logging.ERROR if getattr(args, "quiet", False) else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("facedist: %(message)s"))
    handler.addFilter(_first_line)
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    # a library's Python warnings (torch, Pillow): one line each, and only with -v
    logging.captureWarnings(True)
    warned = logging.getLogger("py.warnings")
    warned.handlers[:] = [handler]
    warned.setLevel(logging.DEBUG if level == logging.DEBUG else logging.CRITICAL)
    warned.propagate = False


def _first_line(record: logging.LogRecord) -> bool:
    """Every message is one line (a warning's source line and the like are dropped), with no
    control character (a name's, a path's) as it is."""
    from .display import shown

    text = record.getMessage()
    record.msg, record.args = shown((text.splitlines() or [""])[0], None), ()
    return True


if __name__ == "__main__":
    sys.exit(main())
