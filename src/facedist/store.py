"""store: one SQLite database per output folder (OUT_DIR/facedist.sqlite).

Tables: runs (settings, versions, times), images (path, size, mtime, content hash, size in
pixels), results (one row per image and pipeline key: done or skipped with its reason), faces
(box, landmarks, probability, model, embedding), people (id, name) and face_people (each face's
person, pinned when the user placed it; people.py). A pipeline key names the detector settings and
the model, so embeddings of different models never mix and changed settings recompute.

Each chunk of images is written in one transaction (results and faces together), so a run killed
at any moment loses at most the chunk in flight and never leaves a face twice or half-written.
One run writes an output folder at a time (`OutputLock`); readers see the last finished run
(`faces(upto_run=...)`), never the chunks of one still going.

Paths are stored losslessly and absolute (photo_paths.py; older outputs' relative paths are
rewritten by a writer, seen absolute by a reader).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .photo_paths import anchor_for_reading, from_db, make_absolute, to_db

DB_NAME = "facedist.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started REAL, finished REAL, pipeline_key TEXT, model TEXT,
    photos TEXT, settings TEXT, versions TEXT, summary TEXT,
    status TEXT, error TEXT);  -- running, finished or failed (with its one-line error)
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER, mtime_ns INTEGER,
    sha256 TEXT, width INTEGER, height INTEGER,
    seen_run INTEGER);  -- the last finished run that found this file
CREATE TABLE IF NOT EXISTS results (
    image_id INTEGER NOT NULL REFERENCES images(id), pipeline_key TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, n_faces INTEGER, run_id INTEGER,
    PRIMARY KEY (image_id, pipeline_key));
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id),
    pipeline_key TEXT NOT NULL, model TEXT NOT NULL, face_index INTEGER NOT NULL,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL, prob REAL, landmarks BLOB, embedding BLOB NOT NULL,
    UNIQUE (image_id, pipeline_key, face_index));
CREATE INDEX IF NOT EXISTS faces_key ON faces (pipeline_key, image_id);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pipeline_key TEXT NOT NULL, name TEXT);
CREATE TABLE IF NOT EXISTS face_people (
    face_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id),
    pinned INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS face_people_person ON face_people (person_id);
-- a face recomputed (changed photo, other settings) is a new face: its person goes with it
CREATE TRIGGER IF NOT EXISTS face_gone AFTER DELETE ON faces BEGIN
    DELETE FROM face_people WHERE face_id = OLD.id; END;
CREATE INDEX IF NOT EXISTS images_sha256 ON images (sha256);
-- faces the user set aside (strangers, false detections): in no person; person_id is the
-- person each was taken from, so that `unignore PERSON` can give them back
CREATE TABLE IF NOT EXISTS ignored_faces (
    face_id INTEGER PRIMARY KEY, person_id INTEGER);
CREATE TRIGGER IF NOT EXISTS face_gone_ignored AFTER DELETE ON faces BEGIN
    DELETE FROM ignored_faces WHERE face_id = OLD.id; END;
-- the review queue (review.py): questions settled (answered or skipped) never come back, and
-- each answer keeps what it changed, so that the last can be undone
CREATE TABLE IF NOT EXISTS review_settled (
    pipeline_key TEXT NOT NULL, question TEXT NOT NULL, answer TEXT, at REAL,
    PRIMARY KEY (pipeline_key, question));
CREATE TABLE IF NOT EXISTS review_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, pipeline_key TEXT NOT NULL, question TEXT NOT NULL,
    answer TEXT, before TEXT, at REAL);
-- questions whose answer was undone: asked first (the latest undone first) until answered
CREATE TABLE IF NOT EXISTS review_reopened (
    pipeline_key TEXT NOT NULL, question TEXT NOT NULL, at REAL,
    PRIMARY KEY (pipeline_key, question));
CREATE TABLE IF NOT EXISTS weights (  -- SHA-256 of weights files first used by this database
    filename TEXT PRIMARY KEY, sha256 TEXT NOT NULL, first_used REAL);
-- names from the photos' XMP face regions (xmp.py): per photo, what its sources were when read
-- (stamps: size and mtime of the photo and of each sidecar), and each region read then, with
-- the face it matched (NULL: none) and what became of it (named, agrees, unmatched, conflict,
-- ignored; note: why); a photo is read again only when a stamp changes
CREATE TABLE IF NOT EXISTS tag_sources (
    pipeline_key TEXT NOT NULL, image_id INTEGER NOT NULL, stamps TEXT NOT NULL,
    PRIMARY KEY (pipeline_key, image_id));
CREATE TABLE IF NOT EXISTS tag_regions (
    pipeline_key TEXT NOT NULL, image_id INTEGER NOT NULL, source TEXT NOT NULL,
    name TEXT NOT NULL, x REAL, y REAL, w REAL, h REAL, face_id INTEGER,
    outcome TEXT NOT NULL, note TEXT);
CREATE INDEX IF NOT EXISTS tag_regions_image ON tag_regions (pipeline_key, image_id);
"""
# Columns added since the first schema: (table, column, type, value for existing rows)
_ADDED = [("runs", "status", "TEXT", "CASE WHEN finished IS NULL THEN 'failed' ELSE 'finished' END"),
          ("runs", "error", "TEXT", "NULL"),
          ("images", "seen_run", "INTEGER", "(SELECT MAX(id) FROM runs WHERE status = 'finished')"),
          # quality.py's score; NULL until the next run computes it (readers compute it then)
          ("faces", "quality", "REAL", "NULL")]


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; where even SQLite's shared-memory file cannot be made (a WAL
    database on read-only media), the file is read as immutable, which nothing can change then."""
    from urllib.request import pathname2url

    uri = "file:" + pathname2url(str(path.absolute()))
    try:
        db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=60)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(uri + "?immutable=1", uri=True)


@dataclass
class ImageResult:
    """What the pipeline found in one image; `reason` set means skipped."""

    image_id: int
    width: int = 0
    height: int = 0
    sha256: str | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    reason: str | None = None


@dataclass
class FaceTable:
    """Faces of one pipeline key, row i of every array describing face i."""

    face_ids: np.ndarray
    paths: list[str]
    face_index: np.ndarray
    boxes: np.ndarray
    probs: np.ndarray
    embeddings: np.ndarray
    landmarks: np.ndarray  # [N, 5, 2]
    quality: np.ndarray  # [N] quality.py's score in [0, 1]; NaN where not computed yet

    def __len__(self) -> int:
        return len(self.face_ids)

    def check_embeddings(self, where: str | Path) -> None:
        """Refuse stored embeddings that damage has changed (a page that SQLite's own check
        passes can hold any bytes): every model's are finite and unit length. Raises
        errors.DatabaseDamaged naming the first bad face."""
        bad, what = _bad_embeddings(self.embeddings)
        if len(bad):
            i = bad[0]
            _refuse_embedding(where, int(self.face_ids[i]), self.paths[i], what[0], len(bad))


def _bad_embeddings(embeddings: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The rows of `embeddings` that are not finite and unit length (NaN and inf fail too), and
    what is wrong with the first."""
    norms = (np.linalg.norm(embeddings.astype(np.float64), axis=1) if len(embeddings)
             else np.zeros(0))
    bad = np.flatnonzero(~(np.abs(norms - 1) < 1e-2))
    if not len(bad):
        return bad, []
    i = bad[0]
    return bad, ["not finite" if not np.isfinite(embeddings[i]).all()
                 else f"length {norms[i]:.4g}, not 1"]


def _embedding_size(blob) -> int | None:
    """The bytes of a stored embedding, or None where they cannot be float32 values."""
    return len(blob) if isinstance(blob, bytes) and len(blob) and len(blob) % 4 == 0 else None


def _refuse_embedding(where: str | Path, face_id: int, path: str, what: str, n_bad: int) -> None:
    from .discover import display_path
    from .errors import DatabaseDamaged

    more = f", and {n_bad - 1} more face(s)" if n_bad > 1 else ""
    raise DatabaseDamaged(
        f"{where}: facedist.sqlite is damaged: the embedding of face {face_id} "
        f"({display_path(path)}) is {what}{more}; facedist leaves it as it is: "
        f"choose another --out (or move this folder away to start over)")


# The lock is an open-file-description lock (Linux's F_OFD_*): held by the open file like
# flock, so it ends with the process (even kill -9), and unlike flock it can be asked about
# without taking it (F_OFD_GETLK): the review page knows a run holds the folder without ever
# holding the run's lock itself. Where F_OFD_* is missing (not Linux), flock, and `holder`
# cannot ask.
_OFD = hasattr(fcntl, "F_OFD_SETLK")
_FLOCK_STRUCT = "hhqqi4x"  # struct flock: l_type, l_whence, l_start, l_len, l_pid (+ padding)


def _ofd(fd: int, command: int, kind: int) -> int:
    """One F_OFD_* call on the whole file; returns the lock type the kernel gives back."""
    import struct

    arg = struct.pack(_FLOCK_STRUCT, kind, os.SEEK_SET, 0, 0, 0)
    return struct.unpack(_FLOCK_STRUCT, fcntl.fcntl(fd, command, arg))[0]


class OutputLock:
    """The one writer of an output folder: an exclusive lock on OUT/facedist.lock, held until
    `release` or the end of a `with` block (or the process ends, even by kill -9). A second
    writer waits (`wait=True`) or gets errors.Busy naming the holder. `read_only_ok`: on a
    folder nobody can write (read-only media), no lock is needed, nor taken. `holder(out)`
    says who holds it, without taking it.

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> with OutputLock(out):
    ...     OutputLock(out)
    Traceback (most recent call last):
    ...
    facedist.errors.Busy: ...
    >>> OutputLock(out).release()
    """

    def __init__(self, out_dir: str | Path, wait: bool = False, what: str = "run",
                 read_only_ok: bool = False) -> None:
        from .errors import Busy

        path = Path(out_dir) / "facedist.lock"
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if read_only_ok and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                self._fd = None
                return
            raise
        try:
            if _OFD:
                _ofd(self._fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, fcntl.F_WRLCK)
            else:
                fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(self._fd)
                raise
            holder = _read_holder(self._fd)
            os.close(self._fd)
            raise Busy(f"{out_dir}: {holder} is writing this output folder; wait for it to end "
                       f"(or pass --wait), or choose another --out") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"facedist {what} (pid {os.getpid()})".encode(), 0)

    @staticmethod
    def holder(out_dir: str | Path) -> str | None:
        """Who writes the output folder now ("facedist run (pid 12)"), or None; never takes
        the lock, so a run starting at this instant is not refused."""
        try:
            fd = os.open(Path(out_dir) / "facedist.lock", os.O_RDONLY)
        except OSError:
            return None  # no lock file: nobody ever wrote here
        try:
            if not _OFD or _ofd(fd, fcntl.F_OFD_GETLK, fcntl.F_WRLCK) == fcntl.F_UNLCK:
                return None
            return _read_holder(fd)
        except OSError:
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"


# Fault injection for the tests only: name -> a function the write path calls at that point
# ("answer": between an answer's corrections and its log entry, inside their transaction).
fault_points: dict = {}


@contextmanager
def writing(out_dir: str | Path, what: str, wait: bool = False, create: bool = False,
            check: bool = True, verify=None) -> Iterator["FaceStore"]:
    """The one way to write an output folder: its lock (OutputLock), then one connection
    (FaceStore, checked first unless `check=False`), closed and unlocked at the end. Every
    write goes through `store.transaction()`: a correction, a review answer with its log
    entry, an undo, each in one; a run, one per chunk of photos. Tables written after a
    transaction (the CSVs) are written while the lock is still held, from what was committed.
    `create`: a run may start a new folder; everything else needs one. `verify`: called once
    the lock is held, before the connection opens (and so before a schema upgrade): checks
    that refuse the folder, read-only, so that a refused folder is left as it was."""
    lock = OutputLock(out_dir, wait=wait, what=what)
    try:
        if verify is not None:
            verify()
        store = FaceStore(out_dir, create=create, check=check)
        try:
            yield store
        finally:
            store.close()
    finally:
        lock.release()


class FaceStore:
    """The database of one output folder. `create=False` refuses a folder without one;
    `check=True` runs SQLite's quick_check first (every command does), so that a damaged
    database is reported, and left as it is, before anything is read or written. `readonly`
    (readers): opened read-only, nothing written, so that a finished output on read-only media
    (a mounted archive, a shared drive) can be read; an older schema is read as it is.
    Commands open a writer only through `writing` (the folder's lock first)."""

    def __init__(self, out_dir: str | Path, create: bool = True, check: bool = False,
                 readonly: bool = False) -> None:
        self.path = Path(out_dir) / DB_NAME
        if (not create or readonly) and not self.path.is_file():
            raise FileNotFoundError(f"{out_dir}: no facedist database here (run facedist run first)")
        self.readonly = readonly
        if readonly:
            self.db = _open_readonly(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60)
        # no implicit transactions: each one is opened, and committed whole, by `transaction`
        self.db.isolation_level = None
        try:
            if check:
                bad = [r[0] for r in self.db.execute("PRAGMA quick_check")]
                if bad != ["ok"]:
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {bad[0]}")
            if readonly:
                anchor_for_reading(self.db)
            else:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across kills
                self.db.executescript(SCHEMA)
                self._migrate()
            self.columns = {t: {r[1] for r in self.db.execute(f"PRAGMA table_info({t})")}
                            for t in ("faces", "ignored_faces", "review_settled", "review_reopened",
                                      "tag_regions")}
        except BaseException:
            self.db.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: everything in the block is committed together, or nothing is (an
        exception, Ctrl-C or kill -9 at any point leaves the database as before it). Inside
        another transaction, the block is part of that one. A writer's begins IMMEDIATE: it
        holds the database's write lock from the first statement, so what it read inside stays
        true until it commits."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN" if self.readonly else "BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back already (disk full)
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        for table, column, kind, value in _ADDED:
            if column not in {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}:
                with self.transaction():
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    self.db.execute(f"UPDATE {table} SET {column} = {value}")
        make_absolute(self.db)

    def close(self) -> None:
        self.db.close()

    # -- runs ---------------------------------------------------------------------------------
    def begin_run(self, pipeline_key: str, model: str, photos: str, settings: dict,
                  versions: dict) -> int:
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO runs (started, pipeline_key, model, photos, settings, versions, status)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running')",
                (time.time(), pipeline_key, model, to_db(photos), json.dumps(settings),
                 json.dumps(versions)))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, summary: dict, seen: list[str] | None = None,
                   error: str | None = None) -> None:
        """Record the run's end: finished, with the paths it found (`seen`: what readers will
        see), or failed with its one-line `error`."""
        with self.transaction():
            if error is None and seen is not None:
                self.db.executemany("UPDATE images SET seen_run = ? WHERE path = ?",
                                    ((run_id, to_db(p)) for p in seen))
            self.db.execute("UPDATE runs SET finished = ?, summary = ?, status = ?, error = ? "
                            "WHERE id = ?", (time.time(), json.dumps(summary),
                                             "failed" if error else "finished", error, run_id))

    def note_report(self, run_id: int, state: str) -> None:
        """Record in a run's summary whether its HTML report (OUT/report) is "incomplete" (being
        written, or interrupted) or "complete" (report/html.py)."""
        with self.transaction():
            row = self.db.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None:
                self.db.execute("UPDATE runs SET summary = ? WHERE id = ?",
                                (json.dumps({**json.loads(row[0] or "{}"), "report": state}), run_id))

    def mark_interrupted_runs(self) -> list[int]:
        """Record as failed ("interrupted") the runs still marked running, and return their ids.
        Only for a writer holding the output lock (OutputLock): no other process can then be
        writing, so such runs ended without a word (kill -9, a crash, power lost)."""
        with self.transaction():
            ids = [r[0] for r in self.db.execute("SELECT id FROM runs WHERE status = 'running' "
                                                 "ORDER BY id")]
            self.db.execute("UPDATE runs SET status = 'failed', error = ? WHERE status = 'running'",
                            ("interrupted (the process ended before the run finished)",))
        return ids

    def run_record(self, run_id: int) -> dict:
        """A run as recorded: times, model, photos folder, settings, versions, summary."""
        row = self.db.execute("SELECT started, finished, model, photos, settings, versions, summary,"
                              " status FROM runs WHERE id = ?", (run_id,)).fetchone()
        return {"id": run_id, "started": row[0], "finished": row[1], "model": row[2],
                "photos": from_db(row[3]), "settings": json.loads(row[4] or "{}"),
                "versions": json.loads(row[5] or "{}"), "summary": json.loads(row[6] or "{}"),
                "status": row[7]}

    def last_run(self) -> dict | None:
        """The last finished run: id, pipeline_key, model, settings."""
        row = self.db.execute("SELECT id, pipeline_key, model, settings FROM runs "
                              "WHERE status = 'finished' ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {"id": row[0], "pipeline_key": row[1], "model": row[2],
                "settings": json.loads(row[3])}

    def check_weights(self, filename: str, sha256: str, record: bool = True) -> None:
        """Refuse a weights file whose content differs from the one this database was made with
        (its embeddings would not compare); record it on first use (unless `record` is False:
        a check that writes nothing)."""
        from .errors import WeightsError

        row = self.db.execute("SELECT sha256 FROM weights WHERE filename = ?", (filename,)).fetchone()
        if row is None and record:
            with self.transaction():
                self.db.execute("INSERT INTO weights VALUES (?, ?, ?)", (filename, sha256, time.time()))
        elif row is not None and row[0] != sha256:
            raise WeightsError(f"{filename}: SHA-256 {sha256[:16]}… differs from the file this "
                               f"output was made with ({row[0][:16]}…): the file is damaged or "
                               f"another one; restore it, or choose another --out")

    # -- images -------------------------------------------------------------------------------
    def known_images(self, pipeline_key: str) -> dict[str, tuple[int, int, int, str | None, str | None]]:
        """path → (image_id, size, mtime_ns, sha256, result status or None) for this key."""
        rows = self.db.execute(
            "SELECT i.path, i.id, i.size, i.mtime_ns, i.sha256, r.status FROM images i "
            "LEFT JOIN results r ON r.image_id = i.id AND r.pipeline_key = ?", (pipeline_key,))
        return {from_db(r[0]): tuple(r[1:]) for r in rows}

    def image_id(self, path: str, size: int, mtime_ns: int) -> int:
        """The id of `path`, inserting it or recording its new size/mtime."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO images (path, size, mtime_ns) VALUES (?, ?, ?) ON CONFLICT(path) "
                "DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns",
                (to_db(path), size, mtime_ns))
        return int(self.db.execute("SELECT id FROM images WHERE path = ?", (to_db(path),)).fetchone()[0])

    def move_image(self, image_id: int, path: str, size: int, mtime_ns: int) -> None:
        """A photo that moved to `path` (same bytes): its record, faces and people go with it."""
        with self.transaction():
            self.db.execute("UPDATE images SET path = ?, size = ?, mtime_ns = ? WHERE id = ?",
                            (to_db(path), size, mtime_ns, image_id))

    def image_with_result(self, pipeline_key: str, sha256: str, prefer: int | None = None) -> int | None:
        """An image whose content is `sha256` and that has a result under `pipeline_key`
        (`prefer` itself when it qualifies), or None."""
        row = self.db.execute(
            "SELECT i.id FROM images i JOIN results r ON r.image_id = i.id AND r.pipeline_key = ? "
            "WHERE i.sha256 = ? ORDER BY i.id = ? DESC LIMIT 1", (pipeline_key, sha256, prefer)).fetchone()
        return None if row is None else int(row[0])

    # -- results ------------------------------------------------------------------------------
    def save_chunk(self, run_id: int, pipeline_key: str, model: str,
                   results: list[ImageResult]) -> None:
        """Write a chunk's results atomically: all of it lands, or none of it."""
        with self.transaction():
            for res in results:
                if res.sha256 is not None:
                    # New content invalidates what any pipeline found in the old content.
                    old = self.db.execute("SELECT sha256 FROM images WHERE id = ?",
                                          (res.image_id,)).fetchone()
                    if old and old[0] not in (None, res.sha256):
                        self.db.execute("DELETE FROM faces WHERE image_id = ?", (res.image_id,))
                        self.db.execute("DELETE FROM results WHERE image_id = ?", (res.image_id,))
                    self.db.execute("UPDATE images SET sha256 = ?, width = ?, height = ? "
                                    "WHERE id = ?", (res.sha256, res.width or None,
                                                     res.height or None, res.image_id))
                self.db.execute("DELETE FROM faces WHERE image_id = ? AND pipeline_key = ?",
                                (res.image_id, pipeline_key))
                status = "skipped" if res.reason else "done"
                self.db.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                    (res.image_id, pipeline_key, status, res.reason, len(res.probs), run_id))
                self.db.executemany(
                    "INSERT INTO faces (image_id, pipeline_key, model, face_index, x1, y1, x2, y2,"
                    " prob, landmarks, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(res.image_id, pipeline_key, model, i, *map(float, res.boxes[i]),
                      float(res.probs[i]), res.landmarks[i].astype(np.float32).tobytes(),
                      res.embeddings[i].astype(np.float32).tobytes())
                     for i in range(len(res.probs))])

    def copy_results(self, run_id: int, pipeline_key: str, copies: list[tuple[int, int]]) -> None:
        """Give each (image, original) pair's image the original's result and faces under
        `pipeline_key`: byte-identical files are detected and embedded once. One transaction."""
        with self.transaction():
            for image_id, original in copies:
                sha = self.db.execute("SELECT sha256, width, height FROM images WHERE id = ?",
                                      (original,)).fetchone()
                old = self.db.execute("SELECT sha256 FROM images WHERE id = ?", (image_id,)).fetchone()
                if old and old[0] not in (None, sha[0]):
                    self.db.execute("DELETE FROM faces WHERE image_id = ?", (image_id,))
                    self.db.execute("DELETE FROM results WHERE image_id = ?", (image_id,))
                self.db.execute("UPDATE images SET sha256 = ?, width = ?, height = ? WHERE id = ?",
                                (*sha, image_id))
                self.db.execute("DELETE FROM faces WHERE image_id = ? AND pipeline_key = ?",
                                (image_id, pipeline_key))
                self.db.execute(
                    "INSERT OR REPLACE INTO results SELECT ?, pipeline_key, status, reason, n_faces, ? "
                    "FROM results WHERE image_id = ? AND pipeline_key = ?",
                    (image_id, run_id, original, pipeline_key))
                self.db.execute(
                    "INSERT INTO faces (image_id, pipeline_key, model, face_index, x1, y1, x2, y2, prob,"
                    " landmarks, embedding) SELECT ?, pipeline_key, model, face_index, x1, y1, x2, y2,"
                    " prob, landmarks, embedding FROM faces WHERE image_id = ? AND pipeline_key = ?",
                    (image_id, original, pipeline_key))

    def skipped(self, pipeline_key: str, paths: set[str] | None = None,
                seen_run: int | None = None) -> list[tuple[str, str]]:
        """(path, reason) of the files skipped under `pipeline_key`: of `paths`, if given; with
        `seen_run`, those that finished run found."""
        rows = self.db.execute(
            "SELECT i.path, r.reason FROM results r JOIN images i ON i.id = r.image_id "
            "WHERE r.pipeline_key = ? AND r.status = 'skipped' "
            + ("AND i.seen_run = ? " if seen_run is not None else "") + "ORDER BY i.path",
            (pipeline_key,) + ((seen_run,) if seen_run is not None else ()))
        return [(from_db(p), r) for p, r in rows if paths is None or from_db(p) in paths]

    def faces(self, pipeline_key: str, paths: set[str] | None = None,
              upto_run: int | None = None) -> FaceTable:
        """All faces stored under `pipeline_key`, ordered by image path and face index: of the
        images in `paths`, if given; with `upto_run`, as that finished run left them (the files
        it found, results of it or earlier runs)."""
        visible = ("AND i.seen_run = ? AND EXISTS (SELECT 1 FROM results r WHERE r.image_id = "
                   "i.id AND r.pipeline_key = f.pipeline_key AND r.run_id <= ?) "
                   if upto_run is not None else "")
        cur = self.db.execute(
            "SELECT f.id, i.path, f.face_index, f.x1, f.y1, f.x2, f.y2, f.prob, f.embedding, "
            "f.landmarks, " + ("f.quality " if "quality" in self.columns["faces"] else "NULL ")
            + "FROM faces f JOIN images i ON i.id = f.image_id WHERE f.pipeline_key = ? " + visible
            + "ORDER BY i.path, f.face_index",
            (pipeline_key,) + ((upto_run, upto_run) if upto_run is not None else ()))
        # in batches into arrays: a million faces cost their arrays, not a million row tuples
        wanted, found = paths, []
        ids, index, boxes, probs, emb, marks, quality = [], [], [], [], [], [], []
        while rows := cur.fetchmany(50_000):
            rows = [(r[0], from_db(r[1]), *r[2:]) for r in rows]
            if wanted is not None:
                rows = [r for r in rows if r[1] in wanted]
            if not rows:
                continue
            ids.append(np.array([r[0] for r in rows], np.int64))
            found += [r[1] for r in rows]
            index.append(np.array([r[2] for r in rows], np.int64))
            boxes.append(np.array([r[3:7] for r in rows], np.float32))
            probs.append(np.array([r[7] for r in rows], np.float32))
            emb.append(np.frombuffer(b"".join(r[8] for r in rows), np.float32).reshape(len(rows), -1))
            marks.append(np.frombuffer(b"".join(r[9] for r in rows), np.float32).reshape(len(rows), 5, 2))
            quality.append(np.array([np.nan if r[10] is None else r[10] for r in rows], np.float32))
        if not ids:
            return FaceTable(np.zeros(0, np.int64), [], np.zeros(0, np.int64),
                             np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                             np.zeros((0, 0), np.float32), np.zeros((0, 5, 2), np.float32),
                             np.zeros(0, np.float32))
        return FaceTable(np.concatenate(ids), found, np.concatenate(index), np.concatenate(boxes),
                         np.concatenate(probs), np.concatenate(emb), np.concatenate(marks),
                         np.concatenate(quality))

    def check_embeddings(self, pipeline_key: str, where: str | Path) -> None:
        """FaceTable.check_embeddings on every face stored under `pipeline_key` (a run checks
        them before it writes anything): the embedding column alone, in batches, so that a
        million faces cost one batch's memory. A blob of a size no embedding has is damage too."""
        cur = self.db.execute("SELECT id, embedding FROM faces WHERE pipeline_key = ?",
                              (pipeline_key,))
        first, n_bad = None, 0  # the bad face of the lowest id: (id, its blob)
        while rows := cur.fetchmany(50_000):
            sizes = set(map(len, (blob for _, blob in rows)))
            if len(sizes) == 1 and all(type(blob) is bytes for _, blob in rows):
                by_size = {_embedding_size(rows[0][1]): rows}  # one model's: the usual batch
            else:
                by_size: dict[int | None, list[tuple[int, bytes]]] = {}
                for face_id, blob in rows:
                    by_size.setdefault(_embedding_size(blob), []).append((face_id, blob))
            for size, group in by_size.items():
                bad = (range(len(group)) if size is None else _bad_embeddings(np.frombuffer(
                    b"".join(blob for _, blob in group), np.float32).reshape(len(group), -1))[0])
                n_bad += len(bad)
                for i in bad:
                    if first is None or group[i][0] < first[0]:
                        first = group[i]
        if first is not None:
            face_id, blob = first
            what = ("not an embedding (cut or changed bytes)" if _embedding_size(blob) is None
                    else _bad_embeddings(np.frombuffer(blob, np.float32)[None])[1][0])
            path = self.db.execute("SELECT i.path FROM faces f JOIN images i ON i.id = f.image_id "
                                   "WHERE f.id = ?", (face_id,)).fetchone()
            _refuse_embedding(where, face_id, from_db(path[0]) if path else "?", what, n_bad)

    def set_quality(self, face_ids: np.ndarray, quality: np.ndarray) -> None:
        """Store each face's quality score (quality.py)."""
        with self.transaction():
            self.db.executemany("UPDATE faces SET quality = ? WHERE id = ?",
                                zip(map(float, quality), map(int, face_ids)))

    def image_records(self) -> dict[str, tuple[str | None, int, int]]:
        """path -> (content SHA-256, size in bytes, mtime_ns) as the last run saw each file."""
        rows = self.db.execute("SELECT path, sha256, size, mtime_ns FROM images")
        return {from_db(r[0]): (r[1], r[2], r[3]) for r in rows}

    def image_sizes(self) -> dict[str, tuple[int, int]]:
        """path -> (width, height) of every decoded image."""
        rows = self.db.execute("SELECT path, width, height FROM images WHERE width IS NOT NULL")
        return {from_db(r[0]): (r[1], r[2]) for r in rows}

    # -- people (people.py) ------------------------------------------------------------------
    def face_people(self, face_ids) -> dict[int, tuple[int, int]]:
        """face id -> (person id, pinned) for the faces of `face_ids` that have a person."""
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (id INTEGER PRIMARY KEY)")
        with self.transaction():
            self.db.execute("DELETE FROM wanted")
            self.db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)",
                                ((int(f),) for f in face_ids))
        rows = self.db.execute("SELECT fp.face_id, fp.person_id, fp.pinned FROM face_people fp "
                               "JOIN wanted w ON w.id = fp.face_id")
        return {r[0]: (r[1], r[2]) for r in rows}

    def ignored(self, key: str) -> set[int]:
        """The ids of the faces of `key` the user set aside (`ignore`)."""
        if not self.columns["ignored_faces"]:  # a database from before `ignore` (read-only)
            return set()
        return {r[0] for r in self.db.execute(
            "SELECT g.face_id FROM ignored_faces g JOIN faces f ON f.id = g.face_id "
            "WHERE f.pipeline_key = ?", (key,))}

    def ignore_faces(self, key: str, face_ids: list[int]) -> None:
        """Set faces aside: out of their person (kept in ignored_faces for `unignore`); an
        unnamed person left empty goes."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO ignored_faces SELECT ?, (SELECT person_id FROM face_people "
                "WHERE face_id = ?)", ((f, f) for f in face_ids))
            self.db.executemany("DELETE FROM face_people WHERE face_id = ?", ((f,) for f in face_ids))
            self._drop_empty_people(key)

    def unignore_faces(self, face_ids: list[int]) -> None:
        """Give ignored faces back, each to the person it was taken from where that person still
        exists; the others have no person until the next run places them."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO face_people (face_id, person_id) SELECT g.face_id, "
                "g.person_id FROM ignored_faces g JOIN people p ON p.id = g.person_id "
                "WHERE g.face_id = ?", ((f,) for f in face_ids))
            self.db.executemany("DELETE FROM ignored_faces WHERE face_id = ?", ((f,) for f in face_ids))

    def faces_of_key(self, key: str, face_ids: list[int]) -> list[int]:
        """Those of `face_ids` that are faces of `key`."""
        return [f for f in face_ids if self.db.execute(
            "SELECT 1 FROM faces WHERE id = ? AND pipeline_key = ?", (f, key)).fetchone()]

    def faces_of_person(self, person: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT face_id FROM face_people WHERE person_id = ?",
                                              (person,))]

    def ensure_person(self, key: str, person: int) -> None:
        """Person `person` exists (brought back, unnamed, under its own id if it had gone)."""
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO people (id, pipeline_key) VALUES (?, ?)",
                            (person, key))

    def ignored_of_person(self, person: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT face_id FROM ignored_faces WHERE person_id = ?",
                                              (person,))]

    def unplace(self, key: str, face_ids: list[int]) -> None:
        """Faces that have no person any more (unclear now): their rows go, pins with them."""
        with self.transaction():
            self.db.executemany("DELETE FROM face_people WHERE face_id = ?", ((f,) for f in face_ids))
            self._drop_empty_people(key)

    def _drop_empty_people(self, key: str) -> None:
        self.db.execute("DELETE FROM people WHERE pipeline_key = ? AND name IS NULL AND id NOT "
                        "IN (SELECT person_id FROM face_people)", (key,))

    def carry_people(self, old_key: str, new_key: str) -> int:
        """The people of `old_key` become `new_key`'s (one transaction): same ids and names,
        each face's person, pin and `ignore` moved to the face of `new_key` found at the same
        place (same photo, same detection index); review questions settled stay settled.
        What has no such face is dropped, and so is the undo history (its snapshots name the
        old faces). Returns how many faces were carried."""
        with self.transaction():
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS carried (old INTEGER PRIMARY KEY, new)")
            self.db.execute("DELETE FROM carried")
            self.db.execute("INSERT INTO carried SELECT o.id, n.id FROM faces o JOIN faces n ON "
                            "n.image_id = o.image_id AND n.face_index = o.face_index AND "
                            "n.pipeline_key = ? WHERE o.pipeline_key = ?", (new_key, old_key))
            for table in ("face_people", "ignored_faces"):
                self.db.execute(f"DELETE FROM {table} WHERE face_id IN (SELECT f.id FROM faces f "
                                f"WHERE f.pipeline_key = ?) AND face_id NOT IN "
                                f"(SELECT old FROM carried)", (old_key,))
                self.db.execute(f"UPDATE {table} SET face_id = (SELECT new FROM carried WHERE "
                                f"old = face_id) WHERE face_id IN (SELECT old FROM carried)")
            self.db.execute("UPDATE people SET pipeline_key = ? WHERE pipeline_key = ?",
                            (new_key, old_key))
            settled = self.db.execute("SELECT question, answer, at FROM review_settled WHERE "
                                      "pipeline_key = ?", (old_key,)).fetchall()
            faces = dict(self.db.execute("SELECT old, new FROM carried").fetchall())
            for question, answer, at in settled:
                kind, _, rest = question.partition(":")
                if kind == "face":  # face:F:P names a face: the carried one, or none
                    f, _, p = rest.partition(":")
                    if int(f) not in faces:
                        continue
                    question = f"face:{faces[int(f)]}:{p}"
                self.db.execute("INSERT OR REPLACE INTO review_settled VALUES (?, ?, ?, ?)",
                                (new_key, question, answer, at))
            self.db.execute("DELETE FROM review_settled WHERE pipeline_key = ?", (old_key,))
            self.db.execute("DELETE FROM review_log WHERE pipeline_key = ?", (old_key,))
            self.db.execute("DELETE FROM review_reopened WHERE pipeline_key = ?", (old_key,))
            return len(faces)

    def has_people(self, key: str) -> bool:
        """Whether any face of `key` has a person yet (else a run clusters them all)."""
        return self.db.execute("SELECT 1 FROM people WHERE pipeline_key = ? LIMIT 1",
                               (key,)).fetchone() is not None

    def new_person(self, key: str) -> int:
        with self.transaction():
            return int(self.db.execute("INSERT INTO people (pipeline_key) VALUES (?)",
                                       (key,)).lastrowid)

    def set_people(self, key: str, assignments: list[tuple[int, int]]) -> None:
        """Store (face id, person id) pairs, keeping pins; drop unnamed people left empty."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO face_people (face_id, person_id) VALUES (?, ?) ON CONFLICT(face_id) "
                "DO UPDATE SET person_id = excluded.person_id", assignments)
            self._drop_empty_people(key)

    def people(self, key: str, seen_run: int | None = None) -> list[tuple[int, str | None, int, int]]:
        """(id, name, faces, photos) of every person of `key` with faces; with `seen_run`, only
        the faces of the photos that finished run found (moved and deleted photos' old records
        count no more), and only people who have any."""
        current = ("JOIN images i ON i.id = f.image_id AND i.seen_run = ? "
                   if seen_run is not None else "")
        return self.db.execute(
            "SELECT p.id, p.name, COUNT(f.id), COUNT(DISTINCT f.image_id) FROM people p "
            "JOIN face_people fp ON fp.person_id = p.id JOIN faces f ON f.id = fp.face_id "
            + current + "WHERE p.pipeline_key = ? GROUP BY p.id",
            ((seen_run,) if seen_run is not None else ()) + (key,)).fetchall()

    def person_names(self, key: str) -> dict[int, str]:
        return dict(self.db.execute("SELECT id, name FROM people WHERE pipeline_key = ? AND name "
                                    "IS NOT NULL", (key,)).fetchall())

    def person_exists(self, key: str, person: int) -> bool:
        return self.db.execute("SELECT 1 FROM people WHERE id = ? AND pipeline_key = ?",
                               (person, key)).fetchone() is not None

    def name_person(self, person: int, name: str | None) -> None:
        with self.transaction():
            self.db.execute("UPDATE people SET name = ? WHERE id = ?", (name, person))

    def pin_people(self, people: list[int]) -> None:
        with self.transaction():
            self.db.executemany("UPDATE face_people SET pinned = 1 WHERE person_id = ?",
                                [(p,) for p in people])

    def merge_people(self, into: int, other: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE face_people SET person_id = ?, pinned = 1 WHERE person_id IN "
                            "(?, ?)", (into, into, other))
            name = self.db.execute("SELECT name FROM people WHERE id = ?", (other,)).fetchone()[0]
            self.db.execute("UPDATE people SET name = COALESCE(name, ?) WHERE id = ?", (name, into))
            self.db.execute("DELETE FROM people WHERE id = ?", (other,))

    def move_face(self, key: str, face_id: int, person: int | None) -> int:
        """Put a face in `person` (None: a new one), pinned; the person it leaves is pinned too.
        An unclear face (no person yet) can be placed so; an ignored one is given back first."""
        if self.db.execute("SELECT 1 FROM faces WHERE id = ? AND pipeline_key = ?",
                           (face_id, key)).fetchone() is None:
            raise ValueError(f"no face {face_id} (see faces.csv)")
        row = self.db.execute("SELECT person_id FROM face_people WHERE face_id = ?",
                              (face_id,)).fetchone()
        if person is None:
            person = self.new_person(key)
        with self.transaction():
            if row is not None:
                self.db.execute("UPDATE face_people SET pinned = 1 WHERE person_id = ?", (row[0],))
            self.db.execute("DELETE FROM ignored_faces WHERE face_id = ?", (face_id,))
            self.db.execute("INSERT INTO face_people (face_id, person_id, pinned) VALUES (?, ?, 1) "
                            "ON CONFLICT(face_id) DO UPDATE SET person_id = excluded.person_id, "
                            "pinned = 1", (face_id, person))
            self._drop_empty_people(key)
        return person

    # -- review (review.py) ---------------------------------------------------------------
    def _has_review(self) -> bool:
        if not self.columns["review_settled"]:  # made since by a writer, perhaps
            self.columns["review_settled"] = {r[1] for r in self.db.execute(
                "PRAGMA table_info(review_settled)")}
        return bool(self.columns["review_settled"])

    def settled(self, key: str) -> set[str]:
        """The ids of the review questions settled (answered or skipped) under `key`."""
        if not self._has_review():  # a database from before review (read-only)
            return set()
        return {r[0] for r in self.db.execute(
            "SELECT question FROM review_settled WHERE pipeline_key = ?", (key,))}

    def reopened(self, key: str) -> list[str]:
        """The questions whose answer was undone and that are not answered since, the latest
        undone first."""
        if not self.columns["review_reopened"]:
            self.columns["review_reopened"] = {r[1] for r in self.db.execute(
                "PRAGMA table_info(review_reopened)")}
            if not self.columns["review_reopened"]:  # a database from before (read-only)
                return []
        return [r[0] for r in self.db.execute(
            "SELECT question FROM review_reopened WHERE pipeline_key = ? ORDER BY at DESC, "
            "rowid DESC", (key,))]

    def answers(self, key: str) -> int:
        """How many review answers are kept (the ones undo can take back)."""
        if not self._has_review():
            return 0
        return self.db.execute("SELECT COUNT(*) FROM review_log WHERE pipeline_key = ?",
                               (key,)).fetchone()[0]

    def image_sizes(self) -> dict[str, tuple[int, int]]:
        """path -> (width, height) of every photo decoded so far."""
        return {p: (w, h) for p, w, h in self.db.execute(
            "SELECT path, width, height FROM images WHERE width IS NOT NULL")}

    def people_snapshot(self, key: str, people: list[int], faces: list[int]) -> dict:
        """What an answer may change: the rows of `people` (names), and the person, pin and
        ignored state of their faces and of `faces`."""
        fs = set(int(f) for f in faces)
        people = {int(p) for p in people if p is not None and p >= 0}
        q = ",".join("?" * len(fs))
        if fs:  # the people the faces are in now (a move pins the rest of the one it leaves)
            people.update(r[0] for r in self.db.execute(
                f"SELECT person_id FROM face_people WHERE face_id IN ({q}) UNION SELECT "
                f"person_id FROM ignored_faces WHERE face_id IN ({q}) AND person_id IS NOT NULL",
                [*fs, *fs]))
        people = sorted(people)
        for p in people:
            fs.update(self.faces_of_person(p))
            fs.update(self.ignored_of_person(p))
        q = ",".join("?" * len(fs))
        rows = self.db.execute(f"SELECT face_id, person_id, pinned FROM face_people WHERE face_id IN ({q})",
                               list(fs)).fetchall() if fs else []
        ign = self.db.execute(f"SELECT face_id, person_id FROM ignored_faces WHERE face_id IN ({q})",
                              list(fs)).fetchall() if fs else []
        named = [list(r) for r in self.db.execute(
            f"SELECT id, name FROM people WHERE pipeline_key = ? AND id IN ({','.join('?' * len(people))})",
            [key, *people])] if people else []
        return {"people": named, "faces": sorted(fs), "face_people": [list(r) for r in rows],
                "ignored": [list(r) for r in ign]}

    def restore_people(self, key: str, snap: dict) -> None:
        """Put back what people_snapshot saw (one transaction)."""
        fs = list(snap["faces"])
        with self.transaction():
            for pid, name in snap["people"]:
                self.db.execute("INSERT OR IGNORE INTO people (id, pipeline_key) VALUES (?, ?)",
                                (pid, key))
                self.db.execute("UPDATE people SET name = ? WHERE id = ?", (name, pid))
            self.db.executemany("DELETE FROM face_people WHERE face_id = ?", ((f,) for f in fs))
            self.db.executemany("DELETE FROM ignored_faces WHERE face_id = ?", ((f,) for f in fs))
            self.db.executemany("INSERT INTO face_people (face_id, person_id, pinned) VALUES (?, ?, ?)",
                                snap["face_people"])
            self.db.executemany("INSERT INTO ignored_faces (face_id, person_id) VALUES (?, ?)",
                                snap["ignored"])
            self._drop_empty_people(key)

    def settle(self, key: str, question: str, answer: str) -> None:
        """Settle `question` for good (a correction made outside the review that answers it,
        such as `people apart`): never asked again, and nothing for undo to take back."""
        with self.transaction():
            self._settled_row(key, question, answer)

    def _settled_row(self, key: str, question: str, answer: str) -> None:
        """The row that settles `question` (inside the caller's transaction)."""
        self.db.execute("INSERT OR REPLACE INTO review_settled VALUES (?, ?, ?, ?)",
                        (key, question, answer, time.time()))
        self.db.execute("DELETE FROM review_reopened WHERE pipeline_key = ? AND question = ?",
                        (key, question))

    def log_answer(self, key: str, question: str, answer: str, before: dict) -> None:
        """Settle `question` with `answer`, keeping `before` (people_snapshot) for undo."""
        with self.transaction():
            self._settled_row(key, question, answer)
            self.db.execute("INSERT INTO review_log (pipeline_key, question, answer, before, at) "
                            "VALUES (?, ?, ?, ?, ?)", (key, question, answer, json.dumps(before),
                                                       time.time()))

    def undo_answer(self, key: str) -> tuple[str, str] | None:
        """Take back the last answer: its people as they were, its question open again.
        Returns (question, answer), or None when there is none."""
        with self.transaction():
            row = self.db.execute("SELECT seq, question, answer, before FROM review_log WHERE "
                                  "pipeline_key = ? ORDER BY seq DESC LIMIT 1", (key,)).fetchone()
            if row is None:
                return None
            self.restore_people(key, json.loads(row[3]))
            self.db.execute("DELETE FROM review_settled WHERE pipeline_key = ? AND question = ?",
                            (key, row[1]))
            self.db.execute("DELETE FROM review_log WHERE seq = ?", (row[0],))
            self.db.execute("INSERT OR REPLACE INTO review_reopened VALUES (?, ?, ?)",
                            (key, row[1], time.time()))
        return row[1], row[2]

    # -- names from XMP face regions (xmp.py) ----------------------------------------------
    def tag_stamps(self, key: str) -> dict[int, str]:
        """image id -> the stamps of its XMP sources when they were last read."""
        if not self.columns["tag_regions"]:  # a database from before tags (read-only)
            return {}
        return dict(self.db.execute("SELECT image_id, stamps FROM tag_sources WHERE "
                                    "pipeline_key = ?", (key,)).fetchall())

    def set_tag_regions(self, key: str, image_id: int, stamps: str, rows: list[tuple]) -> None:
        """What a photo's XMP held, read now: its stamps, and its regions (source, name, x, y,
        w, h, face id, outcome, note), replacing those read before."""
        with self.transaction():
            self.db.execute("INSERT INTO tag_sources VALUES (?, ?, ?) ON CONFLICT(pipeline_key, "
                            "image_id) DO UPDATE SET stamps = excluded.stamps",
                            (key, image_id, stamps))
            self.db.execute("DELETE FROM tag_regions WHERE pipeline_key = ? AND image_id = ?",
                            (key, image_id))
            self.db.executemany("INSERT INTO tag_regions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                [(key, image_id, *r) for r in rows])

    def tag_regions(self, key: str, seen_run: int | None = None) -> list[tuple]:
        """(path, source, name, x, y, w, h, face id, person id, outcome, note) of every region
        read, conflicts first, then by path; with `seen_run`, of the photos that run found."""
        if not self.columns["tag_regions"]:
            return []
        rows = self.db.execute(
            "SELECT i.path, t.source, t.name, t.x, t.y, t.w, t.h, t.face_id, fp.person_id, "
            "t.outcome, t.note FROM tag_regions t JOIN images i ON i.id = t.image_id "
            "LEFT JOIN face_people fp ON fp.face_id = t.face_id WHERE t.pipeline_key = ? "
            + ("AND i.seen_run = ? " if seen_run is not None else "")
            + "ORDER BY t.outcome NOT IN ('conflict', 'apart'), i.path, t.source, t.rowid",
            (key,) + ((seen_run,) if seen_run is not None else ()))
        return [(from_db(r[0]), *r[1:]) for r in rows]
