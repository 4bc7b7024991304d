"""pipeline: a run, orchestrated. discover → the files that need work → an engine processes
and stores them (engines/: this process, or a Ray cluster; the per-photo work is compute.py) →
compare → people → report, on the current faces. Re-runs take only new or changed files;
moved photos keep their records.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import sqlite3
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .compare import compare, is_approximate
from .compute import Work
from .config import Settings
from .discover import (ImageFile, Rejected, Unlistable, check_photo_root, discover_images,
                       display_path, photo_root)
from .engines.local import LocalEngine
from .engines.ray import RayEngine
from .errors import InternalError, explain, explained
from .models import get_spec, pipeline_key, resolve_weights, resolved_min_quality, sha256_file
from .monitor import Monitor
from .people import GRAPH_NEIGHBORS, assign_people, photo_ids, suggest_threshold
from .quality import fill_quality
from .store import DB_NAME, FaceStore, ImageResult, writing
from .version import __version__
from . import report

log = logging.getLogger("facedist")


@dataclass
class RunSummary:
    out: Path
    images: int = 0  # image files found
    processed: int = 0  # decoded and detected in this run
    reused: int = 0  # unchanged since an earlier run: results taken from the database
    copies: int = 0  # byte-identical to another file: that file's results copied
    faces: int = 0  # faces over all current images
    people: int = 0  # distinct people among those faces
    unclear: int = 0  # faces under the quality gate that joined nobody (quality.py, people.py)
    threshold: float | None = None  # pair threshold in use
    suggested_threshold: float | None = None  # from the photos' own distances (people.py)
    skipped: dict[str, int] = field(default_factory=dict)  # reason → count
    # folders that could not be listed (display_path → reason): their photos are left out
    unreadable_folders: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    report: Path | None = None  # report/index.html, with settings.report
    pairs: int = 0  # pairs listed (pairs.csv / pairs.parquet)
    pairs_found: int = 0  # pairs under the threshold, before --max-pairs
    approximate: bool = False  # neighbours from the approximate search (compare.py)

    @property
    def warnings(self) -> int:
        """Files skipped and folders left out."""
        return sum(self.skipped.values()) + len(self.unreadable_folders)


def versions() -> dict[str, str]:
    import PIL

    return {"facedist": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


def run(settings: Settings, monitor: Monitor | None = None, engine=None) -> RunSummary:
    """Run the whole pipeline on settings.photos into settings.out; returns the summary.

    Faults raise errors.FacedistError (one line, with its exit code); the run is then recorded
    as failed, what was stored stays, and a rerun goes on from there."""
    if settings.photos is None or settings.out is None:
        raise ValueError("photos and out are required")
    check_photo_root(settings.photos)  # one that cannot be listed is refused before any work
    photos_at, out_at = Path(settings.photos).resolve(), Path(settings.out).resolve()
    if out_at == photos_at or out_at in photos_at.parents:
        # the database and perf/ would be written into the photo tree
        raise ValueError(f"--out {display_path(settings.out)} is the photo folder or holds it: "
                         f"choose an output folder outside {display_path(settings.photos)} "
                         f"(one inside it is fine)")
    out = Path(settings.out)
    # the local engine builds its models here: missing weights fail at once, before any work
    # `engine`: one the caller built (tests: another compute object); it closes it then
    own_engine = engine is None
    if own_engine:
        engine = (RayEngine if settings.engine == "ray" else LocalEngine)(settings)
    try:
        if settings.report:  # a report folder of someone else's: refused before anything is written
            from .report.html import own_files

            own_files(out / "report")
        spec = get_spec(settings.model)
        weights = None if settings.weights == "synthetic" else resolve_weights(spec, settings.weights)
        weights_sha = None if weights is None else sha256_file(weights)
        with ExitStack() as folder:
            with explained(display_path(out)):
                out.mkdir(parents=True, exist_ok=True)
                # the one write path: the folder's lock, then (what is stored checked first,
                # read-only: a run that refuses an output writes nothing to it) one connection
                store = folder.enter_context(writing(
                    out, "run", wait=settings.wait, create=True,
                    verify=lambda: _check_stored(out, pipeline_key(settings),
                                                 weights and weights.name, weights_sha)))
            summary = _run_locked(settings, engine, out, monitor or Monitor(settings.sample_interval),
                                  store, spec, weights, weights_sha)
            if settings.report:
                summary.report = _write_report(settings, out, store)
            return summary
    finally:
        if own_engine:
            engine.close()


def _write_report(settings: Settings, out: Path, store: FaceStore) -> Path:
    """The HTML report of the run just finished (the caller holds the output folder, and
    `store` is its writer)."""
    from .facedb import FaceDB
    from .report.html import write_report

    with explained(display_path(out)):
        db = FaceDB(out)
        try:
            return write_report(db, workers=settings.decode_workers or 2,
                                progress=settings.progress, store=store).index
        finally:
            db.close()


def _run_locked(settings: Settings, engine, out: Path, monitor: Monitor, store: FaceStore,
                spec, weights: Path | None, weights_sha: str | None) -> RunSummary:
    summary = RunSummary(out=out)
    t0 = time.perf_counter()
    run_id = None
    try:
        key = pipeline_key(settings)
        if weights is not None:  # the database records the weights its embeddings come from
            store.check_weights(weights.name, weights_sha)
        # runs still "running" ended without a word (kill -9, a crash, power lost): this run
        # holds the output lock, so none of them is still writing
        for old in store.mark_interrupted_runs():
            log.warning(f"run {old} of this output folder was interrupted (the process ended "
                        f"before it finished); recorded as failed, and this run goes on from it")
        # the last run's report left incomplete (Ctrl-C): this run's record says so too, until
        # a report is written (run --report, facedist report)
        last = store.last_run()
        unfinished = (not settings.report and last is not None and
                      store.run_record(last["id"])["summary"].get("report") == "incomplete")
        earlier = _earlier_people(store, last, key)
        run_id = store.begin_run(key, settings.model, str(Path(settings.photos).resolve()),
                                 settings.to_dict(), versions())
        monitor.start()
        paths = _run_stages(settings, engine, spec, store, run_id, key, monitor, summary, earlier)
        monitor.stop()
        summary.total_seconds = time.perf_counter() - t0
        summary.stage_seconds = {k: round(v.seconds, 3) for k, v in monitor.stages.items()}
        perf = monitor.write(out / "perf", images=summary.processed, faces=summary.faces)
        store.finish_run(run_id, {**perf, "found": summary.images, "reused": summary.reused,
                                  "skipped": summary.skipped,
                                  "unreadable_folders": summary.unreadable_folders,
                                  **({"report": "incomplete"} if unfinished else {})}, seen=paths)
        if unfinished:
            log.warning(f"the report in {display_path(out / 'report')} was left incomplete "
                        f"(interrupted): facedist report {display_path(out)} finishes it")
        return summary
    except BaseException as exc:
        try:
            monitor.stop()
        except Exception:  # the fault being reported comes first
            pass
        fault = explain(exc, display_path(out))
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(fault or exc)
        if run_id is not None:
            try:  # recorded as failed, so that no reader takes it for a finished run
                store.finish_run(run_id, {"found": summary.images}, error=reason.splitlines()[0])
            except sqlite3.Error:
                pass  # the database cannot take even that (disk full): the run stays "running"
        if fault is None or fault is exc:
            raise
        # a bug keeps its cause, for -v's traceback; a known fault needs none
        raise fault from (exc if isinstance(fault, InternalError) else None)


def _check_stored(out: Path, key: str, weights: str | None, weights_sha: str | None) -> None:
    """Check what the output folder holds before the run writes anything (a run that refuses an
    output writes nothing to it, not even its own record or a schema upgrade): SQLite's
    quick_check, the weights its embeddings were made with, and every stored embedding of `key`
    (damage that SQLite's checks pass). Read-only; nothing to check in a new folder."""
    if not (out / DB_NAME).is_file():
        return
    with explained(display_path(out)):
        reader = FaceStore(out, create=False, check=True, readonly=True)
    try:
        with explained(display_path(out)):
            tables = {r[0] for r in reader.db.execute("SELECT name FROM sqlite_master "
                                                      "WHERE type = 'table'")}
            if weights is not None and "weights" in tables:  # an older schema may lack some
                reader.check_weights(weights, weights_sha, record=False)
            if "faces" in tables:
                reader.check_embeddings(key, display_path(out))
    finally:
        reader.close()


def _follow_aliases(files: list[ImageFile], known: dict, store: FaceStore) -> int:
    """Photos found under another spelling of the path stored for them (PHOTOS given through a
    symbolic link, or as another path to the same folder; an older output's paths made
    absolute from the resolved PHOTOS): the stored record, still the same file, takes the path
    found now, so its faces keep their ids and nothing looks moved or copied. Returns how many."""
    found = {str(f.path) for f in files}
    new = [f for f in files if str(f.path) not in known]
    if not new:
        return 0
    sizes = {f.size for f in new}
    stored: dict[tuple[int, int], int] = {}  # (device, inode) -> image id of a path not found now
    for path, (image_id, size, *_rest) in known.items():
        if path not in found and size in sizes:
            try:
                st = os.stat(path)
            except OSError:
                continue  # gone: _follow_moves looks for it
            stored.setdefault((st.st_dev, st.st_ino), image_id)
    renamed = 0
    for f in new if stored else ():
        try:
            st = os.stat(f.path)
        except OSError:
            continue  # the run's own read says why
        image_id = stored.pop((st.st_dev, st.st_ino), None)
        if image_id is not None:
            store.move_image(image_id, str(f.path), f.size, f.mtime_ns)
            renamed += 1
    return renamed


def _follow_moves(files: list[ImageFile], known: dict, store: FaceStore) -> int:
    """Photos that moved (renamed, another folder): a new path whose bytes are those of a stored
    photo whose own path is gone takes over that photo's record, so its faces keep their ids,
    people, names and pins, and nothing is computed again. Only new files as large as a gone
    photo are read (hashed). A stored photo still at its path makes the new one a copy instead;
    of several new files with the gone photo's bytes, the one with its file name takes it over.
    Returns how many moved."""
    found = {str(f.path) for f in files}
    gone: dict[str, list[tuple[int, str]]] = {}  # sha256 -> [(image id, old path)]
    sizes = set()
    for path, (image_id, size, _, sha, status) in known.items():
        if status is not None and sha and path not in found and not os.path.lexists(path):
            gone.setdefault(sha, []).append((image_id, path))
            sizes.add(size)
    arrived: dict[str, list[ImageFile]] = {}  # sha256 -> new files with those bytes
    for f in files:
        if f.size in sizes and str(f.path) not in known:
            try:
                h = hashlib.sha256()
                with open(f.path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
            except OSError:
                continue  # the run's own read says why
            arrived.setdefault(h.hexdigest(), []).append(f)
    moved = 0
    for sha, candidates in arrived.items():
        for image_id, old in gone.get(sha, []):
            if not candidates:
                break
            f = next((c for c in candidates if c.path.name == Path(old).name), candidates[0])
            candidates.remove(f)
            store.move_image(image_id, str(f.path), f.size, f.mtime_ns)
            log.debug(f"{display_path(f.path)}: moved from {display_path(old)}, its faces kept")
            moved += 1
    return moved


def _embedding_words(key: str) -> str:
    """A pipeline key's embedding in words: "dlib-resnet, 4 views" (its detection aside)."""
    model, views, *rest = key.split("|")[1:]
    return f"{model}, {views[len('views'):]} view(s)" + "".join(f", {r}" for r in rest)


def _earlier_people(store: FaceStore, last: dict | None, key: str) -> str | None:
    """The pipeline key whose people this run takes over: the last finished run's, where that
    run found the same faces (same detection settings) but embedded them otherwise (another
    model, --views or --precision) and this key has no people yet."""
    if last is None or last["pipeline_key"] == key or store.has_people(key):
        return None
    old = last["pipeline_key"]
    same_faces = old.split("|")[0] == key.split("|")[0]  # the detector's part of the key
    if not (same_faces and store.has_people(old)):
        return None
    log.warning(f"this output's faces were embedded as {_embedding_words(old)}; this run embeds "
                f"them again as {_embedding_words(key)} (once, every photo), and carries the "
                f"people, their names and corrections over")
    return old


def _run_stages(settings, engine, spec, store, run_id, key, monitor, summary,
                earlier: str | None = None) -> list[str]:
    """discover → process new files → compare → people → report; returns the paths found.
    `earlier`: a pipeline key whose people the faces of `key` take over (_earlier_people)."""
    out = Path(settings.out)
    with monitor.stage("discover"):
        # absolute paths: the database finds the photos from any working directory
        found = list(discover_images(photo_root(settings.photos), exclude=[out]))
        files = [f for f in found if isinstance(f, ImageFile)]
        monitor.count("discover", images=len(files))
    for folder in (f for f in found if isinstance(f, Unlistable)):
        shown = display_path(folder.path)
        log.warning(f"{shown}: cannot list this folder ({folder.reason}); its photos are left out")
        summary.unreadable_folders[shown] = folder.reason
    summary.images = len(files)
    known = store.known_images(key)
    if _follow_aliases(files, known, store):
        known = store.known_images(key)
    if _follow_moves(files, known, store):
        known = store.known_images(key)
    todo, rejected = [], [f for f in found if isinstance(f, Rejected)]
    for f in files:
        prev = known.get(str(f.path))
        if prev and prev[1] == f.size and prev[2] == f.mtime_ns and prev[4] is not None:
            summary.reused += 1
            continue
        todo.append(Work(f, store.image_id(str(f.path), f.size, f.mtime_ns)))
    if rejected:
        store.save_chunk(run_id, key, settings.model, [
            ImageResult(store.image_id(str(r.path), 0, 0), reason=r.reason) for r in rejected])
    engine.process(todo, store, run_id, key, monitor, summary)
    paths = {str(f.path) for f in files} | {str(r.path) for r in rejected}
    for path, reason in store.skipped(key, paths):
        log.debug(f"skipped {display_path(path)}: {reason}")
        summary.skipped[reason] = summary.skipped.get(reason, 0) + 1
    table = store.faces(key, paths)
    table.check_embeddings(display_path(settings.out))
    if earlier is not None:
        store.carry_people(earlier, key)
    # people carried over were made with the other distances: clustered again, once, their
    # corrections (pinned faces) and names kept
    compare_and_group(settings, spec, store, key, table, monitor, summary, sorted(paths),
                      full=earlier is not None)
    return sorted(paths)


def compare_and_group(settings: Settings, spec, store: FaceStore, key: str, table, monitor: Monitor,
                      summary: RunSummary, paths: list[str] | None = None,
                      full: bool = False) -> None:
    """compare → people → names from the photos' XMP → report on the faces of `table`: the
    stages after embedding, the same whichever engine found the faces (bench/scale.py runs
    them on a generated store). `paths`: every photo found (default: those with faces), whose
    XMP face regions are read unless settings.tags is off (xmp.py). `full`: the people made
    again from all faces (--recluster; people carried from another embedding)."""
    out = Path(settings.out)
    n = len(table)
    with monitor.stage("compare"):
        summary.faces = n
        threshold = settings.threshold if settings.threshold is not None else spec.default_threshold
        approximate = is_approximate(n, settings.exact_neighbors)
        matrix_path = (out / "distances.npy" if n <= settings.matrix_max_faces and not approximate
                       else None)
        if matrix_path is None and (out / "distances.npy").exists():
            (out / "distances.npy").unlink()  # a stale matrix of other faces would mislead
        # the people's graph is these neighbours (GRAPH_NEIGHBORS at least): no second pass
        k = max(settings.k, GRAPH_NEIGHBORS)
        result = compare(table.embeddings, k, threshold, matrix_path,
                         exact=settings.exact_neighbors, max_pairs=settings.max_pairs)
        summary.threshold = threshold
        summary.approximate = result.approximate
        summary.pairs, summary.pairs_found = len(result.pair_dist), result.pairs_found
        if result.pairs_found > len(result.pair_dist):
            log.warning(f"{result.pairs_found} pairs are under the threshold {threshold:g}: only the "
                        f"{len(result.pair_dist)} closest are listed (--max-pairs)")
    with monitor.stage("people"):
        changed = fill_quality(table, store.image_sizes(), spec.name, every=True)
        store.set_quality(table.face_ids[changed], table.quality[changed])
        cut = settings.people_threshold if settings.people_threshold is not None else spec.people_threshold
        min_quality = resolved_min_quality(settings)
        # a full clustering takes compare's neighbours; new faces joining exact people meet
        # their own batch and the older faces apart (people.neighbor_graph), below the scale
        # where that costs N^2
        graph = ((result.neighbors, result.neighbor_dist)
                 if result.approximate or settings.recluster or full or not store.has_people(key)
                 else (None, None))
        person = assign_people(store, key, table.face_ids, table.embeddings, cut,
                               full=settings.recluster or full, neighbors=graph[0],
                               neighbor_dist=graph[1],
                               quality=table.quality, min_quality=min_quality,
                               photo=photo_ids(table) if settings.same_photo_apart else None,
                               single_cut=spec.people_single_threshold)
        if settings.tags:
            person = _names_from_tags(store, key, table, person,
                                      sorted(set(table.paths)) if paths is None else paths, out)
        summary.people = len(set(person[person >= 0].tolist()))
        summary.unclear = int(((person < 0) & (table.quality < min_quality)).sum())
    result.neighbors = result.neighbors[:, :settings.k]
    result.neighbor_dist = result.neighbor_dist[:, :settings.k]
    summary.suggested_threshold = suggest_threshold(result.neighbor_dist)
    with monitor.stage("report"):
        ignored = np.isin(table.face_ids, np.fromiter(store.ignored(key), np.int64))
        report.write_results(out, table, result, person, store.person_names(key), min_quality,
                             ignored, cut, spec.people_single_threshold, store.settled(key))
        report.write_threshold(out / "perf", result.neighbor_dist, threshold,
                               summary.suggested_threshold)


def _names_from_tags(store: FaceStore, key: str, table, person: np.ndarray, paths: list[str],
                     out: Path) -> np.ndarray:
    """Names from the photos' XMP face regions (xmp.read_tags), applied after the people are
    assigned; returns each face's person as it is then."""
    from .people import person_ids
    from .xmp import read_tags

    tags = read_tags(store, key, table, paths)
    if tags.named or tags.unmatched or tags.conflicts:
        log.info(f"names from XMP face regions: {tags.named} face(s) named, {tags.agrees} already "
                 f"so, {tags.unmatched} region(s) on no detected face, {tags.conflicts} not applied"
                 f" (disagreeing): facedist people {display_path(out)} tags lists them")
    if not tags.named:
        return person
    return person_ids(store, table.face_ids)[0]  # ignored and unclear faces: -1, as assigned
