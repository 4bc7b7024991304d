"""The review queue (review.py) on generated embeddings, its answers through FaceDB and the
command line, and the review server's refusals (no browser: test_review_browser.py has those)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from facedist.people import IgnorePerson, Merge, Move, Name, Apart, person_ids
from facedist.review import (DONE_FLOOR, ReviewQueue, bystanders, chance_odd, chance_one,
                             chance_same, involved, plan)
from facedist.people import IgnoreFace
from facedist.store import FaceStore
from synthetic import review_output

CUT = 0.34


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def at(theta: float, k: int = 0, dim: int = 16) -> np.ndarray:
    """A unit vector in the plane of axes 2k, 2k+1, at angle theta."""
    v = np.zeros(dim)
    v[2 * k], v[2 * k + 1] = np.cos(theta), np.sin(theta)
    return v


def chord(d: float) -> float:
    return 2 * np.arcsin(d / 2)


class Stored:
    """A queue's people in a real store: corrections are applied by their one rule (people.py,
    in SQL) and the queue follows the database (ReviewQueue.sync), as FaceDB.answer does."""

    KEY = "k"

    def __init__(self, folder: Path, q: ReviewQueue) -> None:
        self.q, self.store = q, FaceStore(folder)
        db = self.store.db
        with self.store.transaction():
            for f, v in zip(q.face_ids.tolist(), q.x.astype(np.float32)):
                db.execute("INSERT INTO images (id, path) VALUES (?, ?)", (f, f"{f}.jpg"))
                db.execute("INSERT INTO faces (id, image_id, pipeline_key, model, face_index, "
                           "embedding) VALUES (?, ?, ?, 'm', 0, ?)", (f, f, self.KEY, v.tobytes()))
            for p in q.pid:
                db.execute("INSERT INTO people (id, pipeline_key, name) VALUES (?, ?, ?)",
                           (p, self.KEY, q.names.get(p)))
            db.executemany("INSERT INTO face_people VALUES (?, ?, ?)",
                           [(int(f), q.pid[i], int(pin)) for f, i, pin in
                            zip(q.face_ids, q.of, q.pinned) if i >= 0])

    def apply(self, corrections) -> list:
        with self.store.transaction():
            done = [c.apply(self.store, self.KEY) for c in corrections]
        person, pinned = person_ids(self.store, self.q.face_ids)
        ignored = np.isin(self.q.face_ids, list(self.store.ignored(self.KEY)))
        self.q.sync(person, pinned, ignored, self.store.person_names(self.KEY))
        return done


def queue_of(groups: list[tuple[np.ndarray, int]], names=None, rng=None, noise=0.0):
    """People from (centre, n faces) pairs; person ids 10, 20, 30, ..."""
    x, person = [], []
    for g, (centre, n) in enumerate(groups):
        for _ in range(n):
            v = centre + (rng.normal(scale=noise, size=centre.shape) if noise else 0)
            x.append(unit(v))
            person.append(10 * (g + 1))
    x = np.array(x)
    return ReviewQueue(np.arange(len(x)) + 100, x, np.array(person), names or {}, CUT)


def test_ranking_is_the_expected_gain():
    # two people of 6 faces at the cut: likely one person in an album, 6 faces put right;
    # two one-face people at the cut: in an album almost never one person (strangers)
    q = queue_of([(at(0, 0), 6), (at(chord(CUT), 0), 6),
                  (at(0, 1), 1), (at(chord(CUT), 1), 1),
                  (at(0, 2), 3), (at(chord(1.0), 2), 3)])
    qs = q.questions(10)
    top = qs[0]
    assert top.id == "same:10:20"
    assert top.value == pytest.approx(involved(6, 6) * chance_one(CUT, CUT, 6, 6))
    assert top.distance == pytest.approx(CUT, abs=1e-6)
    ids = [x.id for x in qs]
    assert "same:30:40" not in ids and "same:50:60" not in ids
    # below the floor: asked only past done
    assert "same:30:40" in [x.id for x in q.questions(50, past_done=True)]
    assert chance_one(CUT, CUT, 1, 1) < 0.01 < chance_one(CUT, CUT, 1, 6) \
        < chance_one(CUT, CUT, 6, 6)
    assert chance_one(1.2 * CUT, CUT, 6, 6) < 0.01
    assert chance_same(0.3, CUT) > 0.9 > 0.1 > chance_same(0.4, CUT)
    # a face far from the rest of a small group is likely someone else's; of a large one, less
    assert chance_odd(0.9 * CUT, CUT, 2) > 0.8 > 0.2 > chance_odd(0.9 * CUT, CUT, 20)


def test_the_review_ends_when_nothing_left_is_worth_asking(tmp_path):
    # one person split in two (a merge worth asking), and strangers far from everyone
    groups = [(at(0, 0), 6), (at(chord(CUT), 0), 6)] + [(at(0, k), 1) for k in range(1, 6)]
    q = queue_of(groups, names={10: "Ana"})
    assert not q.done()
    first = q.questions(1)[0]
    assert first.id == "same:10:20"
    Stored(tmp_path, q).apply(plan(q, first.id, "yes"))
    assert q.done() and q.questions(5) == []
    # past done: the five strangers, to hide in one answer
    rest = q.questions(5, past_done=True)
    assert rest[0].kind == "strangers" and rest[0].value < DONE_FLOOR
    assert sorted(q.shown(rest[0])["left"]) == sorted(rest[0].faces) == list(range(112, 117))
    assert plan(q, rest[0].id, "yes") == [IgnoreFace(f) for f in range(112, 117)]
    assert plan(q, rest[0].id, "no") == []
    with pytest.raises(ValueError):
        plan(q, rest[0].id, {"not": [112]})
    with pytest.raises(ValueError):  # a batch the queue does not offer
        plan(q, "strangers:112,113", "yes")


def test_bystanders_count_little():
    # a photo's small second face is a bystander
    assert bystanders(["a", "a", "b"], [[0, 0, 100, 100], [0, 0, 30, 30], [0, 0, 10, 10]]).tolist() \
        == [False, True, False]
    # as large, but at the edge of a photo whose middle holds a face; a group of equals is not
    sizes = {"p": (400, 400), "g": (400, 400)}
    boxes = [[150, 150, 250, 250], [330, 150, 400, 250], [0, 150, 100, 250], [220, 150, 320, 250]]
    assert bystanders(["p", "p", "g", "g"], boxes, sizes).tolist() == [False, True, False, False]
    # the same two groups, one of them all bystanders: asked about far less
    x = unit(np.array([at(0, 0)] * 6 + [at(chord(CUT), 0)] * 6))
    person = np.array([10] * 6 + [20] * 6)
    plain = ReviewQueue(np.arange(12), x, person, {}, CUT)
    by = ReviewQueue(np.arange(12), x, person, {}, CUT, bystander=np.arange(12) >= 6)
    assert by.question("same:10:20").value < 0.2 * plain.question("same:10:20").value


def test_answers_settle_and_update_like_a_fresh_queue(rng, tmp_path):
    groups = [(at(0, k) if s == 0 else at(chord(CUT + 0.01 * k), k), 2 + k + s)
              for k in range(5) for s in (0, 1)]
    q = queue_of(groups, rng=rng, noise=0.02)
    folder = Stored(tmp_path, q)
    first = q.questions(1)[0]
    assert first.kind == "same"
    actions = plan(q, first.id, "yes")
    assert isinstance(actions[0], Merge)
    folder.apply(actions)
    q.settle(first.id)
    # the answer took effect: the merged person is one, its question gone for good
    assert first.id not in [x.id for x in q.questions(100)]
    assert q.size_of(actions[0].other) == 0
    fresh = ReviewQueue(q.face_ids, q.x, np.array([q.person_of_face(f) for f in q.face_ids]),
                        q.names, CUT, q.pinned, q.settled, q.ignored)
    assert ([(x.id, round(x.value, 6)) for x in q.questions(50)]
            == [(x.id, round(x.value, 6)) for x in fresh.questions(50)])
    # no to "same person?": the two are kept apart; skip changes nothing; either settles it
    second = next((x for x in q.questions(100) if x.kind == "same"), None)
    assert second is not None, "the answer left no same-person question to answer no to"
    assert plan(q, second.id, "no") == [Apart(second.a, second.b)]
    assert plan(q, second.id, "skip") == []
    q.settle(second.id)
    assert second.id not in [x.id for x in q.questions(100)]
    with pytest.raises(ValueError):
        plan(q, second.id, "yes")  # answered already
    third = q.questions(1)[0]
    with pytest.raises(ValueError):
        plan(q, third.id, "perhaps")


def test_re_ranking_is_local(rng, tmp_path):
    """An answer refreshes the nearest people of the people it changed and of those whose lists
    held them, not of everyone; and the queue is then the one a fresh build gives."""
    dim = 128
    groups = [(at(0, k, dim) if s == 0 else at(chord(CUT), k, dim), 2 + (k == 29) * 5 + s)
              for k in range(30) for s in (0, 1)]
    x, person = [], []
    for g, (centre, n) in enumerate(groups):
        for _ in range(n):
            x.append(unit(centre + rng.normal(scale=0.0005, size=dim)))
            person.append(10 * (g + 1))
    q = ReviewQueue(np.arange(len(x)) + 100, np.array(x), np.array(person), {}, CUT)
    folder = Stored(tmp_path, q)
    refreshed = []
    real = q._refresh
    q._refresh = lambda rows: (refreshed.extend(rows), real(rows))
    first = q.questions(1)[0]
    assert first.id == "same:590:600"  # the largest pair at the cut
    folder.apply(plan(q, first.id, "yes"))
    q.settle(first.id)
    assert 2 <= len(set(refreshed)) < len(groups) // 3  # a few people of 60
    fresh = ReviewQueue(q.face_ids, q.x, np.array([q.person_of_face(f) for f in q.face_ids]),
                        q.names, CUT, q.pinned, q.settled, q.ignored)
    assert ([(x.id, round(x.value, 6)) for x in q.questions(50)]
            == [(x.id, round(x.value, 6)) for x in fresh.questions(50)])


def test_who_is_this_suggests_the_nearest_named():
    q = queue_of([(at(0, 0), 5), (at(chord(0.45), 0), 4), (at(chord(0.9), 0), 4)],
                 names={20: "Ana", 30: "Bo"})
    who = q.question("who:10")
    assert [s[1] for s in who.suggestions] == ["Ana", "Bo"]
    # Ana is 0.45 away, far past the cut (0.34) and its margin: yes never takes her
    assert not who.near and "yes" not in who.answers and "person=ID" in who.answers
    with pytest.raises(ValueError, match="too far to take with yes.*person=20"):
        plan(q, "who:10", "yes")
    assert plan(q, "who:10", {"name": "Bo"}) == [Merge(30, 10)]  # a name taken: that person
    assert plan(q, "who:10", {"name": " Cy "}) == [Name(10, "Cy")]
    assert plan(q, "who:10", {"person": 30}) == [Merge(30, 10)]
    assert plan(q, "who:10", "ignore") == [IgnorePerson(10)]
    for bad in ({"name": "  "}, {"name": "x" * 201}, {"person": 2 ** 64}, {"person": "x"}):
        with pytest.raises(ValueError):
            plan(q, "who:10", bad)


def test_who_yes_takes_a_near_suggestion_only():
    """`yes` merges into the first suggestion only within the cut and WHO_MARGIN; beyond, and
    with nobody named, it is refused (ValueError, one line) and the question stays."""
    from facedist.review import WHO_MARGIN

    near = (1 + WHO_MARGIN) * CUT * 0.99
    q = queue_of([(at(0, 0), 5), (at(chord(near), 0), 4)], names={20: "Ana"})
    who = q.question("who:10")
    assert who.near and who.answers[0] == "yes"
    assert plan(q, "who:10", "yes") == [Merge(20, 10)]
    far = (1 + WHO_MARGIN) * CUT * 1.02
    q = queue_of([(at(0, 0), 5), (at(chord(far), 0), 4)], names={20: "Ana"})
    assert not q.question("who:10").near
    with pytest.raises(ValueError, match="too far") as err:
        plan(q, "who:10", "yes")
    assert "\n" not in str(err.value)
    assert plan(q, "who:10", {"person": 20}) == [Merge(20, 10)]  # chosen: taken
    q = queue_of([(at(0, 0), 5), (at(0, 1), 4)])  # nobody named
    assert "yes" not in q.question("who:10").answers
    with pytest.raises(ValueError, match="nobody is named yet"):
        plan(q, "who:10", "yes")
    assert "who:10" in [x.id for x in q.questions(10)]


def test_questions_the_queue_does_not_ask_are_refused():
    # 10 and 20 near each other, 30 far from both; 10's faces: one at its edge
    x = [at(0, 0)] * 4 + [at(chord(CUT * 1.1), 0)] + [at(chord(CUT), 0)] * 3 + [at(0, 1)] * 3
    q = ReviewQueue(np.arange(11) + 1, unit(np.array(x)), np.array([10] * 5 + [20] * 3 + [30] * 3),
                    {}, CUT)
    asked = {x.id for x in q.questions(50)}
    assert "same:10:20" in asked and "split:10" in asked
    q.question("same:10:20")
    assert "same:10:30" not in asked and "same:20:30" not in asked
    for bad in ("face:5:20", "face:5:10", "face:6:30", "face:999:10", "same:10:30", "same:10:10",
                "nope", "same:10:99", "face:1:2:3", "who:99", "split:30", "split:99",
                "strangers:1,1", "strangers:", "split:1:2"):
        with pytest.raises(ValueError):
            plan(q, bad, "no")


def test_split_a_mixed_person_and_place_a_loose_face(tmp_path):
    # person 10: four faces together and one far from them (a small group: likely two people)
    x = [at(0, 0)] * 4 + [at(chord(CUT * 1.25), 0)] + [at(0, 1)] * 3 + [at(chord(CUT), 1)]
    person = [10] * 5 + [20] * 3 + [-1]
    q = ReviewQueue(np.arange(9) + 1, unit(np.array(x)), np.array(person), {}, CUT)
    ids = [x.id for x in q.questions(20)]
    assert "split:10" in ids and "face:9:20" in ids
    split = q.question("split:10")
    assert q.shown(split)["left"][-1] == 5  # the odd face last, after the typical ones
    assert split.answers == ["not=ID,ID", "none", "skip", "ignore"]
    assert plan(q, "split:10", {"not": [5]}) == [Move(5, None)]
    assert plan(q, "split:10", "none") == []
    for bad in ({"not": [9]}, {"not": [5, 5]}, {"not": [1, 2, 3, 4, 5]}, {"not": []}, "yes",
                {"person": 20}):
        with pytest.raises(ValueError):
            plan(q, "split:10", bad)
    assert plan(q, "face:9:20", "yes") == [Move(9, 20)]
    assert plan(q, "face:9:20", "no") == []
    stored = Stored(tmp_path, q)
    stored.apply([Move(9, 20)])
    assert q.person_of_face(9) == 20 and q.pinned[8]
    assert not [i for i in (x.id for x in q.questions(20)) if i.startswith("face:9:")]
    stored.apply(plan(q, "split:10", {"not": [5]}))
    assert q.person_of_face(5) not in (10, -1) and q.size_of(10) == 4
    assert "split:10" not in [x.id for x in q.questions(20)]


@pytest.fixture
def out(tmp_path):
    o = tmp_path / "out"
    made = review_output(o, tmp_path / "photos", pairs=3, faces=3, names={5: "Zed"})
    return o, made["people"]


def people_csv(o: Path) -> dict[int, int]:
    with open(o / "people.csv", newline="") as fh:
        return {int(r["person"]): int(r["faces"]) for r in csv.DictReader(fh)}


def test_facedb_answer_undo_and_settled(out):
    from facedist.facedb import FaceDB
    from facedist.errors import Busy
    from facedist.store import OutputLock

    o, people = out
    db = FaceDB(o)
    qs = db.review_questions(10)
    same = [q for q in qs if q.kind == "same"]
    from facedist.config import Settings
    from facedist.models import get_spec

    cut = get_spec(Settings().model).people_threshold  # review_output's pairs are the cut apart
    assert len(same) == 3 and same[0].distance == pytest.approx(cut, abs=1e-4)
    before = people_csv(o)
    done = db.answer(same[0].id, "yes")
    assert done["done"][0][0] == "merge"
    after = people_csv(o)
    assert len(after) == len(before) - 1 and max(after.values()) == 6
    assert same[0].id not in [q.id for q in db.review_questions(50)]
    db.answer(same[1].id, "skip")
    assert db.review_progress()["answered"] == 2
    with OutputLock(o, what="run"):  # a run holds the folder: no answer is written
        with pytest.raises(Busy):
            db.answer(same[2].id, "no")
    assert same[2].id in [q.id for q in db.review_questions(50)]
    # a new reader (reload, another process) sees all of it
    again = FaceDB(o)
    assert {same[0].id, same[1].id} <= again.store.settled(again.pipeline_key)
    assert db.undo()["question"] == same[1].id
    assert db.undo()["question"] == same[0].id
    assert people_csv(o) == before
    assert db.undo() is None
    assert same[0].id in [q.id for q in FaceDB(o).review_questions(50)]
    db.close()
    again.close()


def test_people_apart_settles_the_question(out):
    """`people apart` (and FaceDB.apart) answer "same person?" for good: it never comes back,
    in this process or a new one, and undo (review answers only) leaves it settled."""
    from facedist.facedb import FaceDB

    o, people = out
    db = FaceDB(o)
    same = [q for q in db.review_questions(10) if q.kind == "same"]
    db.apart(same[0].b, same[0].a)  # either order
    assert same[0].id not in [q.id for q in db.review_questions(50)]
    assert same[0].id not in [q.id for q in FaceDB(o).review_questions(50)]
    assert db.undo() is None and same[0].id in db.store.settled(db.pipeline_key)
    db.close()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facedist.cli", *args], capture_output=True,
                          text=True)


def test_cli_review_answer_undo(out):
    o, people = out
    listed = cli("people", str(o), "review", "-n", "3", "--json")
    assert listed.returncode == 0, listed.stderr
    qs = json.loads(listed.stdout)
    assert len(qs) == 3 and qs[0]["kind"] == "same"
    done = cli("people", str(o), "answer", qs[0]["question"], "yes")
    assert done.returncode == 0 and "merge" in done.stdout
    assert len(people_csv(o)) == 5
    bad = cli("people", str(o), "answer", qs[0]["question"], "yes")
    assert bad.returncode == 2 and "answered already" in bad.stderr
    assert cli("people", str(o), "undo").returncode == 0
    assert len(people_csv(o)) == 6


def test_server_refuses_without_token_or_from_another_origin(out):
    from facedist.review_server import ReviewServer

    o, people = out
    server = ReviewServer(o).start()
    try:
        state = json.load(urllib.request.urlopen(server.url + "api/questions?n=1"))
        qid = state["questions"][0]["id"]
        before = people_csv(o)

        def post(url, headers):
            req = urllib.request.Request(url, json.dumps({"question": qid, "answer": "yes"}).encode(),
                                         {"Content-Type": "application/json", **headers})
            try:
                return urllib.request.urlopen(req).status
            except urllib.error.HTTPError as exc:
                return exc.code

        root = server.url.rsplit("/", 2)[0] + "/"
        assert post(root + "api/answer", {}) == 403  # no token
        assert post(root + "wrongtoken/api/answer", {}) == 403
        assert post(server.url + "api/answer", {"Origin": "http://evil.example"}) == 403
        assert post(server.url + "api/answer", {"Host": "evil.example"}) == 403
        req = urllib.request.Request(server.url + "api/answer", b"question=x",
                                     {"Content-Type": "application/x-www-form-urlencoded"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 403
        assert people_csv(o) == before  # nothing changed
        assert post(server.url + "api/answer", {"Origin": server.url.split("/", 3)[:3][0]
                                                + "//" + server.url.split("/")[2]}) == 200
        assert len(people_csv(o)) == len(before) - 1
    finally:
        server.stop()


def test_report_says_how_to_review(out):
    from facedist.facedb import FaceDB

    o, _ = out
    db = FaceDB(o)
    db.report()
    db.close()
    pages = [o / "report" / "index.html", *sorted((o / "report").glob("people*.html"))]
    assert len(pages) >= 2
    for page in pages:
        assert "facedist review" in page.read_text(), page.name


def test_server_refuses_requests_not_from_the_loopback():
    from facedist.review_server import make_handler

    handler = make_handler(None, "tok", lambda: 8000)
    sent = []
    for client, host, path, ok in [(("192.168.1.5", 1), "127.0.0.1:8000", "/tok/", False),
                                   (("127.0.0.1", 1), "127.0.0.1:8000", "/tok/", True),
                                   (("127.0.0.1", 1), "127.0.0.1:8000", "/tokx/", False),
                                   (("127.0.0.1", 1), "attacker.example:8000", "/tok/", False)]:
        h = handler.__new__(handler)
        h.client_address, h.headers, h.path = client, {"Host": host}, path
        h._send = lambda code, body, kind, cache=False: sent.append(code)
        assert (h._allowed() is not None) == ok, (client, host, path)
    assert sent == [403, 403, 403]


def _second_run(o: Path, photos: Path, new_pair: bool, drop: list[str]) -> None:
    """A run, written as a run writes (store.writing), that finds two new people just over the
    people threshold apart (3 photos each), and no longer finds the photos `drop`."""
    import hashlib

    from facedist.models import get_spec
    from facedist.config import Settings
    from facedist.people import assign_people
    from facedist.store import ImageResult, writing
    from synthetic import make_photo

    cut = get_spec(Settings().model).people_threshold
    theta = 2 * np.arcsin(1.02 * cut / 2)  # just over the cut: two people, and an open question
    with writing(o, "run") as store:
        last = store.last_run()
        key = last["pipeline_key"]
        run = store.begin_run(key, last["model"], str(photos), last["settings"], {})
        paths = [p for p in map(str, sorted(photos.glob("*.jpg"))) if p not in drop]
        results = []
        for k in range(6 if new_pair else 0):
            path = photos / f"new-{k}.jpg"
            boxes = make_photo(path, 500 + k, 1)
            v = np.zeros((1, 128), np.float32)
            v[0, 100] = np.cos(theta) if k >= 3 else 1.0
            v[0, 101] = np.sin(theta) if k >= 3 else 0.0
            st = path.stat()
            results.append(ImageResult(store.image_id(str(path), st.st_size, st.st_mtime_ns),
                                       480, 384, hashlib.sha256(path.read_bytes()).hexdigest(),
                                       boxes, np.full(1, 0.99, np.float32),
                                       np.zeros((1, 5, 2), np.float32), v))
            paths.append(str(path))
        store.save_chunk(run, key, last["model"], results)
        table = store.faces(key, set(paths))
        table.quality[:] = 1.0
        store.set_quality(table.face_ids, table.quality)
        assign_people(store, key, table.face_ids, table.embeddings, cut)
        store.finish_run(run, {}, seen=paths)


def faces_csv(o: Path) -> dict[int, str]:
    with open(o / "faces.csv", newline="") as fh:
        return {int(r["face_id"]): r["person"] for r in csv.DictReader(fh)}


def test_a_page_open_across_a_run_follows_it(tmp_path, out):
    """The review page, open while a run adds and deletes photos, asks about the new faces and
    writes tables equal to a fresh read (it wrote 45 rows for 65 faces, and brought deleted
    photos back, when it kept the faces it had read at start)."""
    from facedist.facedb import FaceDB
    from facedist.review_server import ReviewServer

    o, _ = out
    photos = tmp_path / "photos"
    server = ReviewServer(o).start()
    try:
        first = json.load(urllib.request.urlopen(server.url + "api/questions?n=50"))
        assert first["busy"] is None
        drop = [str(p) for p in sorted(photos.glob("*.jpg"))[:3]]
        _second_run(o, photos, new_pair=True, drop=drop)
        state = json.load(urllib.request.urlopen(server.url + "api/questions?n=50"))
        fresh = FaceDB(o)
        t = fresh.faces()
        new_people = {int(p) for p in fresh.person_of(t)[[i for i, p in enumerate(t.paths)
                                                           if "new-" in p]]}
        asked = [q for q in state["questions"] if q["kind"] == "same"
                 and {q["a"], q["b"]} == new_people]
        assert asked, "the new faces' question is asked"
        req = urllib.request.Request(server.url + "api/answer", json.dumps(
            {"question": asked[0]["id"], "answer": "skip"}).encode(),
            {"Content-Type": "application/json"})
        assert urllib.request.urlopen(req).status == 200
        rows = faces_csv(o)
        assert sorted(rows) == sorted(t.face_ids.tolist())  # new faces in, deleted ones out
        assert not any(p in drop for p in t.paths)
        assert rows == {int(f): str(p) if p >= 0 else "" for f, p in
                        zip(t.face_ids, fresh.person_of(t))}
        fresh.close()
    finally:
        server.stop()


def test_the_page_follows_the_command_line(out):
    """A correction made on the command line while the page is open: the page's next question
    is judged on the people as stored, and an answer about people merged meanwhile is refused
    (400) without writing anything."""
    from facedist.review_server import ReviewServer

    o, _ = out
    server = ReviewServer(o).start()
    try:
        q = json.load(urllib.request.urlopen(server.url + "api/questions?n=1"))["questions"][0]
        assert q["kind"] == "same"
        assert cli("people", str(o), "merge", str(q["a"]), str(q["b"])).returncode == 0
        before = people_csv(o)
        state = json.load(urllib.request.urlopen(server.url + "api/questions?n=50"))
        assert q["id"] not in [x["id"] for x in state["questions"]]
        req = urllib.request.Request(server.url + "api/answer", json.dumps(
            {"question": q["id"], "answer": "yes"}).encode(), {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 400
        assert people_csv(o) == before
    finally:
        server.stop()


KILL_AT_ANSWER = """
import os, signal, sys
from facedist import store
from facedist.facedb import FaceDB
store.fault_points["answer"] = lambda: os.kill(os.getpid(), signal.SIGKILL)
FaceDB(sys.argv[1]).answer(sys.argv[2], "yes")
"""


def test_an_answer_killed_midway_is_not_half_applied(out):
    """kill -9 between an answer's corrections and its log entry: the merge is not applied, the
    question is still open, and answering again then undoing works (once they committed apart:
    the merge stayed, unsettled, and nothing could undo it)."""
    import sqlite3

    from facedist.facedb import FaceDB

    o, _ = out

    def state():
        db = sqlite3.connect(o / "facedist.sqlite")
        try:
            return [db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                    for t in ("people", "face_people", "review_settled", "review_log")]
        finally:
            db.close()

    before, csv_before = state(), people_csv(o)
    qid = FaceDB(o).review_questions(1)[0].id
    killed = subprocess.run([sys.executable, "-c", KILL_AT_ANSWER, str(o), qid],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert state() == before and people_csv(o) == csv_before
    db = FaceDB(o)
    assert db.review_questions(1)[0].id == qid
    db.answer(qid, "yes")
    assert state() != before and len(people_csv(o)) == len(csv_before) - 1
    assert db.undo()["question"] == qid
    assert state() == before and people_csv(o) == csv_before
    db.close()


def test_distances_are_the_groups_own_whatever_the_vectors_length(rng, tmp_path):
    """With vectors that are not unit length, every distance the queue ranks by is still the
    root mean squared distance over the two sides' faces, as the clustering measures it; and
    after an answer the queue is the one a fresh build gives."""
    x = rng.normal(size=(12, 8))
    x *= (1.4 + rng.normal(0, 0.1, 12))[:, None] / np.linalg.norm(x, axis=1, keepdims=True)
    person = np.repeat([10, 20, 30, 40], 3)
    q = ReviewQueue(np.arange(12) + 100, x, person, {}, 1.9)
    m = q._means()
    for i in range(4):
        for j in range(4):
            a, b = x[person == q.pid[i]], x[person == q.pid[j]]
            rms = np.sqrt(np.mean(((a[:, None] - b[None]) ** 2).sum(-1)))
            assert q._rms(np.array([i]), m)[0, j] == pytest.approx(rms, abs=1e-9)
    first = q.questions(1)[0]
    rows = x[person == q.pid[q.index[first.a]]]
    assert first.kind == "same" and first.distance == pytest.approx(np.sqrt(np.mean(
        ((rows[:, None] - x[person == first.b][None]) ** 2).sum(-1))), abs=1e-9)
    Stored(tmp_path, q).apply(plan(q, first.id, "yes"))
    q.settle(first.id)
    fresh = ReviewQueue(q.face_ids, q.x, np.array([q.person_of_face(f) for f in q.face_ids]),
                        q.names, 1.9, q.pinned, q.settled, q.ignored)
    assert ([(y.id, round(y.value, 6)) for y in q.questions(50)]
            == [(y.id, round(y.value, 6)) for y in fresh.questions(50)])


def _state(o: Path):
    """What an answer may change: people.csv and the settled questions."""
    import sqlite3

    db = sqlite3.connect(o / "facedist.sqlite")
    try:
        settled = {r[0] for r in db.execute("SELECT question FROM review_settled")}
    finally:
        db.close()
    return (o / "people.csv").read_text(), settled


def test_cli_review_json_lists_people_faces_and_answers(out):
    o, people = out
    # the people have 3 faces each: naming them is worth less than the floor, so --all
    listed = cli("people", str(o), "review", "-n", "50", "--json", "--all")
    assert listed.returncode == 0, listed.stderr
    qs = {q["question"]: q for q in json.loads(listed.stdout)}
    for q in qs.values():
        assert q["kind"] in ("same", "who", "face", "split", "strangers")
        assert q["people"][0] == q["person"]
        assert q["faces"]["left"] and all(isinstance(f, int) for f in q["faces"]["left"])
        assert {"skip", "ignore"} <= set(q["answers"])
    same = next(q for q in qs.values() if q["kind"] == "same")
    assert same["answers"] == ["yes", "no", "skip", "ignore"]
    assert same["people"] == [same["person"], same["other"]] and same["faces"]["right"]
    # people[4] is Zed's pair, the cut away: near; the others are far from Zed
    near, far = qs[f"who:{people[4]}"], qs[f"who:{people[0]}"]
    assert near["answers"][0] == "yes" and near["suggestions"][0]["near"]
    assert near["suggestions"][0]["name"] == "Zed" and near["suggestions"][0]["faces"]
    assert "yes" not in far["answers"] and {"name=NAME", "person=ID"} <= set(far["answers"])
    before = _state(o)
    bad = cli("people", str(o), "answer", far["question"], "yes")
    assert bad.returncode == 2 and "too far" in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert _state(o) == before
    zed = far["suggestions"][0]["person"]
    assert cli("people", str(o), "answer", far["question"], f"person={zed}").returncode == 0
    assert len(people_csv(o)) == len(people) - 1  # chosen explicitly: joined


def test_cli_yes_with_nobody_named(tmp_path):
    o = tmp_path / "out"
    review_output(o, tmp_path / "photos", pairs=1, faces=3)
    qs = json.loads(cli("people", str(o), "review", "-n", "50", "--json", "--all").stdout)
    who = next(q for q in qs if q["kind"] == "who")
    assert "yes" not in who["answers"] and who["suggestions"] == []
    before = _state(o)
    bad = cli("people", str(o), "answer", who["question"], "yes")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "nobody is named yet" in bad.stderr and "Traceback" not in bad.stderr
    assert _state(o) == before


def test_cli_malformed_answers_are_refused_and_change_nothing(out):
    o, people = out
    qs = json.loads(cli("people", str(o), "review", "-n", "50", "--json", "--all").stdout)
    same = next(q for q in qs if q["kind"] == "same")
    who = next(q for q in qs if q["kind"] == "who")
    assert cli("people", str(o), "answer", same["question"], "no").returncode == 0
    other = next(q for q in qs if q["kind"] == "same" and q["question"] != same["question"])
    # a face that was not shown: a face of another person, against this one
    stranger_face = other["faces"]["right"][0]
    before = _state(o)
    for question, answer in [("same:1:999999", "yes"), ("bogus", "yes"), ("who:999999", "no"),
                             (same["question"], "yes"),  # settled
                             (f"face:{stranger_face}:{other['person']}", "yes"),
                             (who["question"], "name="), (who["question"], "name=   "),
                             (who["question"], "name=" + "x" * 201),
                             (who["question"], "person=abc"), (who["question"], "person=999999"),
                             (other["question"], "maybe"), (other["question"], "name=Ana")]:
        r = cli("people", str(o), "answer", question, answer)
        assert r.returncode == 2, (question, answer, r.stdout)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        assert _state(o) == before, (question, answer)


def test_undo_brings_the_undone_question_back_first(out):
    from facedist.facedb import FaceDB

    o, people = out
    listed = [q["question"] for q in
              json.loads(cli("people", str(o), "review", "-n", "3", "--json").stdout)]
    second = listed[1]  # not the first: only undo can bring it to the front
    assert cli("people", str(o), "answer", second, "no").returncode == 0
    undone = cli("people", str(o), "undo", "--json")
    assert undone.returncode == 0 and json.loads(undone.stdout)["question"] == second
    top = json.loads(cli("people", str(o), "review", "-n", "1", "--json").stdout)
    assert [q["question"] for q in top] == [second]
    db = FaceDB(o)
    try:
        assert db.review_questions(1)[0].id == second  # a new reader too
        db.answer(listed[0], "skip")  # another question answered: the undone one still first
        assert db.review_questions(1)[0].id == second
        done = db.answer(second, "yes")
        assert done["said"] == "Same person: joined"
        assert db.review_questions(1)[0].id != second  # answered: the ranking's order again
        assert db.undo()["said"] == "Same person: joined"
        assert db.review_questions(1)[0].id == second
    finally:
        db.close()


def test_page_refuses_malformed_answers_with_400(out):
    from facedist.review_server import ReviewServer

    o, people = out
    server = ReviewServer(o).start()
    try:
        state = json.load(urllib.request.urlopen(server.url + "api/questions?n=50&all=1"))
        qs = state["questions"]
        same = next(q for q in qs if q["kind"] == "same")
        far = next(q for q in qs if q["kind"] == "who" and not q["near"])

        def post(question, answer):
            req = urllib.request.Request(
                server.url + "api/answer", json.dumps({"question": question, "answer": answer}).encode(),
                {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as exc:
                return exc.code, json.load(exc)

        assert post(same["id"], "no")[0] == 200
        before = _state(o)
        face = next(q for q in qs if q["kind"] == "same" and q["id"] != same["id"])
        for question, answer in [("same:1:999999", "yes"), ("bogus", "yes"),
                                 (same["id"], "yes"),  # settled
                                 (f"face:{face['right']['show'][0]}:{face['a']}", "yes"),
                                 (far["id"], "yes"),  # far: never by a bare yes
                                 (far["id"], {"name": ""}), (far["id"], {"name": "  "}),
                                 (far["id"], {"name": "x" * 201}), (far["id"], {"person": -1}),
                                 (far["id"], {"person": 999999}), (far["id"], "maybe")]:
            code, body = post(question, answer)
            assert code == 400, (question, answer, body)
            assert body["error"] and "\n" not in body["error"]
            assert _state(o) == before, (question, answer)
        assert "too far" in post(far["id"], "yes")[1]["error"]
    finally:
        server.stop()


def test_cli_split_and_the_report_that_follows(tmp_path):
    """`people OUT review --json` lists the split with the faces it shows; `answer ... not=ID`
    sets the odd face apart (a face it did not show is refused); with a report in OUT, the
    command line's answers rewrite it at once."""
    from synthetic import review_album

    o = tmp_path / "out"
    made = review_album(o, tmp_path / "photos")
    assert cli("report", str(o)).returncode == 0
    q = json.loads(cli("people", str(o), "review", "--json", "-n", "1").stdout)[0]
    assert q["question"] == f"split:{made['B']}" and q["kind"] == "split"
    assert q["faces"]["left"][-1] == made["odd"] and "not=ID,ID" in q["answers"]
    bad = cli("people", str(o), "answer", q["question"], f"not={made['strangers'][0]}")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert cli("people", str(o), "answer", q["question"], f"not={made['odd']}").returncode == 0
    assert people_csv(o)[made["B"]] == 2
    who = json.loads(cli("people", str(o), "review", "--json", "-n", "1").stdout)[0]
    assert who["question"] == f"who:{made['A']}"
    assert cli("people", str(o), "answer", who["question"], "name=Ana Lima").returncode == 0
    assert "Ana Lima" in (o / "report" / "people.html").read_text(encoding="utf-8")
    # done: nothing listed, unless the rest is asked for
    assert json.loads(cli("people", str(o), "review", "--json").stdout) == []
    rest = json.loads(cli("people", str(o), "review", "--json", "--all").stdout)
    assert rest[0]["kind"] == "strangers" and made["odd"] in rest[0]["faces"]["left"]
