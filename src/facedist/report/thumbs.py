"""thumbs: small face pictures for the HTML report, cut once from the original photos.

A thumbnail's name comes from its photo's content hash and the face's box, so a re-run of the
report only cuts the faces it has not cut before, a changed photo gets new thumbnails, and two
copies of one photo share theirs. Each is a THUMB_PX square JPEG around the face (EXIF
orientation applied, as the detector saw it), written whole or not at all.
"""
from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..decode import DecodeError, decode_image

THUMB_PX = 112  # side of a thumbnail; shown at 56-112 CSS px, sharp on 2x screens
MARGIN = 0.25  # context around the box, as a share of the box's side on each side
QUALITY = 85
# thumb_name's names: the report's and the review page's (review_server.py) thumbnails
THUMB_NAME = re.compile(r"thumbs/[0-9a-f]{2}/[0-9a-f]{18}\.jpg")


@dataclass
class ThumbJob:
    """The faces of one photo whose thumbnails are missing."""

    path: str  # the photo, as stored (os-level str)
    boxes: list[tuple[float, float, float, float]]
    names: list[str]  # relative to the report folder, one per box


@dataclass
class ThumbResult:
    made: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # photo path -> one-line reason


def thumb_name(content: str, box) -> str:
    """Where the thumbnail of the face at `box` of the photo of content hash `content` lives,
    relative to the report folder (two-level fan-out keeps folders small at a million faces)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    key = f"{content}:{x1:.0f}:{y1:.0f}:{x2:.0f}:{y2:.0f}"
    h = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
    return f"thumbs/{h[:2]}/{h[2:20]}.jpg"


def square_around(box, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The square (in decoded pixels) around a box in source pixels, with MARGIN each side; it
    may reach outside the image (the outside is filled grey)."""
    x1, y1, x2, y2 = (float(v) / scale for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    return left, top, left + s, top + s


def cut(pixels: np.ndarray, square: tuple[int, int, int, int]) -> Image.Image:
    """The square of an RGB array as a THUMB_PX image, grey where it leaves the photo."""
    left, top, right, bottom = square
    h, w = pixels.shape[:2]
    out = np.full((bottom - top, right - left, 3), 128, np.uint8)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = pixels[sy0:sy1, sx0:sx1]
    return Image.fromarray(out).resize((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS,
                                       reducing_gap=3.0)


def _decode_side(path: str, boxes) -> int:
    """The long side to decode a photo at: as small as keeps its smallest face THUMB_PX wide."""
    smallest = min(max(b[2] - b[0], b[3] - b[1]) for b in boxes)
    with Image.open(path) as img:
        long_side = max(img.size)
    return max(256, int(np.ceil(long_side * THUMB_PX / max(smallest * (1 + 2 * MARGIN), 1.0))))


def cut_photo(job: ThumbJob, root: Path, max_pixels: int) -> str | None:
    """Write the thumbnails of one photo under `root`; the reason when the photo cannot be read."""
    from ..atomic import replacing

    try:
        side = _decode_side(job.path, job.boxes)
    except Exception:  # noqa: BLE001 - decode_image below names what is wrong with the file
        side = None
    try:
        image = decode_image(job.path, max_pixels, side)
    except (DecodeError, OSError, ValueError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    h, w = image.pixels.shape[:2]
    for box, name in zip(job.boxes, job.names):
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        with replacing(dest, "wb") as fh:
            cut(image.pixels, square_around(box, image.scale, w, h)).save(fh, "JPEG",
                                                                          quality=QUALITY)
    return None


def cut_thumbnails(jobs: list[ThumbJob], root: Path, max_pixels: int, workers: int = 2,
                   progress=None) -> ThumbResult:
    """Cut the thumbnails of `jobs` (photos decoded on `workers` threads: Pillow releases the
    GIL while decoding). `progress(n)` is called as each photo is done."""
    result = ThumbResult()
    if not jobs:
        return result
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for job, failed in zip(jobs, pool.map(lambda j: cut_photo(j, root, max_pixels), jobs)):
            if failed is None:
                result.made += len(job.names)
            else:
                result.failed[job.path] = failed
            if progress:
                progress(1)
    return result


def stale(root: Path, keep: set[str]) -> list[Path]:
    """Thumbnails under root/thumbs, named as thumb_name names them, that no face of the report
    uses any more: the report's, and those the review page cut there. Only for a folder that
    holds facedist's report (report/html.py); any other file under thumbs/ is left alone."""
    found = []
    for dirpath, _, names in os.walk(root / "thumbs"):
        for name in names:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if THUMB_NAME.fullmatch(rel) and rel not in keep:
                found.append(p)
    return found
