"""compute: the per-photo work of a run, one object both engines call (engines/): a file read,
hashed and decoded (`read_and_decode`), then a batch of decoded photos detected, aligned and
embedded (`FacePipeline`). It knows nothing of chunks, progress, the database or Ray.

    >>> compute = FacePipeline(Settings(model="facenet-vggface2", weights="synthetic",
    ...                                 device="cpu"))  # doctest: +SKIP
    >>> [result] = compute.process_images(["photo.jpg"]); compute.close()  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .align import make_aligner
from .backend import Backend
from .config import Settings
from .decode import DecodedImage, DecodeError, decode_image
from .detect import SECOND_BOX_SHARE, MtcnnDetector, second_boxes
from .discover import ImageFile, Rejected, classify_file
from .embed import build_embedder, embed_faces
from .models import check_environment, get_spec, resolve_weights, resolved_views
from .monitor import Monitor
from .store import ImageResult

MAX_FILE_BYTES = 1 << 30  # a 1 GiB "photo" is refused before it is read
READ_WHOLE_BYTES = 32 << 20  # larger files are decoded from disk, not from bytes held


@dataclass
class Work:
    file: ImageFile | None  # None: an image given in memory
    image_id: int
    sha256: str | None = None
    image: DecodedImage | None = None
    reason: str | None = None
    duplicate: bool = False  # same bytes as another file of this run: not decoded


def read_and_decode(work: Work, max_pixels: int, max_side: int | None,
                    claim: Callable[[str], bool] | None = None, large_lock=None) -> Work:
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


def one_box_per_face(result: ImageResult, pair_threshold: float) -> ImageResult:
    """`result` without its second boxes over one face (detect.second_boxes: overlapping,
    embeddings under SECOND_BOX_SHARE of the model's pair threshold apart), the better box of
    each kept. Faces stay in their order (largest first)."""
    keep = second_boxes(result.boxes, result.probs, result.embeddings,
                        SECOND_BOX_SHARE * pair_threshold)
    if keep.all():
        return result
    return replace(result, boxes=result.boxes[keep], probs=result.probs[keep],
                   landmarks=result.landmarks[keep], embeddings=result.embeddings[keep])


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
                work.append(Work(None, i, image=image))
                continue
            found = classify_file(Path(image))
            if isinstance(found, Rejected):
                work.append(Work(None, i, reason=found.reason))
            else:
                work.append(read_and_decode(Work(found, i), self.settings.max_pixels, max_side))
        return self.process(work, Monitor(enabled=False))

    def embed_given(self, path: Path, faces: list) -> np.ndarray:
        """Align and embed given faces (detect.FaceDetection) of one photo, without detecting."""
        image = decode_image(path, self.settings.max_pixels, None)
        crops = self.aligner.align(image.pixels, faces)
        return embed_faces(self.embedder, crops, self.mirror, self.embed_batch_size)

    def process(self, batch: list[Work], monitor: Monitor) -> list[ImageResult]:
        """detect → align → embed for a chunk of decoded images."""
        return self.finish(batch, self.start(batch), monitor, overlapped=False)

    def start(self, batch: list[Work]) -> Callable[[], list[list]]:
        """Start detecting a chunk (see `finish`)."""
        return self.start_detect([w.image for w in batch if w.image is not None])

    def finish(self, batch: list[Work], detected: Callable[[], list[list]], monitor: Monitor,
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
            results.append(one_box_per_face(ImageResult(
                w.image_id, width, height, w.sha256,
                boxes=np.array([f.box * s for f in faces], np.float32).reshape(-1, 4),
                probs=np.array([f.prob for f in faces], np.float32),
                landmarks=np.array([f.landmarks * s for f in faces], np.float32).reshape(-1, 5, 2),
                embeddings=vectors[at:at + len(faces)]), self.spec.default_threshold))
            at += len(faces)
        return results

    def close(self) -> None:
        """Shut the worker threads down (the models go with the object)."""
        for pool in (self._detect_pool, self._align_pool):
            if pool is not None:
                pool.shutdown()
