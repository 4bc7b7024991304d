"""What the command line says, and how it shows what users typed: ids no id can be, names that
hold control characters or go on for a megabyte, the truth after `unignore`, the folder a
`--dest` failure names, `-q`. Each case checks the exit code, one line on stderr, and that
nothing changed. On a generated output (tests/synthetic.py): no model, seconds."""
from __future__ import annotations

import csv
import errno
import json
import pathlib
import sqlite3

import pytest

from conftest import facedist_main
from synthetic import review_output
from facedist.store import DB_NAME

HUGE = "99999999999999999999"  # over 2^63: no SQLite integer
# What a name must never bring raw to a terminal, a CSV or a page: ESC (an escape sequence
# that clears the screen), BEL, a newline, DEL, a C1 control (NEL), a bidi override, a line separator
HOSTILE_NAME = "Ana\x1b[2J\x07 B\u202eC\nD\x7fE\x85F\u2028G"
RAW = ["\x1b", "\x07", "\n", "\x7f", "\x85", "\u202e", "\u2028"]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def out(tmp_path):
    """A finished output of six unnamed people, three faces each (person ids 1-6)."""
    o = tmp_path / "out"
    made = review_output(o, tmp_path / "photos", pairs=3, faces=3)
    return o, made["people"]


def state(out: pathlib.Path) -> tuple:
    """The people as stored, and the tables that follow them."""
    db = sqlite3.connect(out / DB_NAME)
    try:
        people = db.execute("SELECT * FROM people ORDER BY id").fetchall()
        faces = db.execute("SELECT * FROM face_people ORDER BY face_id").fetchall()
        ignored = db.execute("SELECT * FROM ignored_faces ORDER BY face_id").fetchall()
    finally:
        db.close()
    return people, faces, ignored, *((out / n).read_bytes() for n in ("people.csv", "faces.csv"))


def no_raw_controls(text: str, where: str, lines: int | None = None) -> None:
    """No raw control in `text`; with `lines`, its newlines end that many lines (no more)."""
    raw = [c for c in RAW if c in text and c != "\n"]
    assert not raw, f"{where}: {raw} in {text[max(0, text.find(raw[0]) - 200):][:400]!r}"
    assert lines is None or text.count("\n") == lines, f"{where}: {text[:2000]!r}"


# -- ids -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [
    ["name", HUGE, "Ana"], ["merge", "1", HUGE], ["merge", HUGE, "1"], ["move", HUGE, "1"],
    ["move", "1", HUGE], ["apart", "1", HUGE], ["ignore", "face", HUGE],
    ["ignore", "person", HUGE], ["unignore", "person", HUGE],
    ["name", "-" + HUGE, "Ana"]])
def test_an_id_no_id_can_be_is_one_line_and_exit_2(out, values):
    o, _ = out
    before = state(o)
    code, text, err = facedist_main("people", o, *values)
    line = one_line(err)
    assert code == 2 and HUGE in line and "internal error" not in line, err
    assert text == "" and state(o) == before


def test_the_api_refuses_an_id_no_id_can_be_as_a_value_error(out):
    from facedist.api import open_db

    o, _ = out
    before = state(o)
    db = open_db(o)
    try:
        for call in (lambda: db.name_person(2 ** 64, "Ana"), lambda: db.merge_people(1, 2 ** 63),
                     lambda: db.move_face(2 ** 70, None), lambda: db.ignore_face(2 ** 63),
                     lambda: db.unignore_person(-2 ** 63 - 1), lambda: db.apart(1, 2 ** 64),
                     lambda: db.name_person(1.5, "Ana")):
            with pytest.raises(ValueError, match=r"no person|no face|not a person id"):
                call()
    finally:
        db.close()
    assert state(o) == before


# -- names -----------------------------------------------------------------------------------
def test_a_name_with_control_characters_is_stored_as_given_and_shown_escaped(out):
    o, people = out
    person = people[0]
    code, text, err = facedist_main("people", o, "name", person, HOSTILE_NAME)
    assert code == 0 and err == "", err
    no_raw_controls(text, "the message", lines=1)
    assert "\\x1b[2J\\x07" in text and "\\u202e" in text
    db = sqlite3.connect(o / DB_NAME)
    assert db.execute("SELECT name FROM people WHERE id = ?", (person,)).fetchone()[0] == \
        HOSTILE_NAME  # stored as given
    db.close()

    code, text, err = facedist_main("people", o)
    assert code == 0 and err == ""
    no_raw_controls(text, "people", lines=len(people) + 1)
    listed = {r["person"]: r["name"] for r in csv.DictReader(text.splitlines())}
    assert listed[str(person)] == "Ana\\x1b[2J\\x07 B\\u202eC\\x0aD\\x7fE\\x85F\\u2028G"
    code, text, err = facedist_main("people", o, "--json")
    no_raw_controls(text, "people --json")
    assert {p["person"]: p["name"] for p in json.loads(text)}[person] == listed[str(person)]
    for table in ("people.csv", "faces.csv"):
        content = (o / table).read_text(encoding="utf-8")
        no_raw_controls(content, table, lines=len(people) + 1 if table == "people.csv" else 19)
        assert listed[str(person)] in content, table

    # the review's suggestions name the named (people of 3 faces: past done, --all)
    code, text, err = facedist_main("people", o, "review", "-n", "50", "--all")
    assert code == 0 and err == ""
    no_raw_controls(text, "people review")
    assert listed[str(person)] in text

    code, text, err = facedist_main("report", o, "-q")
    assert code == 0, err
    pages = {p.name: p.read_text(encoding="utf-8") for p in (o / "report").rglob("*")
             if p.suffix in (".html", ".js")}
    for name, page in pages.items():
        no_raw_controls(page, name)
    assert listed[str(person)] in pages[f"person-{person}.html"]
    assert any(json.dumps(listed[str(person)]) in page for name, page in pages.items()
               if name.endswith(".js"))  # the page's data: JSON of the shown name


def test_an_answer_naming_someone_is_shown_escaped(out):
    o, people = out
    code, text, err = facedist_main("people", o, "review", "-n", "100", "--json", "--all")
    who = next(q["question"] for q in json.loads(text) if q["kind"] == "who")
    code, text, err = facedist_main("people", o, "answer", who, "name=" + HOSTILE_NAME)
    assert code == 0 and err == "", err
    no_raw_controls(text, "answer", lines=1)
    assert "\\x1b" in text
    code, text, err = facedist_main("people", o, "undo")
    assert code == 0 and err == "", err
    no_raw_controls(text, "undo", lines=1)


def test_a_megabyte_name_of_an_older_database_is_shown_cut(out):
    o, people = out
    db = sqlite3.connect(o / DB_NAME)
    with db:
        db.execute("UPDATE people SET name = ? WHERE id = ?", ("x" * 1_000_000, people[0]))
    db.close()
    code, text, err = facedist_main("people", o)
    assert code == 0 and len(text) < 2000 and "x" * 200 + "…" in text, err
    code, text, err = facedist_main("people", o, "name", people[1], "Bo")  # rewrites the CSVs
    assert code == 0, err
    assert (o / "people.csv").stat().st_size < 2000 and (o / "faces.csv").stat().st_size < 10_000
    code, text, err = facedist_main("report", o, "-q")
    assert code == 0, err
    size = sum(p.stat().st_size for p in (o / "report").rglob("*") if p.suffix in (".html", ".js"))
    assert size < 200_000


# -- what a message says -----------------------------------------------------------------------
def test_unignore_person_brings_the_person_back_under_its_own_id(out):
    o, people = out
    person = people[1]
    code, text, err = facedist_main("people", o, "ignore", "person", person)
    assert code == 0 and f"person {person} ignored (3 faces)" in text, err
    listed = facedist_main("people", o)[1]
    assert f"\n{person}," not in listed
    code, text, err = facedist_main("people", o, "unignore", "person", person)
    assert code == 0 and err == "" and f"person {person} unignored (3 faces)" in text, err
    listed = {r["person"]: r["faces"] for r in csv.DictReader(facedist_main("people", o)[1]
                                                             .splitlines())}
    assert listed[str(person)] == "3" and len(listed) == len(people)
    faces = [r for r in csv.DictReader(open(o / "faces.csv")) if r["person"] == str(person)]
    assert len(faces) == 3 and {r["status"] for r in faces} == {""}


@pytest.mark.parametrize("command", ["export", "report"])
def test_an_unwritable_dest_is_named_not_the_output_folder(tmp_path, out, monkeypatch, command):
    """The destination refuses to be made (no permission: the test runs as root, which writes
    through modes, so the refusal is the kernel's answer injected)."""
    o, _ = out
    dest = tmp_path / "elsewhere" / "dest"
    mkdir = pathlib.Path.mkdir

    def refused(self, *args, **kwargs):
        if self == dest or dest in self.parents or self in dest.parents and self != tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", refused)
    before = state(o)
    argv = ["export", "--db", o, "--dest", dest] if command == "export" else \
        ["report", o, "--dest", dest, "-q"]
    code, text, err = facedist_main(*argv)
    line = one_line(err)
    assert code == 4 and str(dest) in line and "--dest" in line, err
    assert f"{o}:" not in line and "--out" not in line, err
    assert state(o) == before and not (tmp_path / "elsewhere").exists()


@pytest.fixture
def quick_run(tmp_path, monkeypatch):
    """`facedist run` with the pipeline stood in for (its summary as a run of two photos would
    leave it, one skipped): what the command says, not what it computes."""
    from facedist import pipeline

    def run(settings):
        settings.out.mkdir(parents=True, exist_ok=True)
        return pipeline.RunSummary(out=settings.out, images=2, processed=2, faces=3, people=2,
                                   skipped={"empty file": 1}, total_seconds=1.0)

    monkeypatch.setattr(pipeline, "run", run)
    photos = tmp_path / "photos"
    photos.mkdir()
    return lambda *flags: facedist_main("run", photos, "--out", tmp_path / "o", *flags)


def test_q_leaves_only_errors_and_the_summary_is_a_message(quick_run):
    code, text, err = quick_run("-q")
    assert (code, text, err) == (0, "", "")
    code, text, err = quick_run()
    assert code == 0 and text == ""  # run's results are its files; the summary says where
    assert err.startswith("facedist: 2 images") and "skipped 1: empty file" in err
    assert "warning: 1 file(s) skipped" in err
    code, text, err = quick_run("--json", "-q")
    assert code == 0 and err == "" and json.loads(text)["images"] == 2  # --json: the result
