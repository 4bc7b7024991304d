"""engines.local: a run's photos processed in this process (the default engine).

Files are read, hashed and decoded on a pool of threads, chunk by chunk: byte-identical copies
are processed once (the first file with given bytes; the others copy its results). On CPU each
image is detected on its own worker thread (one torch thread each), and the next chunks are
detected while one is aligned, embedded and stored, each chunk in one transaction.
"""
from __future__ import annotations

import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from ..compute import FacePipeline, Work, read_and_decode
from ..config import Settings
from ..memory import release_memory
from ..monitor import Monitor
from ..store import FaceStore

CHUNK_PIXELS = 32_000_000  # decoded pixels held at once, bounds memory on huge photos
# Chunks detected ahead of the one embedded (1 left the workers idle a third of a FaceNet run);
# the decoded pixels of DETECT_AHEAD + 1 chunks are held at once.
DETECT_AHEAD = 2


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


def _chunks(todo: list[Work], settings: Settings, pool: ThreadPoolExecutor, chunk_images: int,
            workers: int) -> Iterator[list[Work]]:
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


class LocalEngine:
    """This process: the files of a run read and decoded on a pool of threads, chunk by chunk;
    each chunk detected on the compute object's workers up to DETECT_AHEAD chunks ahead of
    the one being aligned, embedded and stored."""

    def __init__(self, settings: Settings, compute: FacePipeline | None = None) -> None:
        self.settings = settings
        # the models, built once (missing weights fail here, at once); or a given compute
        # object (another backend's, in the tests)
        self.compute = compute or FacePipeline(settings)

    def close(self) -> None:
        self.compute.close()

    def process(self, todo: list[Work], store: FaceStore, run_id: int, key: str, monitor: Monitor,
                summary) -> None:
        """Process and store the files of `todo`; `summary` (pipeline.RunSummary) counts them."""
        _process_chunks(todo, self.compute, store, run_id, key, self.settings, monitor, summary)


def _process_chunks(todo, faces_pipeline, store, run_id, key, settings, monitor, summary) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="img", desc="faces", disable=not settings.progress or None,
               file=sys.stderr)
    workers = faces_pipeline.decode_workers
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        chunks = _chunks(todo, settings, pool, faces_pipeline.chunk_images, workers)
        waiting: list[Work] = []  # duplicates whose original is not stored yet
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
