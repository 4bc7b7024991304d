import errno
import os

import pytest

from facedist.discover import (ImageFile, Rejected, Unlistable, check_photo_root,
                               discover_images, photo_root)
from facedist.errors import SettingError


def names(items):
    return [os.path.relpath(i.path, items and i.path.parents[0]) for i in items]


def test_finds_images_case_insensitively_in_stable_order(tmp_path):
    for rel in ["b/2.JPG", "a/1.png", "a/z.WebP", "c/3.TIFF", "d/4.gif", "notes.txt", "x.jpeg"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"data")
    found = list(discover_images(tmp_path))
    rel = [str(f.path.relative_to(tmp_path)) for f in found]
    assert rel == ["a/1.png", "a/z.WebP", "b/2.JPG", "c/3.TIFF", "d/4.gif", "x.jpeg"]
    assert all(isinstance(f, ImageFile) and f.size == 4 and f.mtime_ns > 0 for f in found)


def test_skips_hidden_and_output_folder(tmp_path):
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "a.jpg").write_bytes(b"x")
    (tmp_path / ".b.jpg").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "c.jpg").write_bytes(b"x")
    (tmp_path / "d.jpg").write_bytes(b"x")
    found = list(discover_images(tmp_path, exclude=[tmp_path / "out"]))
    assert [f.path.name for f in found] == ["d.jpg"]


def test_follows_symlinks_without_looping(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "real", tmp_path / "link")  # the same folder twice
    os.symlink(tmp_path, tmp_path / "real" / "loop")  # a cycle
    found = list(discover_images(tmp_path))
    assert [f.path.name for f in found] == ["a.jpg"]


def test_rejects_non_files_named_like_images(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "folder.jpg" / "inside.png").write_bytes(b"x")
    os.symlink(tmp_path / "missing.jpg", tmp_path / "broken.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    found = list(discover_images(tmp_path))
    rejected = {f.path.name: f.reason for f in found if isinstance(f, Rejected)}
    assert set(rejected) == {"folder.jpg", "broken.jpg", "pipe.jpg"}
    assert "broken" in rejected["broken.jpg"] and "regular" in rejected["pipe.jpg"]
    assert [f.path.name for f in found if isinstance(f, ImageFile)] == ["inside.png"]


def make_unlistable(folder, monkeypatch):
    """`folder` cannot be listed: mode 000, and where that does not stop a listing (root reads
    any folder), os.scandir refusing it as the kernel would."""
    folder.chmod(0)
    try:
        os.listdir(folder)
    except PermissionError:
        return
    folder.chmod(0o755)
    real = os.scandir

    def scandir(path="."):
        if os.path.realpath(path) == os.path.realpath(folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_folder_that_cannot_be_listed_is_reported_and_the_rest_found(tmp_path, monkeypatch):
    for rel in ["a/1.jpg", "private/2.jpg", "z.jpg"]:
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    make_unlistable(tmp_path / "private", monkeypatch)
    try:
        found = list(discover_images(tmp_path))
    finally:
        (tmp_path / "private").chmod(0o755)
    assert [f.path.name for f in found if isinstance(f, ImageFile)] == ["1.jpg", "z.jpg"]
    [unlistable] = [f for f in found if isinstance(f, Unlistable)]
    assert unlistable.path == tmp_path / "private" and unlistable.reason == "Permission denied"


def test_photos_that_cannot_be_listed_or_is_no_folder_is_refused(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    check_photo_root(photos)
    make_unlistable(photos, monkeypatch)
    try:
        with pytest.raises(SettingError, match=r"^.*photos: cannot list this folder "
                                               r"\(Permission denied\)"):
            check_photo_root(photos)
    finally:
        photos.chmod(0o755)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SettingError, match="not a folder"):
        check_photo_root(tmp_path / "notes.txt")
    (tmp_path / "one.jpg").write_bytes(b"x")
    check_photo_root(tmp_path / "one.jpg")  # a single photo is taken as it is
    with pytest.raises(FileNotFoundError, match="no such folder"):
        check_photo_root(tmp_path / "missing")


def test_photo_root_is_absolute_and_keeps_symlinked_names(tmp_path, monkeypatch):
    (tmp_path / "real" / "photos").mkdir(parents=True)
    os.symlink(tmp_path / "real" / "photos", tmp_path / "linked")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert photo_root("../linked") == tmp_path.resolve() / "linked"
    assert photo_root("../real/photos/") == tmp_path.resolve() / "real" / "photos"
    # `..` after a link: the plain absolute form would be another folder, so the resolved one
    os.symlink(tmp_path / "real" / "photos", tmp_path / "work" / "deep")
    assert photo_root("deep/../photos") == tmp_path.resolve() / "real" / "photos"
    (tmp_path / "work" / "photos").mkdir()  # what a lexical `deep/..` names instead
    assert photo_root("deep/../photos") == tmp_path.resolve() / "real" / "photos"
