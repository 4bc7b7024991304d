"""atomic: a file is replaced whole, even when two writers write it at once."""
from __future__ import annotations

import threading

from facedist.atomic import replacing


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("old")
    try:
        with replacing(path) as fh:
            fh.write("half")
            raise OSError("disk full")
    except OSError:
        pass
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_two_writers_at_once_each_replace_the_file_whole(tmp_path):
    """Both inside the block at once (the review server's threads cutting one thumbnail for two
    tabs): with one temporary name between them, the second truncated the first's and the first
    rename took the second's away (FileNotFoundError, a 500)."""
    path = tmp_path / "face.jpg"
    both_writing = threading.Barrier(2, timeout=10)
    errors = []

    def write(text: str) -> None:
        try:
            with replacing(path) as fh:
                fh.write(text)
                fh.flush()
                both_writing.wait()
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(c * 1000,)) for c in "ab"]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == [] and path.read_text() in ("a" * 1000, "b" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["face.jpg"]
