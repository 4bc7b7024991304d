import os

from facedist.discover import ImageFile, Rejected, discover_images


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
