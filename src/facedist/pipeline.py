"""pipeline: the engine that runs the stages over a folder, in this process.

discover → (read + hash + decode, in threads) → detect → align → embed → store, chunk by chunk,
then compare and report. Files are hashed first: byte-identical copies are processed once. On
CPU each image is detected on its own worker thread (one torch thread each), and the next
chunks are detected while one is aligned, embedded and stored. The stages themselves
(discover.py … compare.py) know nothing of chunks, threads or progress bars. The Ray engine
(ray_engine.py) replaces `_process_chunks` only: its actors run FacePipeline, the same stage
code, and the driver stores, compares and groups here.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import platform
import sqlite3
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import __version__
from .align import make_aligner
from .backend import Backend
from .compare import compare, is_approximate
from .config import Settings
from .decode import DecodedImage, DecodeError, decode_image
from .detect import MtcnnDetector
from .discover import ImageFile, Rejected, classify_file, discover_images, display_path
from .embed import build_embedder, embed_faces
from .errors import explain, explained
from .models import check_environment, get_spec, resolve_weights, sha256_file
from .monitor import Monitor
from .people import GRAPH_NEIGHBORS, assign_people, photo_ids, suggest_threshold
from .quality import fill_quality
from .store import FaceStore, ImageResult, OutputLock
from . import report

log = logging.getLogger("facedist")

MAX_FILE_BYTES = 1 << 30  # a 1 GiB "photo" is refused before it is read
READ_WHOLE_BYTES = 32 << 20  # larger files are decoded from disk, not from bytes held
CHUNK_PIXELS = 32_000_000  # decoded pixels held at once, bounds memory on huge photos
# Chunks detected ahead of the one embedded (1 left the workers idle a third of a FaceNet run);
# the decoded pixels of DETECT_AHEAD + 1 chunks are held at once.
DETECT_AHEAD = 2


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
    stage_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    report: Path | None = None  # report/index.html, with settings.report
    pairs: int = 0  # pairs listed (pairs.csv / pairs.parquet)
    pairs_found: int = 0  # pairs under the threshold, before --max-pairs
    approximate: bool = False  # neighbours from the approximate search (compare.py)

    @property
    def warnings(self) -> int:
        return sum(self.skipped.values())


@dataclass
class _Work:
    file: ImageFile | None  # None: an image given in memory
    image_id: int
    sha256: str | None = None
    image: DecodedImage | None = None
    reason: str | None = None
    duplicate: bool = False  # same bytes as another file of this run: not decoded


def pipeline_key(settings: Settings) -> str:
    # fp32 gives the same answers on every device; fp16 embeddings are not reused by fp32 runs
    precision = "" if settings.precision == "fp32" else f"|{settings.precision}"
    return f"{settings.detect.key()}|{settings.model}|views{resolved_views(settings)}{precision}"


def resolved_views(settings: Settings) -> int:
    """Embedding views per face: the setting, or the model's default."""
    return settings.views if settings.views is not None else get_spec(settings.model).default_views


def resolved_min_quality(settings: Settings) -> float:
    """The quality gate in force: the setting, else the model's."""
    if settings.min_quality is not None:
        return settings.min_quality
    return get_spec(settings.model).min_quality


def versions() -> dict[str, str]:
    import PIL

    return {"facedist": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


def read_and_decode(work: _Work, max_pixels: int, max_side: int | None,
                    claim: Callable[[str], bool] | None = None, large_lock=None) -> _Work:
    """Read the file, hash it and decode it (runs in a worker thread). Files up to
    READ_WHOLE_BYTES are read once and decoded from those bytes; larger ones are hashed as a
    stream and decoded from disk, so that their bytes are never all held. With `claim`, content
    another file has already claimed is marked duplicate and not decoded; `large_lock`: see
    decode_image."""
    try:
        if work.file.size > MAX_FILE_BYTES:
            raise DecodeError(f"file is {work.file.size} bytes, over the {MAX_FILE_BYTES} limit")
        h = hashlib.sha256()
        with open(work.file.path, "rb") as fh:
            data = fh.read(READ_WHOLE_BYTES + 1)
            h.update(data)
            whole = len(data) <= READ_WHOLE_BYTES
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        work.sha256 = h.hexdigest()
        if not data:
            raise DecodeError("empty file (0 bytes)")
        if claim is not None and not claim(work.sha256):
            work.duplicate = True
            return work
        source = io.BytesIO(data) if whole else work.file.path
        del data
        work.image = decode_image(source, max_pixels, max_side, large_lock)
    except DecodeError as exc:
        work.reason = str(exc)
    except OSError as exc:
        work.reason = f"cannot read: {exc.strerror or exc}"
    return work


class FacePipeline:
    """The compute of a run: detector, aligner and embedder, built once."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        check_environment()  # the environment's settings are checked before any work too
        self.spec = get_spec(settings.model)
        self.backend = backend or Backend.create(settings.device, settings.precision)
        self.device = self.backend.device
        self.chunk_images = settings.chunk_images or self.backend.chunk_images
        self.embed_batch_size = settings.embed_batch_size or self.backend.embed_batch_size
        self.decode_workers = settings.decode_workers or self.backend.decode_workers
        # the weights file in use (None: synthetic), whose hash the output's database records
        self.weights_path = (None if settings.weights == "synthetic"
                             else resolve_weights(self.spec, settings.weights))
        self.embedder = build_embedder(self.spec, str(self.weights_path or "synthetic"),
                                       str(self.device), self.backend.embed_dtype)
        self.detector = MtcnnDetector(settings.detect, self.device)
        views = resolved_views(settings)
        self.aligner = make_aligner(self.spec, 2 if views == 4 else 1)
        self.mirror = views >= 2
        self.threads = torch.get_num_threads()
        self._align_pool = None
        if self.backend.batched_detection:
            # A GPU: one thread feeds it whole chunks (detect_many) while this one aligns and
            # embeds the chunk before; alignment is spread over the cores to keep up.
            self.detect_workers = 1
            self._detect_pool = ThreadPoolExecutor(1, thread_name_prefix="detect")
            self._align_pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="align")
        else:
            # On CPU, images are detected one per core, each on one torch thread: MTCNN's many
            # small ops scale poorly across threads (1.2x faster than 2 threads on one image).
            self.detect_workers = self.threads if self.device.type == "cpu" else 1
            self._detect_pool = (ThreadPoolExecutor(self.detect_workers, thread_name_prefix="detect")
                                 if self.detect_workers > 1 else None)

    def start_detect(self, images: list[DecodedImage]) -> Callable[[], list[list]]:
        """Start detecting `images` on the detect workers (largest first, so that no worker is
        left with a big one at the end); returns a function that waits for their faces, in
        order. The caller can align and embed an earlier chunk meanwhile."""
        if self.backend.batched_detection:
            return self._detect_pool.submit(self.detector.detect_many, [im.pixels for im in images],
                                            [im.scale for im in images]).result
        if self._detect_pool is None:
            found = self.detector.detect_batch([im.pixels for im in images], [im.scale for im in images])
            return lambda: found

        def detect_one(im: DecodedImage):
            torch.set_num_threads(1)  # per thread: this worker's ops only
            return self.detector.detect(im.pixels, im.scale)

        futures = {i: self._detect_pool.submit(detect_one, images[i])
                   for i in sorted(range(len(images)), key=lambda i: -images[i].pixels.size)}
        return lambda: [futures[i].result() for i in range(len(images))]

    def process_images(self, images: list[Path | DecodedImage]) -> list[ImageResult]:
        """Process a few photos outside a run (files, or images already in memory), for `near`
        and `analyze`; nothing is stored. A file that is not a regular file (a FIFO would block
        the read) or cannot be decoded gets its result's `reason`."""
        max_side = self.settings.detect.decode_max_side
        work = []
        for i, image in enumerate(images):
            if isinstance(image, DecodedImage):
                work.append(_Work(None, i, image=image))
                continue
            found = classify_file(Path(image))
            if isinstance(found, Rejected):
                work.append(_Work(None, i, reason=found.reason))
            else:
                work.append(read_and_decode(_Work(found, i), self.settings.max_pixels, max_side))
        return self.process(work, Monitor(enabled=False))

    def embed_given(self, path: Path, faces: list) -> np.ndarray:
        """Align and embed given faces (detect.FaceDetection) of one photo, without detecting."""
        image = decode_image(path, self.settings.max_pixels, None)
        crops = self.aligner.align(image.pixels, faces)
        return embed_faces(self.embedder, crops, self.mirror, self.embed_batch_size)

    def process(self, batch: list[_Work], monitor: Monitor) -> list[ImageResult]:
        """detect → align → embed for a chunk of decoded images."""
        return self.finish(batch, self.start(batch), monitor, overlapped=False)

    def start(self, batch: list[_Work]) -> Callable[[], list[list]]:
        """Start detecting a chunk (see `finish`)."""
        return self.start_detect([w.image for w in batch if w.image is not None])

    def finish(self, batch: list[_Work], detected: Callable[[], list[list]], monitor: Monitor,
               overlapped: bool = True) -> list[ImageResult]:
        """Wait for a chunk's faces (`start`), then align and embed them; `overlapped`: the
        detect workers are meanwhile busy with a next chunk."""
        ok = [w for w in batch if w.image is not None]
        with monitor.stage("detect"):
            found = detected()
            monitor.count("detect", images=len(ok), faces=sum(map(len, found)))
        # while the detect workers use the cores, a second thread here would only make the
        # threads wait on each other (measured 3x slower embedding)
        torch.set_num_threads(1 if overlapped and self._detect_pool is not None else self.threads)
        try:
            return self._embed(batch, ok, found, monitor)
        finally:
            torch.set_num_threads(self.threads)

    def _embed(self, batch, ok, found, monitor) -> list[ImageResult]:
        """Align and embed the faces found in `ok` (the decoded part of `batch`) → results."""
        with monitor.stage("align"):
            align = lambda w, faces: self.aligner.align(w.image.pixels, faces)  # noqa: E731
            crops = list((self._align_pool.map if self._align_pool else map)(align, ok, found))
            monitor.count("align", faces=sum(map(len, crops)))
        with monitor.stage("embed"):
            flat = np.concatenate(crops) if crops else np.zeros((0, 1, 1, 1, 3), np.uint8)
            vectors = embed_faces(self.embedder, flat, self.mirror, self.embed_batch_size)
            monitor.count("embed", faces=len(vectors))
        results, at = [], 0
        by_id = {id(w): faces for w, faces in zip(ok, found)}
        for w in batch:
            if w.image is None:
                results.append(ImageResult(w.image_id, sha256=w.sha256, reason=w.reason))
                continue
            faces = by_id[id(w)]
            s = w.image.scale  # boxes back to source-image pixels
            width, height = w.image.size
            results.append(ImageResult(
                w.image_id, width, height, w.sha256,
                boxes=np.array([f.box * s for f in faces], np.float32).reshape(-1, 4),
                probs=np.array([f.prob for f in faces], np.float32),
                landmarks=np.array([f.landmarks * s for f in faces], np.float32).reshape(-1, 5, 2),
                embeddings=vectors[at:at + len(faces)]))
            at += len(faces)
        return results


def run(settings: Settings, monitor: Monitor | None = None) -> RunSummary:
    """Run the whole pipeline on settings.photos into settings.out; returns the summary.

    Faults raise errors.FacedistError (one line, with its exit code); the run is then recorded
    as failed, what was stored stays, and a rerun goes on from there."""
    if settings.photos is None or settings.out is None:
        raise ValueError("photos and out are required")
    if not Path(settings.photos).exists():
        raise FileNotFoundError(f"{display_path(settings.photos)}: no such folder")
    photos_at, out_at = Path(settings.photos).resolve(), Path(settings.out).resolve()
    if out_at == photos_at or out_at in photos_at.parents:
        # the database and perf/ would be written into the photo tree
        raise ValueError(f"--out {display_path(settings.out)} is the photo folder or holds it: "
                         f"choose an output folder outside {display_path(settings.photos)} "
                         f"(one inside it is fine)")
    out = Path(settings.out)
    faces_pipeline = FacePipeline(settings)  # fails here, before any work, if weights are missing
    with explained(display_path(out)):
        out.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(out, wait=settings.wait)
    with lock:
        summary = _run_locked(settings, faces_pipeline, out, monitor or Monitor(settings.sample_interval))
        if settings.report:
            summary.report = _write_report(settings, out)
        return summary


def _write_report(settings: Settings, out: Path) -> Path:
    """The HTML report of the run just finished (the caller holds the output folder)."""
    from .api import FaceDB
    from .report.html import write_report

    with explained(display_path(out)):
        db = FaceDB(out)
        try:
            return write_report(db, workers=settings.decode_workers or 2,
                                progress=settings.progress).index
        finally:
            db.close()


def _run_locked(settings: Settings, faces_pipeline: FacePipeline, out: Path,
                monitor: Monitor) -> RunSummary:
    summary = RunSummary(out=out)
    t0 = time.perf_counter()
    store = run_id = None
    try:
        store = FaceStore(out, check=True)
        if faces_pipeline.weights_path is not None:
            store.check_weights(faces_pipeline.weights_path.name,
                                sha256_file(faces_pipeline.weights_path))
        key = pipeline_key(settings)
        # runs still "running" ended without a word (kill -9, a crash, power lost): this run
        # holds the output lock, so none of them is still writing
        for old in store.mark_interrupted_runs():
            log.warning(f"run {old} of this output folder was interrupted (the process ended "
                        f"before it finished); recorded as failed, and this run goes on from it")
        run_id = store.begin_run(key, settings.model, str(Path(settings.photos).resolve()),
                                 settings.to_dict(), versions())
        monitor.start()
        paths = _run_stages(settings, faces_pipeline, store, run_id, key, monitor, summary)
        monitor.stop()
        summary.total_seconds = time.perf_counter() - t0
        summary.stage_seconds = {k: round(v.seconds, 3) for k, v in monitor.stages.items()}
        perf = monitor.write(out / "perf", images=summary.processed, faces=summary.faces)
        store.finish_run(run_id, {**perf, "found": summary.images, "reused": summary.reused,
                                  "skipped": summary.skipped}, seen=paths)
        return summary
    except BaseException as exc:
        try:
            monitor.stop()
        except Exception:  # the fault being reported comes first
            pass
        fault = explain(exc, display_path(out))
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(fault or exc)
        if store is not None and run_id is not None:
            try:  # recorded as failed, so that no reader takes it for a finished run
                store.finish_run(run_id, {"found": summary.images}, error=reason.splitlines()[0])
            except sqlite3.Error:
                pass  # the database cannot take even that (disk full): the run stays "running"
        if fault is None or fault is exc:
            raise
        raise fault from None
    finally:
        if store is not None:
            store.close()


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


def _run_stages(settings, faces_pipeline, store, run_id, key, monitor, summary) -> list[str]:
    """discover → process new files → compare → people → report; returns the paths found."""
    out = Path(settings.out)
    with monitor.stage("discover"):
        found = list(discover_images(settings.photos, exclude=[out]))
        files = [f for f in found if isinstance(f, ImageFile)]
        monitor.count("discover", images=len(files))
    summary.images = len(files)
    known = store.known_images(key)
    if _follow_moves(files, known, store):
        known = store.known_images(key)
    todo, rejected = [], [f for f in found if isinstance(f, Rejected)]
    for f in files:
        prev = known.get(str(f.path))
        if prev and prev[1] == f.size and prev[2] == f.mtime_ns and prev[4] is not None:
            summary.reused += 1
            continue
        todo.append(_Work(f, store.image_id(str(f.path), f.size, f.mtime_ns)))
    if rejected:
        store.save_chunk(run_id, key, settings.model, [
            ImageResult(store.image_id(str(r.path), 0, 0), reason=r.reason) for r in rejected])
    if settings.engine == "ray":  # the same stages, on a Ray cluster's actors
        from . import ray_engine

        ray_engine.process_files(todo, store, run_id, key, settings, monitor, summary)
    else:
        _process_chunks(todo, faces_pipeline, store, run_id, key, settings, monitor, summary)
    paths = {str(f.path) for f in files} | {str(r.path) for r in rejected}
    for path, reason in store.skipped(key, paths):
        log.debug(f"skipped {display_path(path)}: {reason}")
        summary.skipped[reason] = summary.skipped.get(reason, 0) + 1
    table = store.faces(key, paths)
    table.check_embeddings(display_path(settings.out))
    compare_and_group(settings, faces_pipeline.spec, store, key, table, monitor, summary)
    return sorted(paths)


def compare_and_group(settings: Settings, spec, store: FaceStore, key: str, table, monitor: Monitor,
                      summary: RunSummary) -> None:
    """compare → people → report on the faces of `table`: the stages after embedding, the same
    whichever engine found the faces (bench/scale.py runs them on a generated store)."""
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
                 if result.approximate or settings.recluster or not store.has_people(key)
                 else (None, None))
        person = assign_people(store, key, table.face_ids, table.embeddings, cut,
                               full=settings.recluster, neighbors=graph[0], neighbor_dist=graph[1],
                               quality=table.quality, min_quality=min_quality,
                               photo=photo_ids(table) if settings.same_photo_apart else None)
        summary.people = len(set(person[person >= 0].tolist()))
        summary.unclear = int(((person < 0) & (table.quality < min_quality)).sum())
    result.neighbors = result.neighbors[:, :settings.k]
    result.neighbor_dist = result.neighbor_dist[:, :settings.k]
    summary.suggested_threshold = suggest_threshold(result.neighbor_dist)
    with monitor.stage("report"):
        ignored = np.isin(table.face_ids, np.fromiter(store.ignored(key), np.int64))
        report.write_results(out, table, result, person, store.person_names(key), min_quality,
                             ignored)
        report.write_threshold(out / "perf", result.neighbor_dist, threshold,
                               summary.suggested_threshold)


class _ContentClaims:
    """Which file contents this run has already taken on (thread-safe): the first file with given
    bytes is decoded and processed, later ones copy its results."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()  # raw SHA-256: ~65 bytes per distinct image
        self._lock = threading.Lock()

    def __call__(self, sha256: str) -> bool:
        digest = bytes.fromhex(sha256)
        with self._lock:
            if digest in self._seen:
                return False
            self._seen.add(digest)
            return True


def _chunks(todo: list[_Work], settings: Settings, pool: ThreadPoolExecutor, chunk_images: int,
            workers: int) -> Iterator[list[_Work]]:
    """Decoded chunks, read ahead by the thread pool: at most one chunk plus one image per worker
    is held decoded, so memory does not grow with the number of images."""
    max_side = settings.detect.decode_max_side
    claim = _ContentClaims()
    large = threading.Lock()  # one large photo decoded at a time (decode.LARGE_PIXELS)
    pending = iter(todo)
    futures: list = []

    def submit(n: int) -> None:
        for _ in range(n):
            w = next(pending, None)
            if w is None:
                return
            futures.append(pool.submit(read_and_decode, w, settings.max_pixels, max_side, claim,
                                       large))

    submit(chunk_images + workers)
    chunk, pixels = [], 0
    while futures:
        w = futures.pop(0).result()
        submit(1)
        chunk.append(w)
        if w.image is not None:
            pixels += w.image.pixels.shape[0] * w.image.pixels.shape[1]
        if len(chunk) >= chunk_images or pixels >= CHUNK_PIXELS:
            yield chunk
            chunk, pixels = [], 0
    if chunk:
        yield chunk


def _process_chunks(todo, faces_pipeline, store, run_id, key, settings, monitor, summary) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="img", desc="faces", disable=not settings.progress or None,
               file=sys.stderr)
    workers = faces_pipeline.decode_workers
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        chunks = _chunks(todo, settings, pool, faces_pipeline.chunk_images, workers)
        waiting: list[_Work] = []  # duplicates whose original is not stored yet
        # Chunks whose detection is started, oldest first: the detect workers run up to
        # DETECT_AHEAD chunks ahead of the one being embedded, so they never wait for it.
        in_flight: deque = deque()
        while True:
            with monitor.stage("decode"):
                batch = next(chunks, None)
                if batch is not None:
                    monitor.count("decode", images=len(batch))
            if batch is not None:
                fresh, copies = [], []
                for w in batch:
                    # same bytes as a file with results (itself: touched but unchanged) → no work
                    have = store.image_with_result(key, w.sha256, prefer=w.image_id) if w.sha256 else None
                    if have == w.image_id:
                        summary.reused += 1
                    elif have is not None:
                        copies.append((w.image_id, have))
                    elif w.duplicate:
                        waiting.append(w)
                    else:
                        fresh.append(w)
                in_flight.append((batch, fresh, copies, faces_pipeline.start(fresh)))
            if in_flight and (batch is None or len(in_flight) > DETECT_AHEAD):
                done = in_flight.popleft()
                waiting = _finish_chunk(done, waiting, faces_pipeline, store, run_id, key,
                                        settings, monitor, summary, overlapped=bool(in_flight))
                bar.update(len(done[0]))
                bar.set_postfix(faces=monitor.stages["embed"].faces if "embed" in monitor.stages else 0)
            if batch is None and not in_flight:
                break
        if waiting:  # an original that vanished between hashing and storing: do the copies
            redo = [read_and_decode(w, settings.max_pixels, settings.detect.decode_max_side)
                    for w in waiting]
            results = faces_pipeline.process(redo, monitor)
            store.save_chunk(run_id, key, settings.model, results)
            summary.processed += sum(r.reason is None for r in results)
    bar.close()


def _finish_chunk(chunk, waiting, faces_pipeline, store, run_id, key, settings, monitor, summary,
                  overlapped):
    """Align, embed and store a chunk whose detection was started (`overlapped`: later chunks
    are being detected meanwhile); copy results to the duplicates whose original is now stored.
    Returns the duplicates still waiting."""
    batch, fresh, copies, detected = chunk
    results = faces_pipeline.finish(fresh, detected, monitor, overlapped)
    with monitor.stage("store"):
        store.save_chunk(run_id, key, settings.model, results)
        found = [(w, store.image_with_result(key, w.sha256)) for w in waiting]
        copies = copies + [(w.image_id, have) for w, have in found if have is not None]
        store.copy_results(run_id, key, copies)
    for w in batch:
        w.image = None  # `todo` still lists this work item; the pixels must not stay
    release_memory()
    summary.processed += sum(r.reason is None for r in results)
    summary.copies += len(copies)
    return [w for w, have in found if have is None]


def _load_libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


_LIBC = _load_libc()


def share_one_heap() -> None:
    """Let every thread allocate from one glibc heap (arena). By default each busy thread gets
    its own, and each keeps the freed buffers of its last photos: measured 900 instead of 1110 MB
    peak for a FaceNet run of the humans photos, at the same speed. Threads started earlier keep
    their arenas; ours start after this."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(-8, 1)  # M_ARENA_MAX


def reuse_large_buffers() -> None:
    """Keep large freed buffers (P-Net's maps of a big pyramid level, tens of MB) in the heap
    for the next level and photo, instead of glibc's default of mapping each afresh and
    unmapping it at free: every page of a fresh mapping faults and is zeroed by the kernel
    (a 961 x 961 level's first convolution: 25 ms fresh, 8 ms reused). The heap is still given
    back after each chunk (release_memory)."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: heap, not mmap, below 1 GiB
        _LIBC.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: no trimming at each free


def release_memory() -> None:
    """Give freed heap pages back to the OS after each chunk: photos of ever-different sizes
    leave the heap fragmented, and without this a long run's RSS creeps up with the images."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
