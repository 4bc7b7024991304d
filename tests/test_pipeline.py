"""End-to-end runs of the pipeline on real photos (marked slow; CI runs them)."""
import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import HUMANS, LABELED, facedist_main, tree_state
from facedist import compute, memory, pipeline
from facedist.config import Settings

pytestmark = pytest.mark.slow


def settings(photos, out, **kw):
    s = Settings(photos=Path(photos), out=Path(out), progress=False, device="cpu")
    return s.update(kw)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_identity_separation_on_labeled_people(tmp_path):
    """Every same-person distance is below every different-person distance (largest face)."""
    s = pipeline.run(settings(LABELED / "people", tmp_path, faces="largest"))
    assert s.faces == 14 and s.warnings == 0
    faces = read_csv(tmp_path / "faces.csv")
    person = np.array([Path(f["path"]).parent.name for f in faces])
    d = np.load(tmp_path / "distances.npy")
    iu = np.triu_indices(len(person), 1)
    same = (person[:, None] == person[None, :])[iu]
    dist = d[iu]
    assert dist[same].max() < dist[~same].min()
    # ROC AUC: share of (same, different) pairs ordered correctly
    auc = (dist[same][:, None] < dist[~same][None, :]).mean()
    print(f"identity: max same {dist[same].max():.3f}, min different {dist[~same].min():.3f}, AUC {auc:.3f}")
    assert auc == 1.0
    pairs = read_csv(tmp_path / "pairs.csv")  # the 0.6 default threshold separates them too
    assert pairs and all(Path(p["path_a"]).parent == Path(p["path_b"]).parent for p in pairs)


def test_group_photos_find_every_face(tmp_path):
    pipeline.run(settings(LABELED / "groups", tmp_path))
    counts = {}
    for f in read_csv(tmp_path / "faces.csv"):
        counts[Path(f["path"]).name] = counts.get(Path(f["path"]).name, 0) + 1
    # obama_and_biden shows a child's face too, low in the frame, and a fourth "face" that the
    # reference MTCNN (--exact) reports as well: a blurred shoulder at the bottom edge
    assert counts == {"two_people.jpg": 2, "kit_with_rose.jpg": 2, "obama_and_biden.jpg": 4}


def make_bad_tree(root: Path) -> None:
    root.mkdir()
    shutil.copy(LABELED / "people" / "biden" / "biden_1.jpg", root / "good.jpg")
    (root / "zero.jpg").write_bytes(b"")
    data = (LABELED / "people" / "obama" / "obama_1.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "random.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "dir.jpg").mkdir()
    os.symlink(root / "gone.jpg", root / "unreadable.jpg")
    unreadable = root / "noperm.png"
    unreadable.write_bytes(b"\x89PNG not really")
    unreadable.chmod(0)
    from test_decode import _png_declaring

    (root / "huge.png").write_bytes(_png_declaring(200_000, 200_000))


def test_bad_input_is_skipped_with_reasons_and_never_touched(tmp_path):
    photos = tmp_path / "photos"
    make_bad_tree(photos)
    before = tree_state(photos)
    out = tmp_path / "out"
    code, stdout, stderr = facedist_main("run", photos, "--out", out, "--no-progress")
    assert code == 0, stderr
    assert tree_state(photos) == before
    for reason in ["empty file", "cannot decode", "not a recognised image format",
                   "directory named like an image", "broken symbolic link", "exceeds the pixel limit"]:
        assert reason in stdout + stderr, reason
    assert "warning" in stderr
    db = sqlite3.connect(out / "facedist.sqlite")
    skipped = dict(db.execute("SELECT i.path, r.reason FROM results r JOIN images i ON i.id = r.image_id "
                              "WHERE r.status = 'skipped'").fetchall())
    assert {Path(p).name for p in skipped} >= {"zero.jpg", "truncated.jpg", "random.jpg", "dir.jpg",
                                               "unreadable.jpg", "huge.png", "noperm.png"}
    assert all("\n" not in r for r in skipped.values())
    assert len(read_csv(out / "faces.csv")) == 1


def test_rerun_embeds_only_new_or_changed_files(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ["obama_1.jpg", "obama_2.jpg"]:
        shutil.copy(LABELED / "people" / "obama" / name, photos / name)
    first = pipeline.run(settings(photos, tmp_path / "out"))
    assert first.processed == 2
    shutil.copy(LABELED / "people" / "biden" / "biden_1.jpg", photos / "new.jpg")
    os.utime(photos / "obama_1.jpg")  # touched, content unchanged
    second = pipeline.run(settings(photos, tmp_path / "out"))
    assert (second.processed, second.reused) == (1, 2)
    shutil.copy(LABELED / "people" / "biden" / "biden_2.jpg", photos / "obama_2.jpg")  # changed
    third = pipeline.run(settings(photos, tmp_path / "out"))
    assert (third.processed, third.reused) == (1, 2) and third.faces >= 3
    # another model: computed afresh, its faces stored apart
    other = pipeline.run(settings(photos, tmp_path / "out", model="facenet-vggface2", weights="synthetic"))
    assert other.processed == 3
    db = sqlite3.connect(tmp_path / "out" / "facedist.sqlite")
    per_model = dict(db.execute("SELECT model, COUNT(*) FROM faces GROUP BY model").fetchall())
    assert per_model == {"dlib-resnet": third.faces, "facenet-vggface2": third.faces}


def test_identical_files_are_processed_once_and_share_faces(tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    group = LABELED / "groups" / "two_people.jpg"
    for dest in ["a.jpg", "b.jpg", "sub/c.jpg"]:
        shutil.copy(group, photos / dest)
    data = group.read_bytes()
    for dest in ["cut.jpg", "cut_too.jpg"]:
        (photos / dest).write_bytes(data[: len(data) // 3])
    before = tree_state(photos)
    run = pipeline.run(settings(photos, tmp_path / "out"))
    assert tree_state(photos) == before
    assert (run.processed, run.copies, run.images) == (1, 3, 5)  # a, and one truncated file
    faces = read_csv(tmp_path / "out" / "faces.csv")
    by_file = {}
    for row in faces:
        by_file.setdefault(Path(row["path"]).name, []).append((row["x1"], row["y2"], row["person"]))
    assert set(by_file) == {"a.jpg", "b.jpg", "c.jpg"} and len(by_file["a.jpg"]) == 2
    assert by_file["a.jpg"] == by_file["b.jpg"] == by_file["c.jpg"]
    assert sum(run.skipped.values()) == 2 and len(run.skipped) == 1  # both cut files, one reason
    again = pipeline.run(settings(photos, tmp_path / "out"))
    assert (again.processed, again.reused, again.copies) == (0, 5, 0)


def test_sigkill_at_any_moment_resumes_without_loss_or_duplicates(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = sorted(os.listdir(HUMANS))[:24]
    for name in names:
        os.symlink(HUMANS / name, photos / name)
    out = tmp_path / "out"

    def run_args(dest):
        return ["run", str(photos), "--out", str(dest), "--no-progress", "--faces", "all"]

    proc = subprocess.Popen([sys.executable, "-m", "facedist.cli", *run_args(out), "--config",
                             str(_chunk_config(tmp_path))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db_path = out / "facedist.sqlite"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and done < 8:
        time.sleep(0.2)
        if db_path.exists():
            try:
                done = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < done < len(names), "the run should be killed part way"
    code, _, err_resumed = facedist_main(*run_args(out))  # the next run, and the reference, here
    assert code == 0, err_resumed
    clean_out = tmp_path / "clean"
    code, _, err = facedist_main(*run_args(clean_out))
    assert code == 0, err

    def faces(path):
        db = sqlite3.connect(path / "facedist.sqlite")
        return sorted(db.execute("SELECT i.path, f.face_index, round(f.x1), round(f.y1) FROM faces f "
                                 "JOIN images i ON i.id = f.image_id").fetchall())

    got, want = faces(out), faces(clean_out)
    assert got == want and len(got) == len(set(got))
    assert "unchanged" in err_resumed  # the run's summary is a message (stderr)


def _chunk_config(tmp_path):
    cfg = tmp_path / "small_chunks.yaml"
    cfg.write_text("chunk-images: 4\n")
    return cfg


def test_memory_during_detect_and_embed_does_not_grow_with_images(tmp_path):
    """One run over 12x ten photos: peak RSS in detect and embed over its last two thirds stays
    within a small margin of the peak over its first third (~40 photos, by then warm: the first
    few dozen images warm the allocator and torch's per-shape caches up, 10 photos peak ~15%
    lower). What a photo leaves behind would add up over the 80 photos after."""
    from facedist.monitor import read_timeline

    photos = tmp_path / "photos"
    photos.mkdir()
    for rep in range(12):
        for name in sorted(os.listdir(HUMANS))[:10]:
            # distinct bytes per copy (a trailing byte decoders ignore), or they would be
            # recognised as copies and not processed again
            (photos / f"{rep}_{name}").write_bytes((HUMANS / name).read_bytes() + b"\0" * rep)
    out = tmp_path / "out"
    code = ("from pathlib import Path; from facedist import pipeline; from facedist.config import Settings;"
            f"pipeline.run(Settings(photos=Path({str(photos)!r}), out=Path({str(out)!r}), progress=False,"
            " chunk_images=3))")
    subprocess.run([sys.executable, "-c", code], check=True)  # a fresh process: its RSS is the run's
    rows, summary = read_timeline(out / "perf")
    assert summary["stages"]["detect"]["images"] == 120
    working = [(float(r["t"]), float(r["rss_mb"])) for r in rows if r["stage"] in ("detect", "embed")]
    third = working[0][0] + (working[-1][0] - working[0][0]) / 3
    early = max(rss for t, rss in working if t <= third)
    late = max(rss for t, rss in working if t > third)
    print(f"peak RSS MB during detect/embed: first third {early:.0f}, then {late:.0f}")
    assert late < early * 1.10 + 30


def test_detect_workers_return_each_image_its_own_faces(tmp_path):
    """Images detected in parallel (one per core, largest first) come back in input order, with
    the faces a plain one-by-one detection finds."""
    import torch

    from facedist.decode import decode_image

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pipe = compute.FacePipeline(settings(LABELED, tmp_path))
        assert pipe.detect_workers == 2
        paths = sorted((LABELED / "groups").iterdir())[:3] + sorted(HUMANS.iterdir())[:5]
        images = [decode_image(p, 10**9, pipe.settings.detect.decode_max_side) for p in paths]
        parallel = pipe.start_detect(images)()
        one_by_one = [pipe.detector.detect(im.pixels, im.scale) for im in images]
    finally:
        torch.set_num_threads(threads)
    assert [len(f) for f in parallel] == [len(f) for f in one_by_one]
    assert sum(map(len, parallel)) >= 8
    for mine, ref in zip(parallel, one_by_one):
        for a, b in zip(mine, ref):
            assert np.allclose(a.box, b.box, atol=0.5)


def test_no_face_anywhere_is_an_ordinary_answer(tmp_path):
    """An empty folder, or photos without faces: exit 0, every table with its header only."""
    from PIL import Image

    from facedist.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    blank = tmp_path / "blank"
    blank.mkdir()
    Image.new("RGB", (200, 150), (120, 130, 140)).save(blank / "wall.jpg")
    for photos in (empty, blank):
        out = tmp_path / ("out-" + photos.name)
        assert main(["run", str(photos), "--out", str(out), "--no-progress"]) == 0
        for name in ("faces", "people", "lookalikes", "neighbors", "pairs"):
            rows = (out / f"{name}.csv").read_text().splitlines()
            assert len(rows) == 1 and rows[0].count(",") >= 4, (photos, name)
        assert main(["people", str(out)]) == 0
        assert main(["lookalikes", str(out)]) == 0


def test_output_folder_may_not_be_or_hold_the_photos(tmp_path, capsys):
    from facedist.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(LABELED / "people" / "biden" / "biden_1.jpg", photos / "a.jpg")
    before = tree_state(photos)
    for out in (photos, tmp_path):
        assert main(["run", str(photos), "--out", str(out), "--no-progress"]) == 2
        assert "is the photo folder or holds it" in capsys.readouterr().err
    assert tree_state(photos) == before and not (tmp_path / "facedist.sqlite").exists()
    assert main(["run", str(photos), "--out", str(photos / "out"), "--no-progress"]) == 0  # inside: fine


@pytest.fixture(scope="module")
def finished_output(tmp_path_factory):
    """Three photos and a finished run of them, for each test to copy."""
    root = tmp_path_factory.mktemp("finished")
    photos = root / "photos"
    photos.mkdir()
    for person, name in [("obama", "obama_1.jpg"), ("obama", "obama_2.jpg"), ("biden", "biden_1.jpg")]:
        shutil.copy(LABELED / "people" / person / name, photos / name)
    code, _, err = facedist_main("run", photos, "--out", root / "out", "-q", "--views", "1")
    assert code == 0, err
    return photos, root / "out"


def _database_as_it_is(out: Path) -> tuple[str, list[str]]:
    """The database file's SHA-256 and every row of every table (the file alone: no WAL)."""
    import hashlib

    db = out / "facedist.sqlite"
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    con = sqlite3.connect(db)
    try:
        return hashlib.sha256(db.read_bytes()).hexdigest(), list(con.iterdump())
    finally:
        con.close()


@pytest.mark.parametrize("spelling", ["as-before", "relative", "symlink", "older-schema"])
def test_a_run_refusing_a_damaged_embedding_writes_nothing(tmp_path, finished_output, monkeypatch,
                                                           spelling):
    """Bytes changed inside one stored embedding (SQLite's checks pass): the run refuses the
    output before it writes anything: no run recorded, no image nor face added (with the photos
    spelled another way, every photo would otherwise be new), no table rewritten, and an output
    of an older schema (no faces.quality) not upgraded."""
    photos, finished = finished_output
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    con = sqlite3.connect(out / "facedist.sqlite")
    face, blob = con.execute("SELECT id, embedding FROM faces ORDER BY id DESC LIMIT 1").fetchone()
    x = np.frombuffer(blob, np.float32).copy()
    x[:4] = 1e35
    with con:
        con.execute("UPDATE faces SET embedding = ? WHERE id = ?", (x.tobytes(), face))
    if spelling == "older-schema":
        con.execute("ALTER TABLE faces DROP COLUMN quality")
    con.close()  # the last connection: its WAL is checkpointed into the file and removed
    monkeypatch.chdir(tmp_path)
    if spelling == "relative":
        given = Path(os.path.relpath(photos, tmp_path))
    elif spelling == "symlink":
        given = tmp_path / "link"
        given.symlink_to(photos)
    else:
        given = photos
    before = _database_as_it_is(out)
    files = {p: v for p, v in tree_state(out).items() if not p.endswith(("facedist.lock", "-shm"))}
    code, _, err = facedist_main("run", given, "--out", out, "--views", "1", "--no-progress")
    lines = err.strip().splitlines()
    assert code == 5 and len(lines) == 1 and f"face {face} " in lines[0], err
    assert "damaged" in lines[0] and "leaves it as it is" in lines[0]
    assert _database_as_it_is(out) == before
    assert {p: v for p, v in tree_state(out).items()
            if not p.endswith(("facedist.lock", "-shm", "-wal"))} == files


def test_outputs_at_scale_parquet_capped_pairs_and_readers(tmp_path, monkeypatch):
    """What a run writes past CSV_MAX_FACES faces, with approximate neighbours and a pairs cap:
    Parquet files that the API reads in pieces, and a summary that says what was cut."""
    import facedist.report as report
    from facedist.api import open_db
    from facedist.models import get_spec
    from facedist.monitor import Monitor
    from facedist.pipeline import RunSummary, compare_and_group
    from facedist.store import FaceStore
    from synthetic import synthetic_output

    out = tmp_path / "out"
    synthetic_output(out, tmp_path / "photos", n_photos=30, faces_per_photo=10, n_people=100)
    (out / "neighbors.csv").write_text("stale")
    monkeypatch.setattr(report, "CSV_MAX_FACES", 100)
    db = open_db(out)
    # generated faces have no landmarks to score: no quality gate here
    db.settings.update({"exact_neighbors": False, "max_pairs": 50, "k": 5, "min_quality": 0})
    db.settings.out = out
    table = db.faces()
    summary = RunSummary(out=out)
    writer = FaceStore(out)  # the reader's own connection is read-only
    compare_and_group(db.settings, get_spec(db.settings.model), writer, db.pipeline_key,
                      table, Monitor(enabled=False), summary)
    writer.close()
    assert summary.approximate and summary.pairs == 50 < summary.pairs_found
    assert 90 <= summary.people <= 110  # 3 faces a person: other people among the neighbours
    assert not (out / "neighbors.csv").exists() and not (out / "pairs.csv").exists()
    text = report.format_summary(summary)
    assert "the 50 closest of" in text and "approximate search" in text
    some = table.face_ids[[3, 200]]
    got = db.neighbors(some)
    assert sorted(set(got["face_id"].tolist())) == sorted(some.tolist()) and len(got["rank"]) == 10
    batches = list(db.pairs(batch_rows=16))
    assert [len(b["distance"]) for b in batches] == [16, 16, 16, 2]
    dist = np.concatenate([b["distance"] for b in batches])
    assert np.all(np.diff(dist) >= 0) and dist.max() < 0.4
    lookalikes = (out / "lookalikes.csv").read_text().splitlines()
    assert len(lookalikes) > 10  # from the neighbours, not from an N x N pass


def test_a_run_on_the_gpu_path_gives_the_cpu_runs_faces(tmp_path):
    """The GPU's engine path (whole chunks detected at once by detect_many, aligned on a pool),
    run on CPU tensors: the same faces and embeddings as the default CPU run, and results
    stored under the same key (fp32 answers do not depend on the device)."""
    import torch

    from facedist.api import FaceDB
    from facedist.backend import Backend
    from facedist.engines.local import LocalEngine

    photos = tmp_path / "photos"
    shutil.copytree(LABELED / "groups", photos / "groups")
    shutil.copytree(LABELED / "people" / "obama", photos / "obama")
    cpu = pipeline.run(settings(photos, tmp_path / "cpu"))
    s = settings(photos, tmp_path / "gpu-path", chunk_images=5)
    batched = compute.FacePipeline(s, Backend(torch.device("cpu"), batched_detection=True))
    assert batched._align_pool is not None
    engine = LocalEngine(s, batched)
    summary = pipeline.run(s, pipeline.Monitor(enabled=False), engine)
    engine.close()
    assert summary.faces == cpu.faces >= 8
    a, b = FaceDB(tmp_path / "cpu").faces(), FaceDB(tmp_path / "gpu-path").faces()
    assert list(a.paths) == list(b.paths)
    assert np.abs(a.boxes - b.boxes).max() < 0.05
    assert ((a.embeddings * b.embeddings).sum(1) >= 0.99999).all()


_FAULTS_SCRIPT = """
import resource, sys
import torch
from facedist import compute, memory, pipeline
if sys.argv[1] == "reuse":
    memory.reuse_large_buffers()
for n in range(30):  # a big P-Net level's map: 48 MB, written, freed, again
    if n == 20:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(12_000_000)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(memory._LIBC is None, reason="glibc's mallopt: not this C library")
def test_large_buffers_are_reused_not_mapped_afresh():
    # glibc maps buffers over 32 MB afresh at each allocation (its dynamic threshold stops
    # there): ~11,700 page faults each. Kept in the heap, they fault until the heap holds a free
    # chunk that fits one (torch's aligned allocations need a little more than a freed one:
    # 2 to 9 allocations here, varying from run to run), then never: the last 10 are counted
    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], check=True,
                                       capture_output=True, text=True).stdout)
              for mode in ("default", "reuse")}
    assert faults["default"] > 100_000 and faults["reuse"] < 2_000, faults


def two_people(photos: Path, sub: str = "") -> Path:
    """obama in photos/a.jpg and biden in photos/SUB/b.jpg."""
    (photos / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(LABELED / "people" / "obama" / "obama_1.jpg", photos / "a.jpg")
    shutil.copy(LABELED / "people" / "biden" / "biden_1.jpg", photos / sub / "b.jpg")
    return photos


def stored(out: Path) -> dict:
    """face id -> (stored path, person id, person's name)."""
    db = sqlite3.connect(out / "facedist.sqlite")
    try:
        return {f: (os.fsdecode(p), person, name) for f, p, person, name in db.execute(
            "SELECT f.id, i.path, fp.person_id, pe.name FROM faces f JOIN images i ON "
            "i.id = f.image_id LEFT JOIN face_people fp ON fp.face_id = f.id LEFT JOIN people pe "
            "ON pe.id = fp.person_id")}
    finally:
        db.close()


def test_a_folder_that_cannot_be_listed_is_told_counted_and_the_rest_processed(tmp_path, monkeypatch):
    from test_discover import make_unlistable

    photos = two_people(tmp_path / "photos", "private")
    make_unlistable(photos / "private", monkeypatch)
    try:
        code, out, err = facedist_main("run", photos, "--out", tmp_path / "out", "--no-progress",
                                       "--views", "1", "--json")
    finally:
        (photos / "private").chmod(0o755)
    assert code == 0, err
    assert [line for line in err.splitlines() if "private" in line] == [
        f"facedist: {photos / 'private'}: cannot list this folder (Permission denied); "
        f"its photos are left out"]
    import json

    summary = json.loads(out)
    assert summary["unreadable_folders"] == {str(photos / "private"): "Permission denied"}
    assert summary["images"] == 1 and summary["faces"] >= 1  # a.jpg, processed all the same
    assert {Path(r["path"]).name for r in read_csv(tmp_path / "out" / "faces.csv")} == {"a.jpg"}
    from facedist.report import format_summary

    summary_line = format_summary(pipeline.RunSummary(
        out=tmp_path, images=1, unreadable_folders={"p/private": "Permission denied"})).splitlines()
    assert "0 skipped, 1 folder unreadable" in summary_line[0]
    assert "  unreadable folder, its photos left out: p/private (Permission denied)" in summary_line


def test_photos_that_cannot_be_listed_is_refused_before_any_work(tmp_path, monkeypatch):
    from test_discover import make_unlistable

    photos = two_people(tmp_path / "photos")
    make_unlistable(photos, monkeypatch)
    try:
        code, out, err = facedist_main("run", photos, "--out", tmp_path / "out", "--no-progress")
    finally:
        photos.chmod(0o755)
    assert (code, out) == (2, "")
    assert err.startswith(f"facedist: {photos}: cannot list this folder (Permission denied)")
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_paths_are_stored_absolute_and_found_from_any_working_directory(tmp_path, monkeypatch):
    photos = two_people(tmp_path / "photos")
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    code, _, err = facedist_main("run", "../photos", "--out", "out", "--no-progress", "--views", "1")
    assert code == 0, err
    out = tmp_path / "here" / "out"
    assert {p for p, _, _ in stored(out).values()} == {str(photos / "a.jpg"), str(photos / "b.jpg")}
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, listed, err = facedist_main("people", "../here/out")
    assert code == 0 and len(listed.splitlines()) == 3, err  # a header and two people
    code, near, err = facedist_main("near", photos / "a.jpg", "--db", "../here/out", "-k", "1")
    assert code == 0 and str(photos / "a.jpg") in near, err
    code, _, err = facedist_main("report", "../here/out", "-q")
    assert code == 0, err
    page = (out / "report" / "people.html").read_text()
    assert "missing.svg" not in page and (photos / "a.jpg").as_uri() in (out / "report").joinpath(
        "index.html").read_text() + page + "".join(p.read_text() for p in (out / "report").glob("*.html"))


def test_an_output_with_relative_paths_keeps_its_faces_people_and_names(tmp_path, monkeypatch):
    """An output as facedist made it when paths were stored as typed: read from elsewhere as it
    is, then run again (through a symbolic link to the photos): nothing recomputed, copied or lost."""
    photos = two_people(tmp_path / "photos")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    out = tmp_path / "out"
    code, _, err = facedist_main("run", "../photos", "--out", out, "--no-progress", "--views", "1")
    assert code == 0, err
    db = sqlite3.connect(out / "facedist.sqlite")
    with db:  # the paths as typed, relative to where the run started: ../photos/a.jpg
        db.execute("UPDATE images SET path = '../photos/' || substr(path, ?) WHERE path LIKE '/%'",
                   (len(str(photos)) + 2,))
    db.close()
    before = stored(out)
    assert {p for p, _, _ in before.values()} == {"../photos/a.jpg", "../photos/b.jpg"}
    person = next(person for p, person, _ in before.values() if p.endswith("a.jpg"))
    code, _, err = facedist_main("people", out, "name", person, "Barack")  # a writer: migrates
    assert code == 0, err
    named = {f: (str(tmp_path / "photos" / Path(p).name), person_id,
                 "Barack" if person_id == person else name)
             for f, (p, person_id, name) in before.items()}
    assert stored(out) == named
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    os.symlink(photos, tmp_path / "linked")
    code, _, err = facedist_main("run", tmp_path / "linked", "--out", out, "--no-progress",
                                 "--views", "1", "--json")
    assert code == 0, err
    import json

    summary = json.loads(_)
    assert (summary["processed"], summary["copies"], summary["reused"]) == (0, 0, 2)
    assert stored(out) == {f: (str(tmp_path / "linked" / Path(p).name), person_id, name)
                           for f, (p, person_id, name) in named.items()}
    code, listed, _ = facedist_main("people", out)
    assert "Barack" in listed


@pytest.mark.slow
def test_faces_embedded_otherwise_take_over_the_people_names_and_corrections(tmp_path, caplog):
    """An output whose faces were embedded otherwise (here --views 1, then the default): the
    run says what changed, embeds every photo once again, and the people keep their names and
    the user's corrections (a pinned move, an ignored face), never mixing the two embeddings."""
    from facedist.facedb import FaceDB
    from facedist.models import pipeline_key

    photos = tmp_path / "photos"
    shutil.copytree(LABELED / "people", photos)
    out = tmp_path / "out"
    pipeline.run(settings(photos, out, views=1))
    db = FaceDB(out)
    t = db.faces()
    person = db.person_of(t)
    obama = max(db.people(), key=lambda p: p.faces).id
    db.name_person(obama, "Barack")
    loner = next(i for i in range(len(t)) if person[i] != obama)
    db.move_face(int(t.face_ids[loner]), obama)  # the user's word, against the distances
    ignored = next(i for i in range(len(t)) if person[i] not in (obama, person[loner]))
    db.ignore_face(int(t.face_ids[ignored]))
    place = lambda t, i: (t.paths[i], int(t.face_index[i]))  # noqa: E731
    places = {place(t, i) for i in range(len(t))}
    moved, set_aside = place(t, loner), place(t, ignored)
    db.close()
    with caplog.at_level("WARNING", logger="facedist"):
        summary = pipeline.run(settings(photos, out))
    assert "embedded as dlib-resnet, 1 view(s)" in caplog.text and "4 view(s)" in caplog.text
    assert summary.processed == summary.images == 14  # every photo embedded again
    db = FaceDB(out)
    assert db.pipeline_key == pipeline_key(settings(photos, out))
    t = db.faces()
    at = {place(t, i): i for i in range(len(t))}
    assert set(at) == places  # the new embedding's faces only, each once
    person = db.person_of(t)
    assert [p.id for p in db.people() if p.name == "Barack"] == [obama]
    assert person[at[moved]] == obama
    assert db.ignored(t)[at[set_aside]] and person[at[set_aside]] == -1
    db.close()
