"""discover: walk a folder tree and list its image files in a stable order.

Extensions are matched case-insensitively; hidden entries (".name") and the output folder are
skipped; symbolic links are followed, but a directory reached twice (a link loop or a second link
to the same place) is walked once. Entries that look like images but are not regular files are
reported as `Rejected` with a reason, never opened. A folder that cannot be listed (no permission,
gone meanwhile, an I/O error) is an `Unlistable` with the reason: its photos are left out, and
the run says so. Names that are not valid UTF-8 are kept as
Python keeps them (undecodable bytes as lone surrogates), so the file opens as it is named;
`display_path` gives the readable form that CSVs and messages show.

Paths are found under `photo_root(PHOTOS)`: absolute, so that the database finds the photos from
any working directory, but not resolved, so that a symlinked folder keeps its name.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .decode import HEIF
from .display import display_text
from .errors import SettingError

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


@dataclass(frozen=True)
class Unlistable:
    """A folder whose entries cannot be read: its photos are not found."""

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


def photo_root(photos: str | Path) -> Path:
    """PHOTOS as the paths under it are stored: absolute, symbolic links kept (a symlinked
    folder keeps its name). Where `..` after a link would make the plain absolute form another
    place than the one the system opens, the resolved one."""
    absolute = os.path.abspath(photos)
    try:
        same = os.path.samefile(absolute, photos)
    except OSError:  # one of them missing: PHOTOS itself is checked by check_photo_root
        same = not os.path.exists(photos)
    return Path(absolute if same else os.path.realpath(photos))


def check_photo_root(photos: str | Path) -> None:
    """Refuse, with one line, a PHOTOS that cannot be searched: one that does not exist
    (FileNotFoundError), a folder that cannot be reached or listed, or a file that is not named
    like a photo (errors.SettingError); each exits 2. A single photo is taken as it is."""
    try:
        st = os.stat(photos)
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(photos) as it:
                next(it, None)
    except FileNotFoundError:
        raise FileNotFoundError(f"{display_path(photos)}: no such folder") from None
    except OSError as exc:
        raise SettingError(f"{display_path(photos)}: cannot list this folder "
                           f"({exc.strerror or exc}); make it readable, or give another "
                           f"folder") from None
    if not stat.S_ISDIR(st.st_mode) and not is_image_name(os.fspath(photos)):
        raise SettingError(f"{display_path(photos)}: not a folder, nor a photo named "
                           f"{', '.join(sorted(IMAGE_EXTENSIONS))}; give the folder of photos")


def discover_images(root: str | Path, exclude: list[str | Path] = ()
                    ) -> Iterator[ImageFile | Rejected | Unlistable]:
    """Yield every image under `root` (sorted by path), a `Rejected` for each image-named
    entry that cannot be an image file (a directory, a FIFO, a broken link), and an
    `Unlistable` for each folder whose entries cannot be read (the search goes on)."""
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
    except OSError as exc:  # gone since its parent was listed, or a link turned bad
        yield Unlistable(folder, exc.strerror or str(exc))
        return
    if (st.st_dev, st.st_ino) in seen or os.path.realpath(folder) in excluded:
        return
    seen.add((st.st_dev, st.st_ino))
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield Unlistable(folder, exc.strerror or str(exc))
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
