import numpy as np
import pytest

from facedist.people import (Apart, IgnoreFace, IgnorePerson, Merge, Move, Name, UnignoreFace,
                             UnignorePerson, assign_people, list_people, neighbor_graph,
                             suggest_threshold)
from facedist.store import FaceStore, ImageResult

KEY = "test-key"


def blobs(rng, centres, per, spread=0.02):
    x = np.concatenate([c + rng.normal(0, spread, (per, len(c))) for c in centres])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def store_faces(store, x, first_image=0):
    """One face per image, stored as a run would; returns the faces' ids."""
    results = []
    for k, v in enumerate(x):
        image_id = store.image_id(f"img{first_image + k:04d}.jpg", 1, 1)
        results.append(ImageResult(image_id, 10, 10, None, np.array([[0, 0, 5, 5]], np.float32),
                                   np.array([0.99], np.float32), np.zeros((1, 5, 2), np.float32),
                                   v[None]))
    store.save_chunk(1, KEY, "m", results)
    return store.faces(KEY)


def correct(store, correction):
    """A correction applied by its rule, in one transaction, as the write path does."""
    with store.transaction():
        return correction.apply(store, KEY)


@pytest.fixture
def centres():
    return np.eye(8)[:4] * 1.0


def test_people_are_found_and_ids_stable(tmp_path, rng, centres):
    store = FaceStore(tmp_path)
    t = store_faces(store, blobs(rng, centres[:3], 5))
    first = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    assert len(set(first.tolist())) == 3
    again = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3, full=True)
    assert np.array_equal(first, again)  # a full re-clustering keeps every id
    assert sorted(p.faces for p in list_people(store, KEY)) == [5, 5, 5]


def test_new_photos_join_people_incrementally(tmp_path, rng, centres, monkeypatch):
    store = FaceStore(tmp_path)
    x = blobs(rng, centres[:3], 5)
    t = store_faces(store, x)
    old = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    store_faces(store, np.concatenate([blobs(rng, centres[:1], 2), blobs(rng, centres[3:], 3)]), 100)
    t2 = store.faces(KEY)
    seen = {}

    def spy(x, rows):
        seen["rows"] = len(rows)
        return neighbor_graph(x, rows)

    monkeypatch.setattr("facedist.people.neighbor_graph", spy)
    person = assign_people(store, KEY, t2.face_ids, t2.embeddings, 0.3)
    assert seen["rows"] == 5  # only the new faces' distances were computed
    by_id = dict(zip(t2.face_ids.tolist(), person.tolist()))
    assert [by_id[f] for f in t.face_ids.tolist()] == old.tolist()  # old faces keep their person
    new = [by_id[f] for f in t2.face_ids.tolist() if f not in set(t.face_ids.tolist())]
    # the photos are sorted by path: img100, img101 (blob 0), img102-104 (a new person)
    assert new[0] == new[1] == old[0]
    assert new[2] == new[3] == new[4] and new[2] not in set(old.tolist())


def test_corrections_survive_incremental_and_full_runs(tmp_path, rng, centres):
    store = FaceStore(tmp_path)
    t = store_faces(store, blobs(rng, centres[:3], 4))
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    a, b, c = person[0], person[4], person[8]
    correct(store, Name(int(a), "Ana"))
    correct(store, Merge(int(a), int(b)))  # the user says: one person
    moved = correct(store, Move(int(t.face_ids[9]), None))  # this face is somebody else
    for full in (False, True):
        store_faces(store, blobs(rng, centres[:1], 1), 200 + full)  # new photos, then a re-run
        t2 = store.faces(KEY)
        p2 = assign_people(store, KEY, t2.face_ids, t2.embeddings, 0.3, full=full)
        by_id = dict(zip(t2.face_ids.tolist(), p2.tolist()))
        merged = {by_id[int(f)] for f in t.face_ids[:8]}
        assert merged == {a}, full  # the merge holds, far apart as the two were
        assert by_id[int(t.face_ids[9])] == moved != by_id[int(t.face_ids[8])]
        assert store.person_names(KEY)[int(a)] == "Ana"
    assert c not in merged


def test_apart_keeps_two_close_people_apart(tmp_path, rng):
    store = FaceStore(tmp_path)
    near = np.eye(8)[:2] * 1.0
    near[1] = near[0] + np.eye(8)[2] * 0.35  # two people whose faces are close
    x = blobs(rng, near, 4, spread=0.01)
    t = store_faces(store, x)
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    assert len(set(person.tolist())) == 2
    correct(store, Apart(int(person[0]), int(person[4])))
    p2 = assign_people(store, KEY, t.face_ids, t.embeddings, 0.5, full=True)  # a looser cut
    assert p2[0] != p2[4]
    p3 = assign_people(store, KEY, t.face_ids, t.embeddings, 0.5, full=False)
    assert p3[0] != p3[4]


def test_bad_corrections_are_refused(tmp_path, rng, centres):
    store = FaceStore(tmp_path)
    t = store_faces(store, blobs(rng, centres[:2], 2))
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    with pytest.raises(ValueError, match="no person"):
        correct(store, Merge(int(person[0]), 999))
    with pytest.raises(ValueError, match="two different"):
        correct(store, Apart(int(person[0]), int(person[0])))
    with pytest.raises(ValueError, match="no face"):
        correct(store, Move(12345, None))


def test_a_batch_of_new_photos_of_one_person_meets_their_old_faces(tmp_path, rng, centres):
    store = FaceStore(tmp_path)
    t = store_faces(store, blobs(rng, centres[:2], 3))
    old = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    # more new faces than neighbours kept, closer to each other than to the older ones
    store_faces(store, blobs(rng, centres[:1] + 0.15 * np.eye(8)[7], 30, spread=0.005), 100)
    t2 = store.faces(KEY)
    person = assign_people(store, KEY, t2.face_ids, t2.embeddings, 0.3)
    assert set(person[6:].tolist()) == {old[0]}  # sorted by path: the 6 old photos first


def test_suggested_threshold_falls_between_the_two_modes(rng):
    d = np.concatenate([rng.normal(0.25, 0.03, 3000), rng.normal(0.6, 0.05, 7000)])
    assert 0.33 < suggest_threshold(d) < 0.5
    assert suggest_threshold(np.array([0.1, 0.2])) is None


def test_people_from_given_neighbours_equal_those_from_the_exact_graph(tmp_path, rng, centres):
    from facedist.compare import compare

    x = blobs(rng, centres, 15, spread=0.04)
    a, b = FaceStore(tmp_path / "a"), FaceStore(tmp_path / "b")
    ta, tb = store_faces(a, x), store_faces(b, x)
    exact = assign_people(a, KEY, ta.face_ids, ta.embeddings, 0.4)
    res = compare(tb.embeddings, 10, 0.0)
    given = assign_people(b, KEY, tb.face_ids, tb.embeddings, 0.4, neighbors=res.neighbors,
                          neighbor_dist=res.neighbor_dist)
    assert np.array_equal(exact, given) and len(set(exact.tolist())) == 4


def test_unclear_faces_never_start_or_link_people(tmp_path, rng, centres):
    """Two people, unclear faces between them, and unclear faces alike only to each other: the
    unclear faces are left out of the clustering, start no person, and join none that they are
    not clearly part of."""
    store = FaceStore(tmp_path)
    a, b = blobs(rng, centres[:1], 6), blobs(rng, centres[1:2], 6)
    bridge = centres[0] * 0.55 + centres[1] * 0.45
    middle = blobs(rng, [bridge, centres[0] * 0.45 + centres[1] * 0.55], 3, spread=0.01)
    lone = blobs(rng, centres[3:4], 3)  # unclear, and nobody's
    t = store_faces(store, np.concatenate([a, b, middle, lone]))
    quality = np.r_[np.ones(12), np.full(9, 0.1)].astype(np.float32)
    free = assign_people(store, KEY, t.face_ids, t.embeddings, 0.55)
    assert len(set(free[18:].tolist())) == 1  # without the gate: a person of 3 unclear faces
    assert not set(free[12:].tolist()) & set(free[:12].tolist())  # and people of the middle
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.55, full=True,
                           quality=quality, min_quality=0.5)
    assert len(set(person[:6].tolist())) == 1 and len(set(person[6:12].tolist())) == 1
    assert person[0] != person[6]
    assert (person[12:] == -1).all()  # the bridge is between two people: nobody's clearly
    assert (person[18:] == -1).all()  # alone, unclear faces start no person
    assert {p.faces for p in list_people(store, KEY)} == {6}


def test_an_unclear_face_joins_the_person_it_clearly_is(tmp_path, rng, centres):
    store = FaceStore(tmp_path)
    x = np.concatenate([blobs(rng, centres[:2], 5), blobs(rng, centres[:1], 1, spread=0.01)])
    t = store_faces(store, x)
    quality = np.r_[np.ones(10), [0.2]].astype(np.float32)
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3, quality=quality,
                           min_quality=0.5)
    assert person[10] == person[0] != person[5]
    # incremental run: the unclear face is placed again, the same way
    again = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3, quality=quality,
                          min_quality=0.5)
    assert np.array_equal(person, again)


def test_faces_of_one_photo_are_two_people(tmp_path, rng, centres):
    """Twins in one photo (or one face found twice): never one person by themselves, and an
    unclear face never joins a person that already has a face of its photo."""
    store = FaceStore(tmp_path)
    x = blobs(rng, centres[:1], 4, spread=0.01)
    t = store_faces(store, x)
    photo = np.array([0, 0, 1, 2])
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3, photo=photo)
    assert person[0] != person[1]
    assert assign_people(store, KEY, t.face_ids, t.embeddings, 0.3, full=True)[0] == person[2]
    quality = np.array([1, 1, 1, 0.1], np.float32)
    photo = np.array([0, 1, 2, 0])  # the unclear face shares photo 0 with face 0
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3, full=True, photo=photo,
                           quality=quality, min_quality=0.5)
    assert len(set(person[:3].tolist())) == 1 and person[3] == -1


def test_ignored_faces_leave_people_and_come_back(tmp_path, rng, centres):
    store = FaceStore(tmp_path)
    t = store_faces(store, blobs(rng, centres[:2], 4))
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    correct(store, IgnoreFace(int(t.face_ids[0])))
    assert correct(store, IgnorePerson(int(person[4]))) == 4
    assert [p.faces for p in list_people(store, KEY)] == [3]
    for full in (False, True):  # a run, incremental or full, keeps them out
        again = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3, full=full)
        assert (again[[0, 4, 5, 6, 7]] == -1).all() and len(set(again[1:4].tolist())) == 1
    # its person had gone: back as one again, under its own id (as `unignore person` says)
    assert correct(store, UnignorePerson(int(person[4]))) == 4
    back = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    assert len(set(back[4:].tolist())) == 1 and back[4] == person[4] and back[0] == -1
    correct(store, UnignoreFace(int(t.face_ids[0])))
    assert assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)[0] == back[1]
    with pytest.raises(ValueError, match="not ignored"):
        correct(store, UnignoreFace(int(t.face_ids[0])))
    with pytest.raises(ValueError, match="no face"):
        correct(store, IgnoreFace(99999))


def test_correction_values_check_what_enters(tmp_path):
    """Ids are SQLite's whole numbers and names a line of visible text: anything else is
    refused where the value is made, before any database is touched."""
    from facedist.people import MAX_NAME

    for bad in (2 ** 63, -1, "x", 2.0, True, None):
        with pytest.raises(ValueError, match="no person|not a person id"):
            Name(bad, "Ana")
        with pytest.raises(ValueError, match="no (face|person)|not a (face|person) id"):
            Move(1, bad) if bad is not None else IgnoreFace(bad)
    for blank in ("", "   ", "\t\n", None, 5):
        with pytest.raises(ValueError, match="visible character"):
            Name(1, blank)
    with pytest.raises(ValueError, match=f"at most {MAX_NAME}"):
        Name(1, "x" * (MAX_NAME + 1))
    assert Name(1, " Ana\x1b[31m ").name == "Ana\x1b[31m"  # stored as given; shown escaped
    assert Name(2 ** 63 - 1, "x" * MAX_NAME).person == 2 ** 63 - 1


def test_a_failed_correction_leaves_nothing_half_written(tmp_path, rng, centres):
    """A merge whose transaction fails midway (here: after the faces moved, before the other
    person's row went) leaves both people exactly as they were."""
    store = FaceStore(tmp_path)
    t = store_faces(store, blobs(rng, centres[:2], 3))
    person = assign_people(store, KEY, t.face_ids, t.embeddings, 0.3)
    before = store.db.execute("SELECT * FROM face_people ORDER BY face_id").fetchall()
    real = store.db

    class Failing:  # the connection, failing at the DELETE of the merged person
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if sql.startswith("DELETE FROM people"):
                raise KeyboardInterrupt
            return real.execute(sql, *args)

    store.db = Failing()
    with pytest.raises(KeyboardInterrupt):
        correct(store, Merge(int(person[0]), int(person[3])))
    store.db = real
    assert store.db.execute("SELECT * FROM face_people ORDER BY face_id").fetchall() == before
    assert len(list_people(store, KEY)) == 2
