"""Hostile inputs, faults and settings, each made here by the test. Every case checks three
things: the exit code, the message (one line on stderr, never a traceback), and that nothing was
lost or touched (the photos' bytes and times; the database still whole)."""
from __future__ import annotations

import csv
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import LABELED, facedist_main, tree_state, write_face_image
from test_decode import _png_declaring
from facedist.store import DB_NAME, OutputLock, from_db

FACE = LABELED / "people" / "obama" / "obama_1.jpg"  # two faces: Obama, and one small in the back
CLI = [sys.executable, "-m", "facedist.cli"]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def db_is_whole(out: Path) -> None:
    assert query(out, "PRAGMA integrity_check") == [("ok",)]


def no_temporary_files(out: Path) -> None:
    left = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert not left, left


def _save(img: Image.Image, fmt: str | None = None, **kw):
    return lambda p: img.save(p, format=fmt, **kw)


def _animated(p: Path) -> None:
    frames = [Image.new("P", (64, 48), c) for c in (1, 2, 3)]
    frames[0].save(p, save_all=True, append_images=frames[1:])


def _bad_orientation(p: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 9  # not one of the eight orientations
    Image.new("RGB", (40, 30), "gray").save(p, exif=exif)


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _socket(p: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()


def _loop(p: Path) -> None:
    p.mkdir()
    os.symlink("..", p / "up")  # a directory link loop: walked once


def _truncated(fmt: str, keep: int):
    def make(p: Path) -> None:
        import io

        buf = io.BytesIO()
        Image.open(FACE).convert("RGB").save(buf, format=fmt)
        p.write_bytes(buf.getvalue()[:keep])
    return make


grey = Image.new("L", (64, 48), 128)
# name -> (how the file is made, "face" | "done" | the reason it is skipped)
FILES = {
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty file"),
    "truncated.jpg": (_truncated("JPEG", 3000), "cannot decode"),
    "truncated.png": (_truncated("PNG", 2000), "cannot decode"),
    "garbage.jpg": (lambda p: p.write_bytes(os.urandom(5000)), "not a recognised image format"),
    "text.png": (lambda p: p.write_text("hello"), "not a recognised image format"),
    "bomb.png": (lambda p: p.write_bytes(_png_declaring(100_000, 100_000)), "exceeds the pixel limit"),
    "tiny.png": (_save(Image.new("RGB", (1, 1))), "done"),
    "grey16.png": (_save(Image.fromarray(np.full((48, 64), 40000, np.uint16))), "done"),
    "int32.tif": (_save(grey.convert("I")), "done"),
    "float.tif": (_save(grey.convert("F")), "done"),
    "cmyk.jpg": (_save(grey.convert("CMYK")), "done"),
    "rgba.png": (_save(Image.new("RGBA", (64, 48), (10, 20, 30, 0))), "done"),
    "onebit.bmp": (_save(grey.convert("1")), "done"),
    "animated.gif": (_animated, "done"),
    "odd-orientation.jpg": (_bad_orientation, "done"),
    "png-named.jpg": (_save(grey, "PNG"), "done"),
    "face-cmyk.jpg": (lambda p: write_face_image(p, FACE, mode="CMYK"), "face"),
    "face-la.png": (lambda p: write_face_image(p, FACE, mode="LA"), "face"),
    os.fsdecode(b"caf\xe9-latin1.jpg"): (lambda p: write_face_image(p, FACE), "face"),
    "new\nline, \"quoted\".jpg": (lambda p: write_face_image(p, FACE), "face"),
    "-leading-dash.jpg": (lambda p: write_face_image(p, FACE), "face"),
    "x" * 240 + ".jpg": (lambda p: write_face_image(p, FACE), "face"),
    unicodedata.normalize("NFC", "é-nfc.jpg"): (lambda p: write_face_image(p, FACE), "face"),
    unicodedata.normalize("NFD", "é-nfc.jpg"): (lambda p: write_face_image(p, FACE), "face"),
    "emoji-\U0001F600.jpg": (lambda p: write_face_image(p, FACE), "face"),
    "back\\slash.jpg": (lambda p: write_face_image(p, FACE), "face"),
    "UPPER.JPG": (lambda p: write_face_image(p, FACE), "face"),
    "fifo.jpg": (_fifo, "not a regular file"),
    "socket.png": (_socket, "not a regular file"),
    "broken-link.jpg": (lambda p: os.symlink("nowhere.jpg", p), "broken symbolic link"),
    "folder.jpg": (lambda p: p.mkdir(), "a directory named like an image"),
    "loop": (_loop, None),
    "link-to-face.jpg": (lambda p: os.symlink(FACE, p), "face"),
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One run over a folder of every hostile file above (and a copy of each in a subfolder
    that is itself reached twice through a link)."""
    root = tmp_path_factory.mktemp("hostile")
    photos = root / "photos"
    photos.mkdir()
    for name, (make, _) in FILES.items():
        make(photos / name)
    before = tree_state(photos)
    out = root / "out"
    proc = subprocess.run(CLI + ["run", str(photos), "--out", str(out), "--no-progress",
                                 "--views", "1"], capture_output=True, text=True, timeout=600)
    db = sqlite3.connect(out / DB_NAME)
    results = {os.path.basename(from_db(p)): (s, r) for p, s, r in db.execute(
        "SELECT i.path, r.status, r.reason FROM results r JOIN images i ON i.id = r.image_id")}
    with open(out / "faces.csv", newline="", encoding="utf-8") as fh:
        faces = [os.path.basename(r["path"]) for r in csv.DictReader(fh)]
    return proc, results, faces, before, photos, out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FILES), ids=lambda n: ascii(n)[1:-1][:40])
def test_hostile_file_is_processed_or_skipped_with_its_reason(hostile_run, name):
    proc, results, faces, before, photos, out = hostile_run
    expected = FILES[name][1]
    assert proc.returncode == 0
    # the summary (a message: on stderr), and one warning line: the skipped files, counted
    assert proc.stderr.startswith("facedist: ") and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "warning: " in line]) == 1
    assert tree_state(photos) == before
    if expected is None:
        assert name not in results
    elif expected == "face":
        shown = (name.replace("\\", "\\\\").encode("utf-8", "surrogateescape")  # display_path
                 .decode("utf-8", "backslashreplace"))
        assert results[name] == ("done", None)
        assert faces.count(shown) >= 1  # its faces, under a readable name
    elif expected == "done":
        assert results[name] == ("done", None)
    else:
        status, reason = results[name]
        assert status == "skipped" and expected in reason
        assert expected in proc.stderr  # and said in the summary
    db_is_whole(out)
    no_temporary_files(out)


# -- faults: disk, folder, database, lock -------------------------------------------------------
@pytest.fixture
def photos(tmp_path):
    p = tmp_path / "photos"
    p.mkdir()
    write_face_image(p / "a.jpg", FACE)
    (p / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    return p


def finished_run(photos: Path, out: Path) -> None:
    code, _, err = facedist_main("run", photos, "--out", out, "-q", "--views", "1")
    assert code == 0, err


def query(out: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(out / DB_NAME)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def runs(out: Path) -> list[tuple[str, str | None]]:
    return query(out, "SELECT status, error FROM runs ORDER BY id")


def stored_faces(out: Path) -> list[tuple]:
    return sorted(query(out, "SELECT image_id, face_index, embedding FROM faces"))


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_disk_full_is_one_line_and_loses_nothing(tmp_path, photos):
    """A real full disk: a small tmpfs (as root), else a file-size limit (EFBIG) in a child."""
    disk = tmp_path / "disk"
    out = disk / "out"
    before = tree_state(photos)
    if _mount_tmpfs(disk, "size=4m"):
        try:
            finished_run(photos, out)
            kept = stored_faces(out)
            write_face_image(photos / "b.png", FACE, fmt="PNG")  # new work for the second run
            filler = disk / "filler"
            with open(filler, "wb", buffering=0) as fh:  # fill the disk to its last byte
                try:
                    while True:
                        fh.write(b"\0" * 4096)
                except OSError:
                    pass
            before = tree_state(photos)
            code, _, err = facedist_main("run", photos, "--out", out, "--no-progress",
                                         "--views", "1")
            filler.unlink()
            assert code == 4
            assert "no space left" in one_line(err)
            no_temporary_files(out)
            db_is_whole(out)
            assert set(kept) <= set(stored_faces(out))  # what the first run stored is kept
            assert [s for s, _ in runs(out)].count("finished") == 1  # not taken for finished
            code, _, err = facedist_main("run", photos, "--out", out, "-q", "--views", "1")
            assert code == 0, err  # space again: the rerun goes on
        finally:
            import gc

            gc.collect()  # closes what the failed run's objects still hold open
            subprocess.run(["umount", "--lazy", str(disk)], check=True)
    else:
        import resource

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

        proc = subprocess.run(CLI + ["run", str(photos), "--out", str(out), "--no-progress",
                                     "--views", "1"], capture_output=True, text=True,
                              preexec_fn=limit, timeout=300)
        assert proc.returncode == 4
        assert "no space left" in one_line(proc.stderr) or "file-size" in one_line(proc.stderr)
        no_temporary_files(out)
        if (out / DB_NAME).exists():
            db_is_whole(out)
    assert tree_state(photos) == before


@pytest.mark.slow
def test_injected_enospc_while_writing_tables(tmp_path, photos, monkeypatch):
    import errno

    from facedist import atomic

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    before = tree_state(photos)
    out = tmp_path / "out"
    code, _, err = facedist_main("run", photos, "--out", out, "--no-progress", "--views", "1")
    assert code == 4 and "no space left" in one_line(err)
    no_temporary_files(out)
    assert runs(out) == [("failed", one_line(err).removeprefix("facedist: "))]
    assert len(stored_faces(out)) == 2  # the faces were stored before the tables failed
    assert tree_state(photos) == before


@pytest.mark.slow
def test_injected_database_full(tmp_path, photos, monkeypatch):
    from facedist.store import FaceStore

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(FaceStore, "save_chunk", full)
    out = tmp_path / "out"
    code, _, err = facedist_main("run", photos, "--out", out, "--no-progress", "--views", "1")
    assert code == 4 and "database or disk is full" in one_line(err)
    assert runs(out)[0][0] == "failed"
    db_is_whole(out)


@pytest.mark.slow
def test_read_only_output_folder(tmp_path, photos, monkeypatch):
    """Made read-only for real: by its mode (a user), a read-only bind mount (root), or, where
    root may not mount, by SQLite's own answer injected."""
    out = tmp_path / "out"
    finished_run(photos, out)
    kept = (out / DB_NAME).read_bytes()
    mounted = False
    if os.geteuid() != 0:
        os.chmod(out, 0o555)
        os.chmod(out / DB_NAME, 0o444)
    else:  # root writes through modes: bind the folder onto itself, read-only
        mounted = (subprocess.run(["mount", "--bind", str(out), str(out)]).returncode == 0
                   and subprocess.run(["mount", "-o", "remount,bind,ro", str(out)]).returncode == 0)
        if not mounted:
            subprocess.run(["umount", str(out)], capture_output=True)
            from facedist import store

            def read_only(*args, **kwargs):
                raise sqlite3.OperationalError("attempt to write a readonly database")

            monkeypatch.setattr(store.sqlite3, "connect", read_only)
    try:
        write_face_image(photos / "b.png", FACE, fmt="PNG")
        code, _, err = facedist_main("run", photos, "--out", out, "--no-progress", "--views", "1")
        assert code == 4 and "writ" in one_line(err) and "another --out" in one_line(err)
        assert (out / DB_NAME).read_bytes() == kept
    finally:
        if mounted:
            subprocess.run(["umount", str(out)], check=True)
        elif os.geteuid() != 0:
            os.chmod(out, 0o755)


def _overwrite_page_of(name: str):
    """Damage the first page of table or index `name` (what a failing disk does): SQLite's
    quick_check sees it, a query through another page may not."""
    def damage(db: Path) -> None:
        con = sqlite3.connect(db)
        page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
        con.close()
        data = bytearray(db.read_bytes())
        data[(page - 1) * size:page * size] = b"\xa5" * size
        db.write_bytes(bytes(data))
    return damage


CORRUPTIONS = {
    "garbage": lambda db: db.write_bytes(os.urandom(8192)),
    "index-page": _overwrite_page_of("faces_key"),
    "people-page": _overwrite_page_of("people"),
    "truncated": lambda db: db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 3]),
    "zeroed-pages": lambda db: db.write_bytes(db.read_bytes()[:4096] + b"\0" * (len(db.read_bytes()) - 4096)),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(CORRUPTIONS))
@pytest.mark.parametrize("command", ["run", "near", "export", "people", "lookalikes", "report",
                                     "name"])
def test_corrupt_database_is_named_and_never_overwritten(tmp_path, photos, damage, command):
    out = tmp_path / "out"
    finished_run(photos, out)
    db = out / DB_NAME
    for side in ("-wal", "-shm"):
        Path(str(db) + side).unlink(missing_ok=True)
    CORRUPTIONS[damage](db)
    damaged = db.read_bytes()
    argv = {"run": ["run", photos, "--out", out, "--views", "1", "--no-progress"],
            "near": ["near", photos / "a.jpg", "--db", out], "export": ["export", "--db", out],
            "people": ["people", out], "lookalikes": ["lookalikes", out],
            "report": ["report", out], "name": ["people", out, "name", "1", "Ann"]}[command]
    before = tree_state(photos)
    code, _, err = facedist_main(*argv)
    assert code == 5, err
    assert "damaged" in one_line(err) and "another --out" in one_line(err)
    assert db.read_bytes() == damaged
    assert tree_state(photos) == before


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "near", "export", "lookalikes", "report", "name"])
def test_damaged_embedding_is_named_and_never_used(tmp_path, photos, command):
    """Bytes changed inside a stored embedding: SQLite's checks pass, the values do not."""
    out = tmp_path / "out"
    finished_run(photos, out)
    con = sqlite3.connect(out / DB_NAME)
    face, blob = con.execute("SELECT id, embedding FROM faces ORDER BY id LIMIT 1").fetchone()
    x = np.frombuffer(blob, np.float32).copy()
    x[:4] = 1e35
    with con:
        con.execute("UPDATE faces SET embedding = ? WHERE id = ?", (x.tobytes(), face))
    con.close()
    kept = query(out, "SELECT * FROM people") + query(out, "SELECT * FROM face_people")
    argv = {"run": ["run", photos, "--out", out, "--views", "1", "--no-progress"],
            "near": ["near", photos / "a.jpg", "--db", out], "export": ["export", "--db", out],
            "people": ["people", out], "lookalikes": ["lookalikes", out],
            "report": ["report", out], "name": ["people", out, "name", "1", "Ann"]}[command]
    code, _, err = facedist_main(*argv)
    line = one_line(err)
    assert code == 5 and "damaged" in line and f"face {face} " in line and "a.jpg" in line, err
    assert query(out, "SELECT * FROM people") + query(out, "SELECT * FROM face_people") == kept
    assert not (out / "report").exists() and not (out / "export").exists()


@pytest.mark.slow
def test_a_finished_output_on_read_only_media_can_be_read(tmp_path, photos):
    """Readers open the database read-only: a mounted archive answers near, people,
    lookalikes, export and report elsewhere; a correction says it cannot write."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    finished_run(photos, out)
    kept = tree_state(out)
    script = "; ".join([
        f"mount --bind {out} {out}", f"mount -o remount,bind,ro {out}",
        *(f"{sys.executable} -m facedist.cli {cmd} > /dev/null || echo FAILED {cmd.split()[0]} $?"
          for cmd in (f"near {photos / 'a.jpg'} --db {out}", f"people {out}", f"lookalikes {out}",
                      f"export --db {out} --dest {elsewhere / 'export'}",
                      f"report {out} --dest {elsewhere / 'report'}")),
        f"{sys.executable} -m facedist.cli people {out} name 1 Ann; echo name $?"])
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True,
                          text=True, timeout=600)
    assert "FAILED" not in done.stdout, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "name 4", done.stdout + done.stderr
    assert (elsewhere / "report" / "index.html").is_file()
    assert (elsewhere / "export" / "embeddings.npy").is_file()
    assert tree_state(out) == kept


@pytest.mark.slow
def test_second_writer_is_told_who_holds_the_folder_or_waits(tmp_path, photos):
    out = tmp_path / "out"
    finished_run(photos, out)
    held = OutputLock(out, what="run")
    try:
        code, _, err = facedist_main("run", photos, "--out", out, "--no-progress", "--views", "1")
        assert code == 6 and f"pid {os.getpid()}" in one_line(err) and "--wait" in one_line(err)
        code, _, err = facedist_main("people", out, "name", "1", "Ana")
        assert code == 6 and "is writing" in one_line(err)
        code, out_text, err = facedist_main("people", out)  # readers go on
        assert code == 0 and out_text.startswith("person,")
        threading.Timer(1.5, held.release).start()
        t0 = time.monotonic()
        code, _, err = facedist_main("run", photos, "--out", out, "-q", "--views", "1", "--wait")
        assert code == 0 and time.monotonic() - t0 >= 1.4 and err == ""
    finally:
        held.release()
    db_is_whole(out)


@pytest.mark.slow
def test_concurrent_runs_one_writes_the_other_is_refused(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, person in enumerate(sorted((LABELED / "people").iterdir())[:4]):
        for photo in sorted(person.iterdir())[:2]:
            os.symlink(photo, photos / f"{i}-{photo.name}")
    before = tree_state(photos)
    out = tmp_path / "out"
    cmd = CLI + ["run", str(photos), "--out", str(out), "--no-progress", "--views", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = sorted((p.wait(timeout=600), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 6], results
    assert "is writing this output folder" in one_line(results[1][1])
    waited = [subprocess.Popen(cmd + ["--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(2)]
    assert [p.wait(timeout=600) for p in waited] == [0, 0]
    db_is_whole(out)
    faces = stored_faces(out)
    assert len(faces) == len(set((i, j) for i, j, _ in faces))  # no face twice
    assert tree_state(photos) == before


@pytest.mark.slow
def test_failed_run_is_recorded_and_readers_see_the_last_finished_one(tmp_path, photos,
                                                                       monkeypatch):
    import facedist
    from facedist import pipeline

    out = tmp_path / "out"
    finished_run(photos, out)
    seen_before = facedist.open_db(out).faces()
    write_face_image(photos / "b.png", FACE, fmt="PNG")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in compare")

    monkeypatch.setattr(pipeline, "compare", broken)
    code, _, err = facedist_main("run", photos, "--out", out, "--no-progress", "--views", "1")
    assert code == 1 and "internal error: RuntimeError: a bug in compare" in one_line(err)
    assert [s for s, _ in runs(out)] == ["finished", "failed"]
    assert runs(out)[1][1] == "a bug in compare"
    assert len(stored_faces(out)) == 4  # b.png's faces were stored: a rerun keeps them
    seen = facedist.open_db(out).faces()
    assert seen.paths == seen_before.paths  # ...but readers see the finished run, not b.png
    code, _, err = facedist_main("run", photos, "--out", out, "-v", "--no-progress", "--views", "1")
    assert code == 1 and "Traceback" in err  # -v asks for the traceback
    monkeypatch.undo()
    finished_run(photos, out)
    assert len(facedist.open_db(out).faces()) == 4


@pytest.mark.slow
def test_interrupt_is_recorded_and_exits_130(tmp_path, photos, monkeypatch):
    from facedist import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "assign_people", interrupted)
    out = tmp_path / "out"
    code, _, err = facedist_main("run", photos, "--out", out, "--no-progress", "--views", "1")
    assert code == 130 and "interrupted" in one_line(err)
    assert runs(out) == [("failed", "interrupted")]
    assert len(stored_faces(out)) == 2


# -- weights ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_flipped_byte_in_converted_weights_is_never_used(tmp_path, photos, monkeypatch):
    from facedist.models import EMBEDDERS, sha256_file

    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    finished_run(photos, tmp_path / "out")
    [converted] = (tmp_path / "cache" / "weights").glob("*.safetensors")
    data = bytearray(converted.read_bytes())
    data[len(data) // 2] ^= 0x40  # one flipped bit in the middle of a weight
    converted.write_bytes(bytes(data))
    (converted.parent / (converted.name + ".sha256")).write_text(sha256_file(converted))  # forged
    code, _, err = facedist_main("run", photos, "--out", tmp_path / "out2", "-q", "--views", "1")
    assert code == 0 and err == ""
    assert sha256_file(converted) == EMBEDDERS["dlib-resnet"].weights.converted_sha256  # rebuilt
    assert stored_faces(tmp_path / "out") == stored_faces(tmp_path / "out2")


def _facenet_weights(path: Path, damage: str) -> Path:
    import torch
    from safetensors.torch import save_file

    from facedist.embed import synthetic_facenet_state

    state = synthetic_facenet_state()
    if damage == "nan":
        state["last_linear.weight"][0, 0] = float("nan")
    elif damage == "other":
        state["last_linear.weight"] *= 1.01
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100_000])
    if damage == "pt-truncated":
        torch.save(state, path.with_suffix(".pt"))
        path = path.with_suffix(".pt")
        path.write_bytes(path.read_bytes()[:100_000])
    return path


@pytest.mark.slow
@pytest.mark.parametrize("damage,message", [("nan", "non-finite embeddings"),
                                            ("truncated", "cannot load"),
                                            ("pt-truncated", "cannot load")])
def test_damaged_weights_are_refused_and_nothing_is_stored(tmp_path, photos, damage, message):
    weights = _facenet_weights(tmp_path / "w.safetensors", damage)
    before = tree_state(photos)
    out = tmp_path / "out"
    code, _, err = facedist_main("run", photos, "--out", out, "--model", "facenet-vggface2",
                       "--weights", weights, "--no-progress")
    assert code == 3 and message in one_line(err)
    if damage == "nan":  # found while embedding: the run is recorded failed, with no face
        assert stored_faces(out) == [] and [s for s, _ in runs(out)] == ["failed"]
    else:  # refused while loading, before the output folder is touched
        assert not (out / DB_NAME).exists()
    assert tree_state(photos) == before


@pytest.mark.slow
def test_weights_changed_under_an_output_folder_are_refused(tmp_path, photos):
    weights = _facenet_weights(tmp_path / "w.safetensors", "none")
    out = tmp_path / "out"
    argv = ["run", photos, "--out", out, "--model", "facenet-vggface2", "--weights", weights, "-q"]
    assert facedist_main(*argv)[0] == 0
    kept = stored_faces(out)
    _facenet_weights(weights, "other")  # same name, other content
    code, _, err = facedist_main(*argv)
    assert code == 3 and "differs from the file this output was made with" in one_line(err)
    assert stored_faces(out) == kept


# -- near, the API and the environment ----------------------------------------------------------
@pytest.mark.slow
def test_near_never_blocks_on_a_fifo_nor_creates_a_database(tmp_path, photos):
    out = tmp_path / "out"
    finished_run(photos, out)
    os.mkfifo(tmp_path / "q.jpg")
    proc = subprocess.run(CLI + ["near", str(tmp_path / "q.jpg"), "--db", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a regular file" in one_line(proc.stderr)
    code, _, err = facedist_main("near", photos / "a.jpg", "--db", tmp_path / "nowhere")
    assert code == 2 and "no facedist database" in one_line(err)
    assert not (tmp_path / "nowhere").exists()
    odd = photos / os.fsdecode(b"\xff\xfe.jpg")
    write_face_image(odd, FACE)
    code, text, err = facedist_main("near", odd, "--db", out, "-k", "1", "--json")
    import json

    assert code == 0 and [m["rank"] for m in json.loads(text)] == [1, 1]


@pytest.mark.slow
def test_empty_output_answers_near_export_and_api(tmp_path):
    import facedist

    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    code, text, err = facedist_main("run", empty, "--out", out, "--no-progress", "--json")
    import json

    assert code == 0 and json.loads(text)["faces"] == 0 and err == ""
    assert (out / "faces.csv").read_text().startswith("face,face_id,path")
    write_face_image(tmp_path / "q.jpg", FACE)
    code, text, err = facedist_main("near", tmp_path / "q.jpg", "--db", out)
    assert code == 0 and text == "query_face,rank,path,face_index,distance\n"
    assert "no faces stored" in one_line(err)
    code, text, _ = facedist_main("export", "--db", out, "--json")
    assert code == 0 and np.load(out / "export" / "embeddings.npy").shape[0] == 0
    assert facedist.open_db(out).people() == [] and facedist.open_db(out).lookalikes(3) == []


@pytest.mark.parametrize("env,value,message", [
    ("FACEDIST_OFFLINE", "maybe", "FACEDIST_OFFLINE takes 0 or 1"),
    ("FACEDIST_CACHE", "FILE", "is not a folder"),
])
def test_bad_environment_is_one_line_before_any_work(tmp_path, monkeypatch, env, value, message):
    if value == "FILE":
        value = str(tmp_path / "a-file")
        Path(value).write_text("x")
    monkeypatch.setenv(env, value)
    code, _, err = facedist_main("run", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("call,message", [
    (lambda f, t: f.run(t, t / "o", k=0), "k takes a whole number"),
    (lambda f, t: f.run(t, t / "o", factor=1.5), "factor takes a number between 0 and 1"),
    (lambda f, t: f.run(t, t / "o", thresholds=0.6), "thresholds takes three numbers"),
    (lambda f, t: f.run(t, t / "o", bogus=1), "unknown setting 'bogus'"),
    (lambda f, t: f.analyze(np.zeros((4, 4), np.float32)), "must be uint8"),
    (lambda f, t: f.analyze(b"not an image"), "not a recognised image format"),
    (lambda f, t: f.analyze(12), "not an image: int"),
    (lambda f, t: f.open_db(t / "none"), "no facedist database"),
])
def test_api_refuses_bad_values_in_one_line(tmp_path, call, message):
    import facedist

    with pytest.raises((ValueError, FileNotFoundError)) as err:
        call(facedist, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "o").exists() and not (tmp_path / "none").exists()


def test_library_import_and_analyze_leave_process_state_alone():
    code = ("import os, sys, torch; n = torch.get_num_threads(); env = dict(os.environ);"
            "import numpy as np, facedist;"
            "faces = facedist.analyze(np.zeros((60, 80, 3), np.uint8), model='facenet-vggface2',"
            " weights='synthetic');"
            "assert faces == [], faces;"
            "assert torch.get_num_threads() == n, (torch.get_num_threads(), n);"
            "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_analyze_gives_typed_faces_from_any_image_form(tmp_path):
    import facedist

    img = Image.open(FACE)
    forms = [FACE, str(FACE), FACE.read_bytes(), img, np.asarray(img.convert("RGB"))]
    results = [facedist.analyze(x, views=1) for x in forms]
    for faces in results:
        assert len(faces) == 2 and isinstance(faces[0], facedist.Face)
        assert faces[0].landmarks.shape == (5, 2) and faces[0].embedding.shape == (128,)
        assert abs(np.linalg.norm(faces[0].embedding) - 1) < 1e-4
        assert np.allclose(faces[0].box, results[0][0].box, atol=1.0)


# -- kill -9 at random moments ------------------------------------------------------------------
@pytest.fixture(scope="module")
def twelve_photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    photos = root / "photos"
    photos.mkdir()
    people = sorted((LABELED / "people").iterdir())
    for i, person in enumerate(people):
        for photo in sorted(person.iterdir())[:2]:
            os.symlink(photo, photos / f"{i}-{photo.name}")
    code, _, err = facedist_main("run", photos, "--out", root / "clean", "--no-progress",
                                 "--views", "1")
    assert code == 0, err
    return photos, root / "clean"


def _faces_by_path(out: Path) -> list[tuple]:
    return sorted(query(out, "SELECT i.path, f.face_index, round(f.x1), round(f.y1), f.embedding "
                             "FROM faces f JOIN images i ON i.id = f.image_id"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_a_random_moment_then_resume_gives_the_same_answers(tmp_path, twelve_photos, seed):
    import random
    import signal

    photos, clean = twelve_photos
    out = tmp_path / "out"
    cmd = CLI + ["run", str(photos), "--out", str(out), "--no-progress", "--views", "1",
                 "--config", str(tmp_path / "c.yaml")]
    (tmp_path / "c.yaml").write_text("chunk-images: 1\n")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # anywhere from model loading to the last chunk (a whole run takes ~3.5 s on 2 cores)
    time.sleep(random.Random(seed).uniform(0.3, 2.5))
    assert proc.poll() is None, "the run should be killed part way"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    code, _, err = facedist_main(*cmd[cmd.index("run"):])  # the next run, in this process
    assert code == 0 and "Traceback" not in err, err
    db_is_whole(out)
    got, want = _faces_by_path(out), _faces_by_path(clean)
    assert [g[:4] for g in got] == [w[:4] for w in want]  # every face, once, where it was
    # the same embeddings, up to float rounding (faces are batched differently after a kill)
    assert np.allclose(np.array([np.frombuffer(g[4], np.float32) for g in got]),
                       np.array([np.frombuffer(w[4], np.float32) for w in want]), atol=1e-5)
    assert _csv_rows(out) == _csv_rows(clean)
    no_temporary_files(out)


def _csv_rows(out: Path) -> list[tuple]:
    with open(out / "faces.csv", newline="") as fh:
        return [(os.path.basename(r["path"]), r["face_index"], r["x1"], r["y1"])
                for r in csv.DictReader(fh)]


# -- interrupted the usual ways (issue 25 §2) --------------------------------------------------
def _run_in_background(tmp_path: Path, photos: Path, out: Path):
    """`python -m facedist run` in its own session (as a shell runs a job), with a private
    TMPDIR and its stderr (and its sampler's) in a file; returns once it is working: its run
    recorded and the sampler started."""
    import psutil

    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    (tmp_path / "c.yaml").write_text("chunk-images: 1\n")
    err = open(tmp_path / "stderr.txt", "w")
    cmd = [sys.executable, "-m", "facedist", "run", str(photos), "--out", str(out),
           "--no-progress", "--views", "1", "--config", str(tmp_path / "c.yaml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    err.close()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            started = (out / DB_NAME).exists() and query(out, "SELECT COUNT(*) FROM runs")[0][0]
        except sqlite3.Error:
            started = False
        children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        if started and children:
            time.sleep(0.5)  # the sampler in its loop, the first chunks under way
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run should still be working"
    return proc, psutil.Process(proc.pid).children(recursive=True), cmd


def _ended(proc, children, tmp_path: Path) -> str:
    """Wait for the run and every process it started; their stderr."""
    import psutil

    proc.wait(timeout=120)
    gone, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, alive
    return (tmp_path / "stderr.txt").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("signame,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_to_the_process_group_end_in_one_line(tmp_path, twelve_photos, signame,
                                                                   code):
    import signal

    photos, _ = twelve_photos
    out = tmp_path / "out"
    proc, children, _ = _run_in_background(tmp_path, photos, out)
    os.killpg(proc.pid, getattr(signal, signame))
    err = _ended(proc, children, tmp_path)
    assert proc.returncode == code, err
    assert "interrupted" in one_line(err)
    [(status, error)] = runs(out)
    assert status == "failed" and "interrupted" in error
    assert list((tmp_path / "tmp").iterdir()) == []  # no /tmp/facedist-stage-* left
    db_is_whole(out)
    no_temporary_files(out)


@pytest.mark.slow
def test_kill_9_leaves_no_traceback_nor_temporary_file_and_the_next_run_says_interrupted(
        tmp_path, twelve_photos):
    import signal

    photos, _ = twelve_photos
    out = tmp_path / "out"
    proc, children, cmd = _run_in_background(tmp_path, photos, out)
    proc.send_signal(signal.SIGKILL)
    err = _ended(proc, children, tmp_path)
    assert "Traceback" not in err and "Error" not in err, err
    assert list((tmp_path / "tmp").iterdir()) == []
    assert runs(out) == [("running", None)]
    code, _, err = facedist_main(*cmd[cmd.index("run"):])  # the next run, in this process
    assert code == 0 and "Traceback" not in err, err
    (first, error), last = runs(out)
    assert first == "failed" and "interrupted" in error and last == ("finished", None)
    assert "interrupted" in err


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    """Ctrl-C while Python still imports facedist (here: at numpy's import) is one line, 130."""
    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def hook(name, *a, **k):\n"
            "    if name == 'numpy' and builtins.__import__ is hook:\n"
            "        builtins.__import__ = real  # one Ctrl-C\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = hook\n"
            "sys.argv = ['facedist', 'run', sys.argv[1], '--out', sys.argv[2]]\n"
            "import runpy\n"
            "runpy.run_module('facedist', run_name='__main__', alter_sys=True)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130 and "interrupted" in one_line(proc.stderr), proc.stderr


# -- settings and messages (issue 25 §5) -------------------------------------------------------
def test_flags_win_over_the_yaml_files_out_and_photos(tmp_path, monkeypatch):
    from facedist import pipeline

    seen = {}

    def fake_run(settings):
        seen.update(photos=settings.photos, out=settings.out)
        raise ValueError("stop here")

    monkeypatch.setattr(pipeline, "run", fake_run)
    (tmp_path / "c.yaml").write_text(f"out: {tmp_path / 'yaml-out'}\n"
                                     f"photos: {tmp_path / 'yaml-photos'}\n")
    code, _, err = facedist_main("run", tmp_path / "p", "--out", tmp_path / "o",
                      "--config", tmp_path / "c.yaml")
    assert code == 2 and seen == {"photos": tmp_path / "p", "out": tmp_path / "o"}


@pytest.mark.parametrize("argv,names", [
    (["--views", "3"], "views"),
    (["--faces", "some"], "faces"),
    (["--max-side", "big"], "max-side"),
    (["--threshold", "inf"], "threshold"),
    (["--min-face-size", "inf"], "min-face-size"),
    (["--sample-interval", "inf"], "sample-interval"),
])
def test_bad_flag_is_one_line_and_exit_2(tmp_path, argv, names):
    code, _, err = facedist_main("run", tmp_path, "--out", tmp_path / "o", *argv)
    assert code == 2 and names in one_line(err), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("yaml_text,message", [
    ("threshold: .inf\n", "threshold"),
    ("min-face-size: .inf\n", "min-face-size"),
    ("k: 3\nmodel: dlib-resnet\nk: 5\n", "'k' is given twice (lines 1 and 3)"),
])
def test_bad_yaml_value_is_one_line_and_exit_2(tmp_path, yaml_text, message):
    (tmp_path / "c.yaml").write_text(yaml_text)
    code, _, err = facedist_main("run", tmp_path, "--out", tmp_path / "o",
                      "--config", tmp_path / "c.yaml")
    assert code == 2 and message in one_line(err), err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_truncated_dlib_weights_are_a_weights_error_naming_the_file(tmp_path, monkeypatch):
    from facedist.models import EMBEDDERS, resolve_weights

    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    dat = resolve_weights(EMBEDDERS["dlib-resnet"], None)
    cut = tmp_path / "cut.dat"
    cut.write_bytes(Path(dat).read_bytes()[:len(Path(dat).read_bytes()) // 2])
    photos = tmp_path / "photos"
    photos.mkdir()
    code, _, err = facedist_main("run", photos, "--out", tmp_path / "o", "--weights", cut, "-q")
    assert code == 3 and "cut.dat" in one_line(err), err


@pytest.mark.slow
def test_near_on_a_missing_file_says_it_does_not_exist(tmp_path):
    (tmp_path / "empty").mkdir()
    assert facedist_main("run", tmp_path / "empty", "--out", tmp_path / "out", "-q")[0] == 0
    code, _, err = facedist_main("near", tmp_path / "nothere.jpg", "--db", tmp_path / "out")
    line = one_line(err)
    assert code == 2 and "does not exist" in line and "link" not in line, err


def test_display_paths_are_reversible():
    from facedist.discover import display_path

    odd, text = os.fsdecode(b"\xff\xfe.jpg"), "\\xff\\xfe.jpg"
    assert display_path(odd) != display_path(text)
    assert display_path(odd) == "\\xff\\xfe.jpg" and display_path(text) == "\\\\xff\\\\xfe.jpg"
    for plain in ["a/b c.jpg", "café/ünï 😀.jpg", "x,\"y\"\n.png"]:
        assert display_path(plain) == plain


@pytest.mark.slow
def test_byte_and_text_twins_show_as_different_paths_everywhere(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_face_image(photos / os.fsdecode(b"\xff\xfe.jpg"), FACE)
    write_face_image(photos / "\\xff\\xfe.jpg", FACE)
    out = tmp_path / "out"
    code, text, err = facedist_main("run", photos, "--out", out, "-q", "--views", "1")
    assert code == 0, err
    with open(out / "faces.csv", newline="") as fh:
        names = {os.path.basename(r["path"]) for r in csv.DictReader(fh)}
    assert names == {"\\xff\\xfe.jpg", "\\\\xff\\\\xfe.jpg"}
    code, text, err = facedist_main("export", "--db", out)
    with open(out / "export" / "faces.csv", newline="") as fh:
        assert {os.path.basename(r["path"]) for r in csv.DictReader(fh)} == names


# -- faces lost without a word (issue 25 §6) ---------------------------------------------------
@pytest.mark.slow
def test_panorama_faces_are_found_at_the_default_max_side(tmp_path):
    from conftest import SHARED

    tile = Image.open(SHARED / "data" / "celeba" / "07201" / "001085.jpg").convert("RGB")
    tile = tile.resize((round(tile.width * 300 / tile.height), 300), Image.LANCZOS)
    n = 30000 // tile.width
    strip = Image.new("RGB", (30000, 300), (128, 128, 128))
    for i in range(n):
        strip.paste(tile, (i * tile.width, 0))
    photos = tmp_path / "photos"
    photos.mkdir()
    strip.save(photos / "panorama.png")
    tile.save(tmp_path / "tile.png")
    import facedist

    assert len(facedist.analyze(tmp_path / "tile.png", views=1)) == 1
    out = tmp_path / "out"
    code, _, err = facedist_main("run", photos, "--out", out, "-q", "--views", "1")
    assert code == 0, err
    assert len(stored_faces(out)) >= 0.9 * n, (len(stored_faces(out)), n)
