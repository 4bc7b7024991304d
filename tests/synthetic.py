"""A generated output folder, as a finished run would leave it, without running any model: photos
of coloured square "faces" on a grid, embeddings drawn around one centre per person, and the
store, people, perf/ files and CSVs written through facedist's own functions. Used by the report
tests (any size, in seconds) and bench/report_scale.py."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facedist.config import Settings
from facedist.models import get_spec
from facedist.monitor import Monitor
from facedist.people import assign_people, suggest_threshold
from facedist.report import write_results, write_threshold
from facedist.compare import compare
from facedist.store import FaceStore, ImageResult

KEY = "synthetic|test"
# Names a report must show as text, and link to, whatever they hold.
HOSTILE_PHOTOS = ["<img src=x onerror=alert(1)>.jpg", "a b#c%20d?e.jpg", "ünï cødé 日本.jpg",
                  "it's \"quoted\" & more.jpg"]
HOSTILE_PERSON = "</script><script>alert(1)</script>"
CELL = 96  # pixels of one face cell in a generated photo


def face_colour(i: int) -> tuple[int, int, int]:
    """The colour of generated face i: distinct enough to tell thumbnails apart."""
    rng = np.random.default_rng(i)
    return tuple(int(v) for v in rng.integers(30, 226, 3))


def make_photo(path: Path, first_face: int, n_faces: int, cols: int = 5,
               orientation: int | None = None) -> np.ndarray:
    """A photo of n_faces squares (face i coloured face_colour(i)); returns the boxes as seen
    upright. With an EXIF `orientation`, the file holds the pixels turned the other way, so that
    only a reader applying EXIF sees the squares where the boxes say."""
    rows = (n_faces + cols - 1) // cols
    upright = np.full((rows * CELL, cols * CELL, 3), 235, np.uint8)
    boxes = []
    for k in range(n_faces):
        y, x = divmod(k, cols)
        x1, y1 = x * CELL + 16, y * CELL + 16
        upright[y1:y1 + 64, x1:x1 + 64] = face_colour(first_face + k)
        boxes.append((x1, y1, x1 + 64, y1 + 64))
    img = Image.fromarray(upright)
    exif = None
    if orientation == 6:  # stored turned 90° left; a viewer turns it right
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=90, **({"exif": exif} if exif is not None else {}))
    return np.array(boxes, np.float32)


def synthetic_output(out: Path, photos: Path, n_photos: int, faces_per_photo: int, n_people: int,
                     names: dict[int, str] | None = None, photo_names: list[str] = (),
                     bad_files: dict[str, bytes] | None = None, dim: int = 128,
                     seed: int = 0) -> dict:
    """Photos under `photos` (the first ones named by `photo_names`, the rest photo-N.jpg) and a
    finished run of them in `out`; face j of the whole set belongs to person j % n_people, and
    the person of face row r is named names[r] for each r given. `bad_files` are written as
    they are and recorded skipped. Returns {"paths", "faces", "people"}."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    settings = Settings(photos=photos, out=out, progress=False)
    store = FaceStore(out)
    run_id = store.begin_run(KEY, settings.model, str(photos.resolve()), settings.to_dict(),
                             {"facedist": "test", "numpy": np.__version__})
    monitor = Monitor(0.02).start()
    results, paths, face = [], [], 0
    photos.mkdir(parents=True, exist_ok=True)
    with monitor.stage("decode"):
        for n in range(n_photos):
            name = photo_names[n] if n < len(photo_names) else f"photo-{n}.jpg"
            path = photos / name
            boxes = make_photo(path, face, faces_per_photo, orientation=6 if n == 1 else None)
            x = centres[np.arange(face, face + faces_per_photo) % n_people]
            x = x + rng.normal(scale=0.15 / np.sqrt(dim), size=x.shape)
            x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
            st = path.stat()
            results.append(ImageResult(
                store.image_id(str(path), st.st_size, st.st_mtime_ns), CELL * 5, CELL * 4,
                hashlib.sha256(path.read_bytes()).hexdigest(), boxes,
                np.full(faces_per_photo, 0.99, np.float32),
                np.zeros((faces_per_photo, 5, 2), np.float32), x))
            paths.append(str(path))
            face += faces_per_photo
            if len(results) == 100:
                store.save_chunk(run_id, KEY, settings.model, results)
                results = []
        for name, data in (bad_files or {}).items():
            path = photos / name
            path.write_bytes(data)
            st = path.stat()
            results.append(ImageResult(store.image_id(str(path), st.st_size, st.st_mtime_ns),
                                       reason="not a recognised image format"))
            paths.append(str(path))
        store.save_chunk(run_id, KEY, settings.model, results)
    with monitor.stage("compare"):
        table = store.faces(KEY)
        table.quality[:] = 1.0  # generated faces stand for clear ones: every face may shape people
        store.set_quality(table.face_ids, table.quality)
        result = compare(table.embeddings, 10, 0.4)
    with monitor.stage("people"):
        person = assign_people(store, KEY, table.face_ids, table.embeddings, 0.6)
        for row, name in (names or {}).items():
            store.name_person(int(person[row]), name)
        spec = get_spec(settings.model)
        write_results(out, table, result, person, store.person_names(KEY), 0.0,
                      np.zeros(len(table), bool), spec.people_threshold,
                      spec.people_single_threshold)
        write_threshold(out / "perf", result.neighbor_dist, 0.4,
                        suggest_threshold(result.neighbor_dist))
    time.sleep(0.05)
    monitor.stop()
    perf = monitor.write(out / "perf", images=n_photos, faces=len(table))
    store.finish_run(run_id, {**perf, "found": len(paths), "reused": 0,
                              "skipped": {"not a recognised image format": len(bad_files or {})}},
                     seen=paths)
    store.close()
    return {"paths": paths, "faces": len(table), "people": len(set(person.tolist()))}


def review_output(out: Path, photos: Path, pairs: int = 3, faces: int = 3,
                  names: dict[int, str] | None = None) -> dict:
    """A generated output (synthetic_output) whose people come in `pairs` pairs, the two of a
    pair exactly the people threshold apart (the review queue's most open question) and every
    pair far from the others; `faces` faces per person. `names`: person index -> name.
    Returns {"people": [person id per index, pairs first side first], ...}."""
    import sqlite3

    from facedist.models import get_spec

    made = synthetic_output(out, photos, n_photos=2 * pairs * faces, faces_per_photo=1,
                            n_people=2 * pairs)
    cut = get_spec(Settings().model).people_threshold
    theta = 2 * np.arcsin(cut / 2)  # the chord between the two sides is the cut
    db = sqlite3.connect(out / "facedist.sqlite")
    groups: dict[int, list[int]] = {}
    for face, person in db.execute("SELECT face_id, person_id FROM face_people ORDER BY face_id"):
        groups.setdefault(person, []).append(face)
    people = sorted(groups)
    with db:
        for g, person in enumerate(people):
            v = np.zeros(128, np.float32)
            k, side = divmod(g, 2)
            v[2 * k] = np.cos(theta) if side else 1.0
            v[2 * k + 1] = np.sin(theta) if side else 0.0
            for face in groups[person]:
                db.execute("UPDATE faces SET embedding = ? WHERE id = ?", (v.tobytes(), face))
        for g, name in (names or {}).items():
            db.execute("UPDATE people SET name = ? WHERE id = ?", (name, people[g]))
    db.close()
    return {**made, "people": people}


def review_album(out: Path, photos: Path) -> dict:
    """A small album for the review's whole course (test_review_browser.py): person A, 6 faces
    alike; person B, 3 faces of which one is someone else's (1.3 people cuts from the other
    two: a mixed small group); 4 one-face strangers far from everyone. Returns {"A", "B",
    "odd" (the face that is not B), "strangers" (their face ids)}."""
    import sqlite3

    from facedist.models import get_spec

    synthetic_output(out, photos, n_photos=13, faces_per_photo=1, n_people=6)
    cut = get_spec(Settings().model).people_threshold
    db = sqlite3.connect(out / "facedist.sqlite")
    faces = [f for (f,) in db.execute("SELECT id FROM faces ORDER BY id")]
    people = sorted({p for (p,) in db.execute("SELECT person_id FROM face_people")})
    theta = 2 * np.arcsin(1.3 * cut / 2)

    def axis(k: int, angle: float = 0.0) -> bytes:
        v = np.zeros(128, np.float32)
        v[2 * k], v[2 * k + 1] = np.cos(angle), np.sin(angle)
        return v.tobytes()

    plan = ([(people[0], axis(0))] * 6 + [(people[1], axis(1))] * 2
            + [(people[1], axis(1, theta))] + [(people[2 + k], axis(2 + k)) for k in range(4)])
    with db:
        for face, (person, vector) in zip(faces, plan):
            db.execute("UPDATE faces SET embedding = ? WHERE id = ?", (vector, face))
            db.execute("UPDATE face_people SET person_id = ? WHERE face_id = ?", (person, face))
    db.close()
    return {"A": people[0], "B": people[1], "odd": faces[8], "strangers": faces[9:]}
