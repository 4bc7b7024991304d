"""errors.py: each fault its exit code; a bug met in the database is never called damage."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from conftest import facedist_main, tree_state
from facedist.errors import Busy, DatabaseDamaged, InternalError, OutputError, explain

# what facedist's own queries raise when facedist has a bug (the database itself is sound)
BUGS = {
    "unique": sqlite3.IntegrityError("UNIQUE constraint failed: faces.image_id"),
    "column": sqlite3.OperationalError("no such column: y"),
    "variables": sqlite3.OperationalError("too many SQL variables"),
    "bindings": sqlite3.ProgrammingError("Incorrect number of bindings supplied. The current "
                                         "statement uses 1, and there are 2 supplied."),
    "full-named-column": sqlite3.OperationalError("no such column: fullname"),
}


def _raised_by_sqlite(make) -> sqlite3.Error:
    """The error SQLite itself raises (with its result code, on Python >= 3.11)."""
    try:
        make()
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("no error raised")


def _real_bugs() -> dict[str, sqlite3.Error]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x UNIQUE, fullname)")
    db.execute("INSERT INTO t VALUES (1, 'a')")
    return {"unique": _raised_by_sqlite(lambda: db.execute("INSERT INTO t VALUES (1, 'b')")),
            "column": _raised_by_sqlite(lambda: db.execute("SELECT y FROM t")),
            "bindings": _raised_by_sqlite(lambda: db.execute("SELECT ?", (1, 2))),
            # "full" in the text, a bug all the same: SQLite's code says which
            "full-in-text": _raised_by_sqlite(lambda: db.execute("SELECT nofull FROM t"))}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_a_bug_met_in_the_database_is_exit_1_not_damage(name):
    fault = explain(BUGS[name], "OUT")
    assert isinstance(fault, InternalError) and fault.exit_code == 1
    line = str(fault)
    assert "damaged" not in line and "another --out" not in line and "move" not in line
    assert "bug" in line and "-v" in line and "report" in line and "\n" not in line


@pytest.mark.parametrize("name", sorted(_real_bugs()))
def test_a_bug_sqlite_raised_is_exit_1_by_its_code(name):
    fault = explain(_real_bugs()[name], "OUT")
    assert isinstance(fault, InternalError) and fault.exit_code == 1, fault
    assert "damaged" not in str(fault)


def _garbage_database(path: Path) -> sqlite3.Error:
    path.write_bytes(b"this is no database, only some bytes " * 200)
    db = sqlite3.connect(path)
    try:
        return _raised_by_sqlite(lambda: db.execute("SELECT * FROM sqlite_master").fetchall())
    finally:
        db.close()


def _malformed_database(path: Path) -> sqlite3.Error:
    """A database whose table page is overwritten: SQLite reads it and finds it malformed."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    with db:
        db.executemany("INSERT INTO t VALUES (?)", ((os.urandom(100),) for _ in range(200)))
    page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    data[(page - 1) * size:page * size] = b"\xa5" * size
    path.write_bytes(bytes(data))
    db = sqlite3.connect(path)
    try:
        return _raised_by_sqlite(lambda: db.execute("SELECT COUNT(*) FROM t").fetchall())
    finally:
        db.close()


@pytest.mark.parametrize("make", [_garbage_database, _malformed_database])
def test_real_damage_is_exit_5_naming_the_file(tmp_path, make):
    exc = make(tmp_path / "facedist.sqlite")
    fault = explain(exc, "OUT")
    assert isinstance(fault, DatabaseDamaged) and fault.exit_code == 5, (exc, fault)
    assert "facedist.sqlite is damaged" in str(fault) and str(fault).startswith("OUT: ")


@pytest.mark.parametrize("exc", [
    sqlite3.DatabaseError("database disk image is malformed: *** in database main ***"),  # quick_check's
    sqlite3.DatabaseError("file is not a database"),
    sqlite3.DatabaseError("file is encrypted or is not a database")])
def test_damage_told_by_its_text_is_exit_5(exc):
    assert isinstance(explain(exc, "OUT"), DatabaseDamaged)


@pytest.mark.parametrize("exc,kind", [
    (sqlite3.OperationalError("database or disk is full"), OutputError),
    (sqlite3.OperationalError("attempt to write a readonly database"), OutputError),
    (sqlite3.OperationalError("unable to open database file"), OutputError),
    (sqlite3.OperationalError("database is locked"), Busy)])
def test_the_known_database_faults_keep_their_codes(exc, kind):
    assert type(explain(exc, "OUT")) is kind


def _files(root: Path) -> dict:
    """Every file under `root` as tree_state has it, but SQLite's -wal and -shm side files, which
    a reader may make (an empty WAL: nothing written)."""
    state = tree_state(root)
    for path in [p for p in state if p.endswith(("-wal", "-shm"))]:
        if path.endswith("-wal"):
            assert state[path][0] == 0, f"{path}: written"
        del state[path]
    return state


def _a_bug_in(monkeypatch, method: str) -> None:
    """FaceStore.`method` raises what a wrong query of facedist's own would."""
    from facedist.store import FaceStore

    def broken(self, *args, **kwargs):
        raise sqlite3.IntegrityError("UNIQUE constraint failed: faces.image_id")
    monkeypatch.setattr(FaceStore, method, broken)


# the commands, and a FaceStore method each reads through: on opening the output (last_run),
# reading the faces, and listing the people (outside errors.explained: the command line's own
# handler tells it)
@pytest.mark.parametrize("command,method", [("export", "faces"), ("lookalikes", "last_run"),
                                            ("people", "people")])
def test_the_command_line_says_bug_in_one_line_and_leaves_the_folder(tmp_path, monkeypatch,
                                                                      command, method):
    from synthetic import synthetic_output

    out = tmp_path / "out"
    synthetic_output(out, tmp_path / "photos", n_photos=3, faces_per_photo=2, n_people=3)
    _a_bug_in(monkeypatch, method)
    argv = {"export": ["export", "--db", out], "people": ["people", out],
            "lookalikes": ["lookalikes", out]}[command]
    before = _files(tmp_path)
    code, _, err = facedist_main(*argv)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert "internal error" in lines[0] and "bug" in lines[0] and "damaged" not in lines[0]
    assert "IntegrityError" in lines[0]
    assert _files(tmp_path) == before


def test_verbose_prints_the_bugs_traceback(tmp_path, monkeypatch):
    from synthetic import synthetic_output

    out = tmp_path / "out"
    synthetic_output(out, tmp_path / "photos", n_photos=2, faces_per_photo=2, n_people=2)
    _a_bug_in(monkeypatch, "faces")
    code, _, err = facedist_main("export", "--db", out, "-v")
    assert code == 1
    assert "Traceback" in err and 'raise sqlite3.IntegrityError("UNIQUE' in err, err
    assert err.strip().splitlines()[-1].startswith("facedist: ")
