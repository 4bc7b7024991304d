"""Look-alikes are two people: a pair of people once, by its closest faces; a pair that is
maybe one person apart from them (a review question); a second box over one face is one face."""
from __future__ import annotations

import csv
import sqlite3

import numpy as np

from facedist.compute import one_box_per_face
from facedist.config import Settings
from facedist.facedb import FaceDB
from facedist.models import get_spec
from facedist.report import lookalikes, maybe_same
from facedist.store import FaceTable, ImageResult

from synthetic import review_output

CUT = get_spec(Settings().model).people_threshold
SINGLE = get_spec(Settings().model).people_single_threshold


def table(x: np.ndarray, photos: list[str] | None = None) -> FaceTable:
    n = len(x)
    return FaceTable(np.arange(n) + 1, photos or [f"p{i}.jpg" for i in range(n)],
                     np.zeros(n, np.int64), np.tile(np.array([0, 0, 10, 10], np.float32), (n, 1)),
                     np.ones(n, np.float32), x.astype(np.float32), np.zeros((n, 5, 2), np.float32),
                     np.ones(n, np.float32))


def at(angles) -> np.ndarray:
    """Unit vectors in a plane (the rest of the 128 dimensions 0) at these angles."""
    a = np.asarray(angles, np.float64)
    x = np.zeros((len(a), 128))
    x[:, 0], x[:, 1] = np.cos(a), np.sin(a)
    return x


def chord(d: float) -> float:
    """The angle between two unit vectors d apart."""
    return 2 * np.arcsin(d / 2)


def test_a_pair_of_people_is_listed_once_by_its_closest_faces():
    # people 0 and 1, three faces each, every face's nearest other person the other one
    x = at([0, 0.01, 0.02, chord(1.0), chord(1.0) + 0.01, chord(1.0) + 0.03])
    person = np.array([0, 0, 0, 1, 1, 1])
    pairs = lookalikes(table(x), person)
    assert len(pairs) == 1
    d, a, b = pairs[0]
    assert (a, b) == (2, 3) and abs(d - np.linalg.norm(x[2] - x[3])) < 1e-5


def test_one_person_split_in_two_is_maybe_one_person_not_a_lookalike():
    # people 0 and 1 are one person split in two (their faces 0.8 cut apart); person 2 is
    # someone else, 1.2 cut away; three faces each
    x = at([0] * 3 + [chord(0.8 * CUT)] * 3 + [-chord(1.2 * CUT)] * 3)
    person = np.repeat([0, 1, 2], 3)
    t = table(x)
    pairs = lookalikes(t, person)
    assert len(pairs) == 2
    looks, maybe = maybe_same(t, person, pairs, CUT, SINGLE)
    assert [m.question for m in maybe] == ["same:0:1"] and maybe[0].chance >= 0.5
    assert [{int(person[a]), int(person[b])} for _, a, b in looks] == [{0, 2}]
    # the user said they are two people (apart, or two names), or they share a photo: look-alikes
    for said in [dict(settled={"same:0:1"}), dict(names={0: "Ann", 1: "Bea"})]:
        looks, maybe = maybe_same(t, person, pairs, CUT, SINGLE, **said)
        assert maybe == [] and len(looks) == 2, said
    shared = table(x, ["a.jpg", "b.jpg", "c.jpg", "a.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg", "h.jpg"])
    assert maybe_same(shared, person, pairs, CUT, SINGLE)[1] == []


def test_the_folder_lists_a_split_person_apart_until_the_user_says_two_people(tmp_path, capsys):
    from facedist.cli import main

    out = tmp_path / "out"
    made = review_output(out, tmp_path / "photos", pairs=1, faces=3)
    a, b = made["people"]
    theta = chord(0.8 * CUT)
    db = sqlite3.connect(out / "facedist.sqlite")
    with db:
        for (face,) in db.execute("SELECT face_id FROM face_people WHERE person_id = ?", (b,)).fetchall():
            v = np.zeros(128, np.float32)
            v[0], v[1] = np.cos(theta), np.sin(theta)
            db.execute("UPDATE faces SET embedding = ? WHERE id = ?", (v.tobytes(), face))
    db.close()
    for name in ("lookalikes.csv", "maybe_same.csv"):  # of the faces as they were
        (out / name).unlink()
    fdb = FaceDB(out)
    assert [m.question for m in fdb.maybe_same()] == [f"same:{min(a, b)}:{max(a, b)}"]
    assert fdb.lookalikes() == []
    assert main(["lookalikes", str(out), "--maybe-same", "--json"]) == 0
    assert f'"question": "same:{min(a, b)}:{max(a, b)}"' in capsys.readouterr().out
    index = (fdb.report(tmp_path / "report").index).read_text()
    assert 'id="maybe-same"' in index and "Maybe one person" in index
    fdb.apart(a, b)  # rewrites the CSVs
    assert fdb.maybe_same() == [] and len(fdb.lookalikes()) == 1
    assert list(csv.DictReader(open(out / "maybe_same.csv"))) == []
    assert len(list(csv.DictReader(open(out / "lookalikes.csv")))) == 1


def result(boxes, probs, x) -> ImageResult:
    n = len(boxes)
    return ImageResult(1, 100, 100, None, np.array(boxes, np.float32), np.array(probs, np.float32),
                       np.arange(n * 10, dtype=np.float32).reshape(n, 5, 2),
                       np.array(x, np.float32))


def test_a_second_box_over_one_face_is_one_face_the_better_kept():
    x = at([0, 0.05])  # 0.05 apart: one face
    r = one_box_per_face(result([[0, 0, 40, 40], [8, 4, 48, 44]], [0.91, 0.99], x), 0.4)
    assert r.probs.tolist() == [np.float32(0.99)] and r.boxes.tolist() == [[8, 4, 48, 44]]
    assert r.landmarks.tolist() == np.arange(10, 20, dtype=np.float32).reshape(1, 5, 2).tolist()
    assert np.allclose(r.embeddings, x[1:2])


def test_two_people_overlapping_stay_two_faces():
    x = at([0, chord(0.6)])  # a face and the one behind it: two people
    r = one_box_per_face(result([[0, 0, 40, 40], [8, 4, 48, 44]], [0.91, 0.99], x), 0.4)
    assert len(r.boxes) == 2 and len(r.embeddings) == 2
    # one face, boxes apart (two photos of one person side by side): both stay
    r = one_box_per_face(result([[0, 0, 40, 40], [60, 0, 100, 40]], [0.91, 0.99], at([0, 0.05])), 0.4)
    assert len(r.boxes) == 2
