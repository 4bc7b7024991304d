"""photo_paths: how an output folder's database stores the paths of its photos.

A path is stored losslessly: as text when it is valid UTF-8, else as its raw bytes (file names
from other systems); `from_db` gives back the str Python's os functions use. It is absolute
(discover.photo_root), so that any working directory, `near`, the report and the review page find
the photo. Outputs made before stored paths as typed, relative to where the run started; each
run row holds its PHOTOS both as typed (settings) and resolved (photos), so such a path under
the typed root is the resolved root joined with the rest. A writer rewrites them once
(`make_absolute`, when it opens the database); a reader, which writes nothing, sees them so
(`anchor_for_reading`).
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import PurePath

# SQL: the stored path does not start with "/" (hex, so that text and bytes compare alike)
_RELATIVE = "hex(substr(path, 1, 1)) != '2F'"


def to_db(path: str) -> str | bytes:
    """A path as stored: text if it is valid UTF-8, else its bytes (lossless either way)."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _relative_roots(db: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    """run id -> (PHOTOS as typed, resolved) of the runs whose PHOTOS was typed relative,
    latest first."""
    roots = {}
    for run_id, photos, settings in db.execute(
            "SELECT id, photos, settings FROM runs ORDER BY id DESC"):
        try:
            typed = json.loads(settings or "{}").get("photos")
        except (ValueError, AttributeError):
            continue
        if typed and photos and not os.path.isabs(typed):
            roots[run_id] = (typed, from_db(photos))
    return roots


def anchored(path: str, seen_run: int | None, roots: dict[int, tuple[str, str]]) -> str | None:
    """`path` as absolute: under the typed root of the run that last found it (`seen_run`),
    else of the latest run whose typed root holds it; None when none does."""
    if os.path.isabs(path):
        return path
    order = ([roots[seen_run]] if seen_run in roots else []) + list(roots.values())
    for typed, absolute in order:
        try:
            rest = PurePath(path).relative_to(typed)
        except ValueError:
            continue
        return os.path.join(absolute, rest) if rest.parts else absolute
    return None


def _seen_column(db: sqlite3.Connection) -> str:
    columns = {r[1] for r in db.execute("PRAGMA main.table_info(images)")}
    return "seen_run" if "seen_run" in columns else "NULL"


def make_absolute(db: sqlite3.Connection) -> int:
    """Rewrite the relative paths of an older output as absolute, in one transaction (for a
    writer, on opening). Where the absolute path is stored already (the same photos run under
    another spelling of PHOTOS), the row with results stays, else the one found last, and the
    other goes with its faces. Image ids are kept, so faces keep their ids, people, names and
    pins. Returns how many paths changed."""
    rows = db.execute(f"SELECT id, path, {_seen_column(db)} FROM images WHERE {_RELATIVE}").fetchall()
    roots = _relative_roots(db) if rows else {}
    if not roots:
        return 0
    changed = 0
    with db:
        for image_id, stored, seen in rows:
            path = anchored(from_db(stored), seen, roots)
            if path is None:
                continue  # under no run's PHOTOS: left as it is
            clash = db.execute("SELECT id FROM images WHERE path = ?", (to_db(path),)).fetchone()
            if clash is not None and _keeps(db, clash[0], image_id):
                _drop_image(db, image_id)
                continue
            if clash is not None:
                _drop_image(db, clash[0])
            db.execute("UPDATE images SET path = ? WHERE id = ?", (to_db(path), image_id))
            changed += 1
    return changed


def _keeps(db: sqlite3.Connection, a: int, b: int) -> bool:
    """Whether image `a` rather than `b` keeps the path both are: results first, then the one
    a later run found (`a` on a tie)."""
    def rank(image_id: int) -> tuple[int, int]:
        has = db.execute("SELECT COUNT(*) FROM results WHERE image_id = ?", (image_id,)).fetchone()[0]
        seen = db.execute(f"SELECT {_seen_column(db)} FROM images WHERE id = ?",
                          (image_id,)).fetchone()[0]
        return int(has > 0), seen or 0

    return rank(a) >= rank(b)


def _drop_image(db: sqlite3.Connection, image_id: int) -> None:
    """An image row and what hangs on it (its faces' people and ignores go by trigger)."""
    db.execute("DELETE FROM faces WHERE image_id = ?", (image_id,))
    db.execute("DELETE FROM results WHERE image_id = ?", (image_id,))
    db.execute("DELETE FROM images WHERE id = ?", (image_id,))


def anchor_for_reading(db: sqlite3.Connection) -> None:
    """On a read-only connection to an older output, every query sees `images` with absolute
    paths: a temporary view of that name (SQLite looks in temp first) over main.images."""
    if db.execute(f"SELECT 1 FROM main.images WHERE {_RELATIVE} LIMIT 1").fetchone() is None:
        return
    roots = _relative_roots(db)
    if not roots:
        return

    def absolute(stored, seen):
        path = from_db(stored)
        return to_db(anchored(path, seen, roots) or path)

    db.create_function("facedist_absolute", 2, absolute, deterministic=True)
    columns = [r[1] for r in db.execute("PRAGMA main.table_info(images)")]
    select = ", ".join(f"facedist_absolute(path, {_seen_column(db)}) AS path" if c == "path"
                       else c for c in columns)
    db.execute(f"CREATE TEMP VIEW images AS SELECT {select} FROM main.images")
