"""An older output's relative photo paths: made absolute once by a writer, seen absolute by a
reader, with every face, person and name kept."""
import os
import sqlite3

import numpy as np

from facedist.store import DB_NAME, FaceStore, ImageResult


def old_output(out, typed="photos", root="/somewhere/photos", paths=("photos/a.jpg", "photos/sub/b.jpg")):
    """An output as facedist made it before paths were stored absolute: PHOTOS typed relative,
    each path as found under it; one named person."""
    store = FaceStore(out)
    run = store.begin_run("key", "m", root, {"photos": typed}, {})
    ids = [store.image_id(p, 10, 20) for p in paths]
    store.save_chunk(run, "key", "m", [
        ImageResult(i, 100, 100, f"sha{i}", np.zeros((1, 4), np.float32), np.ones(1, np.float32),
                    np.zeros((1, 5, 2), np.float32), np.eye(1, 4, dtype=np.float32))
        for i in ids])
    store.finish_run(run, {}, seen=list(paths))
    faces = store.faces("key")
    person = store.new_person("key")
    store.set_people("key", [(int(f), person) for f in faces.face_ids])
    store.name_person(person, "Ada")
    store.pin_people([person])
    store.close()
    return {p: int(f) for p, f in zip(faces.paths, faces.face_ids)}, person


def stored_paths(out):
    db = sqlite3.connect(out / DB_NAME)
    try:
        return sorted((r[0] for r in db.execute("SELECT path FROM images")), key=os.fsencode)
    finally:
        db.close()


def test_a_reader_sees_an_older_outputs_paths_absolute_and_writes_nothing(tmp_path):
    faces, _ = old_output(tmp_path)
    reader = FaceStore(tmp_path, readonly=True)
    try:
        table = reader.faces("key")
        assert table.paths == ["/somewhere/photos/a.jpg", "/somewhere/photos/sub/b.jpg"]
        assert table.face_ids.tolist() == [faces["photos/a.jpg"], faces["photos/sub/b.jpg"]]
        assert sorted(reader.image_records()) == table.paths
        assert sorted(reader.image_sizes()) == table.paths
    finally:
        reader.close()
    assert stored_paths(tmp_path) == ["photos/a.jpg", "photos/sub/b.jpg"]  # as it was


def test_a_writer_makes_them_absolute_once_keeping_faces_people_names_and_pins(tmp_path):
    faces, person = old_output(tmp_path)
    FaceStore(tmp_path).close()
    assert stored_paths(tmp_path) == ["/somewhere/photos/a.jpg", "/somewhere/photos/sub/b.jpg"]
    store = FaceStore(tmp_path)
    try:
        table = store.faces("key")
        assert dict(zip(table.paths, table.face_ids.tolist())) == {
            "/somewhere/photos/a.jpg": faces["photos/a.jpg"],
            "/somewhere/photos/sub/b.jpg": faces["photos/sub/b.jpg"]}
        assert store.person_names("key") == {person: "Ada"}
        assert store.face_people(table.face_ids) == {f: (person, 1) for f in table.face_ids.tolist()}
    finally:
        store.close()


def test_a_root_typed_as_dot_and_a_non_utf8_name(tmp_path):
    odd = os.fsdecode(b"caf\xe9.jpg")
    old_output(tmp_path, typed=".", root="/here", paths=("a.jpg", f"sub/{odd}"))
    reader = FaceStore(tmp_path, readonly=True)
    try:
        assert reader.faces("key").paths == ["/here/a.jpg", f"/here/sub/{odd}"]
    finally:
        reader.close()
    FaceStore(tmp_path).close()
    assert stored_paths(tmp_path) == ["/here/a.jpg", b"/here/sub/caf\xe9.jpg"]  # bytes kept


def test_a_clash_keeps_the_row_with_results(tmp_path):
    faces, _ = old_output(tmp_path)
    db = sqlite3.connect(tmp_path / DB_NAME)
    with db:  # the same photo, found since under its absolute path, not processed yet
        db.execute("INSERT INTO images (path, size, mtime_ns) VALUES ('/somewhere/photos/a.jpg', 1, 1)")
    db.close()
    FaceStore(tmp_path).close()
    store = FaceStore(tmp_path)
    try:
        table = store.faces("key")
        assert table.paths == ["/somewhere/photos/a.jpg", "/somewhere/photos/sub/b.jpg"]
        assert table.face_ids.tolist() == [faces["photos/a.jpg"], faces["photos/sub/b.jpg"]]
    finally:
        store.close()
    assert len(stored_paths(tmp_path)) == 2
