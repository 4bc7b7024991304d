import os

import numpy as np
import pytest

from facedist.store import FaceStore, ImageResult


def result(image_id, n, dim=4, sha="a"):
    return ImageResult(image_id, 100, 80, sha, boxes=np.ones((n, 4), np.float32),
                       probs=np.full(n, 0.9, np.float32), landmarks=np.zeros((n, 5, 2), np.float32),
                       embeddings=np.arange(n * dim, dtype=np.float32).reshape(n, dim))


def test_results_round_trip_and_models_never_mix(tmp_path):
    s = FaceStore(tmp_path)
    run = s.begin_run("k1", "m1", "/p", {}, {})
    a = s.image_id("/p/a.jpg", 10, 1)
    b = s.image_id("/p/b.jpg", 10, 1)
    s.save_chunk(run, "k1", "m1", [result(a, 2), ImageResult(b, sha256="b", reason="broken")])
    s.save_chunk(run, "k2", "m2", [result(a, 1, dim=8)])
    t1, t2 = s.faces("k1"), s.faces("k2")
    assert len(t1) == 2 and t1.embeddings.shape == (2, 4) and t1.paths == ["/p/a.jpg"] * 2
    assert len(t2) == 1 and t2.embeddings.shape == (1, 8)
    assert s.skipped("k1") == [("/p/b.jpg", "broken")]
    assert s.known_images("k1")["/p/a.jpg"][4] == "done"
    assert s.known_images("k2")["/p/b.jpg"][4] is None


def test_rewriting_an_image_replaces_its_faces(tmp_path):
    s = FaceStore(tmp_path)
    run = s.begin_run("k", "m", "/p", {}, {})
    a = s.image_id("/p/a.jpg", 10, 1)
    s.save_chunk(run, "k", "m", [result(a, 3)])
    s.save_chunk(run, "k", "m", [result(a, 1)])
    assert len(s.faces("k")) == 1


def test_changed_content_invalidates_every_model(tmp_path):
    s = FaceStore(tmp_path)
    run = s.begin_run("k", "m", "/p", {}, {})
    a = s.image_id("/p/a.jpg", 10, 1)
    s.save_chunk(run, "k", "m", [result(a, 2, sha="old")])
    s.save_chunk(run, "k2", "m2", [result(a, 2, sha="old")])
    s.save_chunk(run, "k", "m", [result(a, 1, sha="new")])
    assert len(s.faces("k")) == 1 and len(s.faces("k2")) == 0
    assert s.image_with_result("k", "new") == a and s.image_with_result("k", "old") is None


def test_a_result_needs_same_content_and_key(tmp_path):
    s = FaceStore(tmp_path)
    run = s.begin_run("k", "m", "/p", {}, {})
    a = s.image_id("/p/a.jpg", 10, 1)
    assert s.image_with_result("k", "x", prefer=a) is None
    s.save_chunk(run, "k", "m", [result(a, 1, sha="x")])
    assert s.image_with_result("k", "x", prefer=a) == a
    assert s.image_with_result("k", "y", prefer=a) is None
    assert s.image_with_result("other", "x", prefer=a) is None


def test_copies_take_the_original_result_under_one_key(tmp_path):
    s = FaceStore(tmp_path)
    run = s.begin_run("k", "m", "/p", {}, {})
    a, b, c, bad, bad2 = (s.image_id(f"/p/{n}", 10, 1) for n in ("a", "b", "c", "bad", "bad2"))
    s.save_chunk(run, "k", "m", [result(a, 2, sha="x"), ImageResult(bad, sha256="z", reason="broken")])
    s.save_chunk(run, "other", "m2", [result(a, 1, sha="x")])
    s.save_chunk(run, "k", "m", [result(c, 1, sha="old")])  # c held other bytes before
    assert s.image_with_result("k", "x") == a and s.image_with_result("k", "nope") is None
    s.copy_results(run, "k", [(b, a), (c, a), (bad2, bad)])
    t = s.faces("k")
    assert t.paths == ["/p/a"] * 2 + ["/p/b"] * 2 + ["/p/c"] * 2
    assert np.array_equal(t.embeddings[:2], t.embeddings[2:4])
    assert len(s.faces("other")) == 1  # only the key asked for is copied
    assert s.image_with_result("k", "x", prefer=b) == b and s.image_with_result("k", "x", prefer=c) == c
    assert s.image_with_result("k", "old") is None
    assert dict(s.skipped("k")) == {"/p/bad": "broken", "/p/bad2": "broken"}


def test_lock_holder_is_known_without_taking_the_lock(tmp_path, monkeypatch):
    """The review page asks whether a run holds the folder: it learns who, and never takes the
    lock itself (a run starting at that instant would be refused, exit 6)."""
    import fcntl

    from facedist.store import OutputLock

    assert OutputLock.holder(tmp_path) is None  # no lock file yet
    held = OutputLock(tmp_path, what="run")
    taken = []
    real_fcntl, real_flock = fcntl.fcntl, fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda *a: (taken.append("flock"), real_flock(*a))[1])
    monkeypatch.setattr(fcntl, "fcntl", lambda fd, cmd, *a: (
        taken.append(cmd) if cmd != getattr(fcntl, "F_OFD_GETLK", None) else None,
        real_fcntl(fd, cmd, *a))[1])
    assert OutputLock.holder(tmp_path) == f"facedist run (pid {os.getpid()})"
    held.release()
    assert OutputLock.holder(tmp_path) is None
    assert taken == []  # only asked (F_OFD_GETLK), never locked
    monkeypatch.undo()
    with OutputLock(tmp_path, what="run"):  # and the lock is free for a run
        pass


def test_a_transaction_is_all_or_nothing_even_nested(tmp_path):
    s = FaceStore(tmp_path)
    run = s.begin_run("k", "m", "/p", {}, {})
    a = s.image_id("/p/a.jpg", 10, 1)
    s.save_chunk(run, "k", "m", [result(a, 2)])
    try:
        with s.transaction():
            s.new_person("k")  # its own transaction, nested: part of this one
            s.save_chunk(run, "k", "m", [result(a, 3)])
            raise KeyboardInterrupt  # Ctrl-C before the end
    except KeyboardInterrupt:
        pass
    assert len(s.faces("k")) == 2 and not s.has_people("k")
    with s.transaction():
        s.new_person("k")
    assert s.has_people("k")


def test_only_the_write_path_opens_a_writer():
    """Every module of facedist writes an output folder through store.writing (the lock, one
    connection): none builds a writable FaceStore or connects to SQLite itself."""
    import re
    from pathlib import Path

    import facedist

    root = Path(facedist.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "store.py" and path.parent == root:
            continue
        text = path.read_text()
        for m in re.finditer(r"FaceStore\(([^)]*)\)|sqlite3\.connect\(", text):
            if m.group(0).startswith("FaceStore(") and "readonly=True" in m.group(1):
                continue
            found.append(f"{path.relative_to(root)}: {m.group(0)}")
    assert found == []
def _unit_faces(store: FaceStore, key: str, n: int, dim: int = 8) -> list[int]:
    run = store.begin_run(key, "m", "/p", {}, {})
    image = store.image_id(f"/p/{key}.jpg", 10, 1)
    x = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    r = result(image, n, dim)
    r.embeddings = x / np.linalg.norm(x, axis=1, keepdims=True)
    store.save_chunk(run, key, "m", [r])
    return [row[0] for row in store.db.execute("SELECT id FROM faces WHERE pipeline_key = ? "
                                               "ORDER BY id", (key,))]


def test_stored_embeddings_are_checked_without_reading_the_faces(tmp_path, monkeypatch):
    """A run's check before it writes: the embedding column alone, every stored face of the key;
    a changed value, a cut blob or text in its place is damage, the lowest face id named."""
    from facedist.errors import DatabaseDamaged

    s = FaceStore(tmp_path)
    ids = _unit_faces(s, "k", 12)
    other = _unit_faces(s, "other", 3)
    monkeypatch.setattr(FaceStore, "faces", None)  # not the whole faces: only what is checked
    s.check_embeddings("k", "OUT")
    damage = {ids[7]: np.full(8, 3, np.float32).tobytes(),  # values changed: length 8.5
              ids[4]: b"\x01" * 30,  # cut: no whole number of float32
              ids[9]: "text in place of bytes",
              other[0]: np.full(8, np.nan, np.float32).tobytes()}
    with s.db:
        s.db.executemany("UPDATE faces SET embedding = ? WHERE id = ?",
                         [(v, k) for k, v in damage.items()])
    with pytest.raises(DatabaseDamaged, match=rf"^OUT: .* face {ids[4]} \(/p/k.jpg\) is not an "
                                              r"embedding .*, and 2 more face\(s\)"):
        s.check_embeddings("k", "OUT")
    with pytest.raises(DatabaseDamaged, match=rf"face {other[0]} .* is not finite;"):
        s.check_embeddings("other", "OUT")


def test_people_carried_to_another_embedding_of_the_same_faces(tmp_path):
    """An output embedded otherwise (another model, other views): the faces found again under
    the new key take over the people, names, pins, ignores and settled
    questions of the faces at the same place; the undo history, naming the old faces, goes."""
    s = FaceStore(tmp_path)
    old, new = "det|m|views2", "det|m|views4"
    run = s.begin_run(old, "m", "/p", {}, {})
    a, b = s.image_id("/p/a.jpg", 10, 1), s.image_id("/p/b.jpg", 10, 1)
    s.save_chunk(run, old, "m", [result(a, 2), result(b, 1)])
    s.save_chunk(run, new, "m", [result(a, 2), result(b, 1)])
    o, n = s.faces(old), s.faces(new)
    ana = s.new_person(old)
    s.set_people(old, [(int(o.face_ids[0]), ana), (int(o.face_ids[1]), ana)])
    s.name_person(ana, "Ana")
    s.pin_people([ana])
    s.ignore_faces(old, [int(o.face_ids[2])])
    s.settle(old, f"face:{o.face_ids[1]}:{ana}", "yes")
    s.log_answer(old, "who:1", "no", {})
    assert s.carry_people(old, new) == 3
    people = s.face_people(n.face_ids)
    assert people == {int(n.face_ids[0]): (ana, 1), int(n.face_ids[1]): (ana, 1)}
    assert s.person_names(new) == {ana: "Ana"} and not s.has_people(old)
    assert s.ignored(new) == {int(n.face_ids[2])}
    assert s.settled(new) == {f"face:{n.face_ids[1]}:{ana}", "who:1"} and s.answers(new) == 0
