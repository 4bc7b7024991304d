"""discover: walk a folder tree and list its image files in a stable order.

Extensions are matched case-insensitively; hidden entries (".name") and the output folder are
skipped; symbolic links are followed, but a directory reached twice (a link loop or a second link
to the same place) is walked once. Entries that look like images but are not regular files are
reported as `Rejected` with a reason, never opened. Names that are not valid UTF-8 are kept as
Python keeps them (undecodable bytes as lone surrogates), so the file opens as it is named;
`display_path` gives the readable form that CSVs and messages show.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .decode import HEIF
from .display import display_text

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
    | ({".heic", ".heif"} if HEIF else set()))


@dataclass(frozen=True)
class ImageFile:
    """A file found on disk. The content hash is computed later, only when needed."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Rejected:
    path: Path
    reason: str


def display_path(path: str | Path) -> str:
    """The readable form of a path, one to one: valid UTF-8 as it is, other bytes as \\xNN,
    and a backslash doubled, so that a name with the text `\\xff` (shown `\\\\xff`) never
    shows as one with the byte 0xff. Plain UTF-8 names without backslashes are unchanged.

    >>> display_path(os.fsdecode(b"caf\\xe9.jpg")), display_path("caf\\\\xe9.jpg")
    ('caf\\\\xe9.jpg', 'caf\\\\\\\\xe9.jpg')
    """
    return display_text(str(path).replace("\\", "\\\\"))


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def discover_images(root: str | Path, exclude: list[str | Path] = ()) -> Iterator[ImageFile | Rejected]:
    """Yield every image under `root` (sorted by path), and a `Rejected` for each image-named
    entry that cannot be an image file (a directory, a FIFO, a broken link)."""
    root = Path(root)
    if root.is_file():
        yield classify_file(root)
        return
    excluded = {os.path.realpath(p) for p in exclude}
    seen_dirs: set[tuple[int, int]] = set()
    yield from _walk(root, excluded, seen_dirs)


def _walk(folder: Path, excluded: set[str], seen: set[tuple[int, int]]):
    try:
        st = os.stat(folder)
    except OSError:
        return
    if (st.st_dev, st.st_ino) in seen or os.path.realpath(folder) in excluded:
        return
    seen.add((st.st_dev, st.st_ino))
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            if is_image_name(entry.name):
                yield Rejected(path, "a directory named like an image (searched as a folder)")
            yield from _walk(path, excluded, seen)
        elif is_image_name(entry.name):
            yield classify_file(path)


def classify_file(path: Path) -> ImageFile | Rejected:
    """An ImageFile for a regular file (links followed), else Rejected with the reason."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Rejected(path, "broken symbolic link" if os.path.islink(path) else "does not exist")
    except OSError as exc:
        return Rejected(path, f"cannot stat: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return Rejected(path, "not a regular file")
    return ImageFile(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)
