import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELED
from facedist.cli import build_parser, main
from facedist.config import Settings

PEOPLE = LABELED / "people"


def test_help_lists_every_command():
    text = build_parser().format_help()
    for cmd in ("run", "near", "export", "plot", "people", "lookalikes", "eval", "bench", "weights"):
        assert cmd in text


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: facenet-casia\nmin-face-size: 40\nthresholds: [0.5, 0.6, 0.7]\nfaces: largest\n")
    from facedist.config import load_yaml

    s = Settings().update(load_yaml(cfg))
    assert (s.model, s.detect.min_face_size, s.detect.thresholds, s.detect.faces) == \
        ("facenet-casia", 40, (0.5, 0.6, 0.7), "largest")
    with pytest.raises(ValueError, match="unknown setting"):
        Settings().update({"bogus": 1})
    assert s.detect.key() != Settings().detect.key()
    assert Settings().update({"max-side": 0}).detect.key() != Settings().detect.key()


def test_negative_max_side_is_refused_before_any_work(tmp_path, capsys):
    code = main(["run", str(PEOPLE), "--out", str(tmp_path / "o"), "--max-side", "-5"])
    assert code == 2 and "max-side" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # the shared photos or golden data
def test_half_precision_on_cpu_is_refused_in_one_line(tmp_path, capsys):
    code = main(["run", str(PEOPLE), "--out", str(tmp_path / "o"), "--device", "cpu",
                 "--precision", "fp16"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs a CUDA GPU" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # the shared photos or golden data
def test_missing_weights_exit_at_once_with_the_remedy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEDIST_OFFLINE", "1")
    code = main(["run", str(PEOPLE), "--out", str(tmp_path / "o"), "--model", "facenet-vggface2"])
    err = capsys.readouterr().err
    assert code == 3 and "--weights" in err and "vggface2" in err
    assert not (tmp_path / "o" / "faces.csv").exists()


def test_weights_lists_each_file_and_fetches_by_model(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("FACEDIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEDIST_OFFLINE", "1")
    assert main(["weights", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    facenet = [r for r in rows if r["model"] == "facenet-vggface2"]
    assert [(r["where"], r["path"]) for r in facenet] == [("missing", None)]
    assert all(len(r["sha256"]) == 64 for r in rows if r["model"] in ("mtcnn", "dlib-resnet"))
    assert main(["weights", "fetch", "mtcnn"]) == 0
    assert "pnet.safetensors" in capsys.readouterr().err
    # offline, a missing file: the remedy, in one line, exit 3; an unknown model: exit 2
    assert main(["weights", "fetch", "facenet-casia"]) == 3
    err = capsys.readouterr().err
    assert "facedist weights fetch facenet-casia" in err and len(err.strip().splitlines()) == 1
    assert main(["weights", "fetch", "nope"]) == 2


@pytest.mark.slow
def test_run_near_export_plot(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(PEOPLE / "obama"), "--out", str(out), "--no-progress", "--plot", "-k", "2"]) == 0
    assert (out / "perf" / "timeline.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["near", str(LABELED / "groups" / "obama_and_biden.jpg"), "--db", str(out),
                 "-k", "1"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 4  # four "faces" in the query photo (see test_pipeline), one match each
    closest = min(rows, key=lambda r: float(r["distance"]))
    assert "obama" in closest["path"] and float(closest["distance"]) < 0.5
    assert main(["export", "--db", str(out)]) == 0
    emb = np.load(out / "export" / "embeddings.npy")
    with open(out / "export" / "faces.csv") as fh:
        meta = list(csv.DictReader(fh))
    faces = list(csv.DictReader(open(out / "faces.csv")))
    # 4 portraits (one has a low-probability false face the reference MTCNN finds too)
    assert len(faces) >= 4 and emb.shape == (len(faces), 128) and len(meta) == len(faces)
    assert [m["path"] for m in meta] == [f["path"] for f in faces]
    neighbors = list(csv.DictReader(open(out / "neighbors.csv")))
    assert len(neighbors) == len(faces) * 2


@pytest.mark.slow  # the shared photos or golden data
def test_api_round_trip(tmp_path):
    import facedist

    summary = facedist.run(PEOPLE / "biden", out=tmp_path, progress=False)
    assert summary.faces == 2
    db = facedist.open_db(tmp_path)
    table = db.faces()
    assert len(table) == 2 and table.embeddings.shape == (2, 128)
    matches = db.near(PEOPLE / "biden" / "biden_1.jpg", k=2)
    assert matches[0].distance < 1e-3 and Path(matches[0].path).name == "biden_1.jpg"


@pytest.mark.slow
def test_people_commands_correct_and_corrections_stick(tmp_path, capsys):
    """Six known people: the run finds them; a name, a merge and an `apart` survive a re-run
    with new photos, an incremental and a full one."""
    out = tmp_path / "out"
    photos = tmp_path / "photos"
    import shutil

    shutil.copytree(PEOPLE, photos)
    shutil.rmtree(photos / "obama")  # added later
    assert main(["run", str(photos), "--out", str(out), "--no-progress"]) == 0

    def main_faces():  # the largest face of each photo (one photo of obama shows somebody else too)
        largest = {}
        for f in csv.DictReader(open(out / "faces.csv")):
            area = (float(f["x2"]) - float(f["x1"])) * (float(f["y2"]) - float(f["y1"]))
            if area > largest.get(f["path"], (0,))[0]:
                largest[f["path"]] = (area, f)
        return [f for _, f in largest.values()]

    faces = main_faces()
    person_of = {Path(f["path"]).parent.name: int(f["person"]) for f in faces}
    by_folder = {}
    for f in faces:
        by_folder.setdefault(Path(f["path"]).parent.name, set()).add(int(f["person"]))
    assert all(len(v) == 1 for v in by_folder.values())  # each known person is one person
    assert len({p for v in by_folder.values() for p in v}) == 5  # and nobody is merged
    kit, rose, biden = person_of["kit_harington"], person_of["rose_leslie"], person_of["biden"]
    capsys.readouterr()
    assert main(["people", str(out), "name", str(kit), "Kit"]) == 0
    assert main(["people", str(out), "merge", str(kit), str(rose)]) == 0  # a wrong merge, on purpose
    assert main(["people", str(out), "apart", str(kit), str(biden)]) == 0
    assert main(["people", str(out)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[-len(by_folder) + 1].startswith(f"{kit},Kit,5,5")  # named first, 3 + 2 faces
    shutil.copytree(PEOPLE / "obama", photos / "obama")
    for extra in ([], ["--recluster"]):
        assert main(["run", str(photos), "--out", str(out), "--no-progress", *extra]) == 0
        got = {}
        for f in main_faces():
            got.setdefault(Path(f["path"]).parent.name, set()).add((int(f["person"]), f["person_name"]))
        assert got["kit_harington"] == got["rose_leslie"] == {(kit, "Kit")}, extra
        assert len(got["obama"]) == 1 and got["obama"] != got["biden"], extra
    capsys.readouterr()
    assert main(["lookalikes", str(out), "-n", "3"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("rank,distance") and len(rows) == 4
    dist = [float(r.split(",")[1]) for r in rows[1:]]
    assert dist == sorted(dist)
    assert main(["people", str(out), "merge", str(kit), "x"]) == 2  # one clear line, exit 2
    assert "'x' is not a person id" in capsys.readouterr().err

    # ignore: the other face in an obama photo is a stranger; biden leaves, then comes back
    faces = list(csv.DictReader(open(out / "faces.csv")))
    main_ids = {f["face_id"] for f in main_faces()}
    stranger = next(f for f in faces if f["face_id"] not in main_ids)
    biden = {int(f["person"]) for f in main_faces() if "biden" in f["path"]}.pop()
    assert main(["people", str(out), "ignore", "face", stranger["face_id"]]) == 0
    assert main(["people", str(out), "ignore", "person", str(biden)]) == 0
    for extra in ([], ["--recluster"]):
        assert main(["run", str(photos), "--out", str(out), "--no-progress", *extra]) == 0
        status = {f["face_id"]: (f["status"], f["person"]) for f in csv.DictReader(open(out / "faces.csv"))}
        assert status[stranger["face_id"]] == ("ignored", "")
        assert all(status[f["face_id"]] == ("ignored", "") for f in faces if "biden" in f["path"])
        listed = {r["person"] for r in csv.DictReader(open(out / "people.csv"))}
        looks = list(csv.DictReader(open(out / "lookalikes.csv")))
        assert str(biden) not in listed and str(biden) not in {r["person_a"] for r in looks} | \
            {r["person_b"] for r in looks}
        assert stranger["face_id"] not in {r["face_a"] for r in looks} | {r["face_b"] for r in looks}
    capsys.readouterr()
    assert main(["people", str(out), "unignore", "person", str(biden), "--json"]) == 0
    assert '"unignored": 2' in capsys.readouterr().out
    faces = {f["face_id"]: f for f in csv.DictReader(open(out / "faces.csv"))}
    assert {faces[f]["status"] for f in faces if "biden" in faces[f]["path"]} == {""}
    assert main(["people", str(out), "ignore", stranger["face_id"]]) == 2  # face or person?
    err = capsys.readouterr().err.strip()
    assert "face FACE_ID or person ID" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_faces_of_one_photo_are_two_people_unless_merged_by_hand(tmp_path, capsys):
    """A collage of one face twice: two people by default, one with --no-same-photo-apart; a
    merge by hand holds across runs. Group photos: no person holds two faces of one photo."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    face = Image.open(PEOPLE / "obama" / "obama_1.jpg").convert("RGB")
    collage = Image.new("RGB", (face.width * 2, face.height))
    collage.paste(face, (0, 0))
    collage.paste(face, (face.width, 0))
    collage.save(photos / "collage.jpg", quality=95)
    for group in (LABELED / "groups").iterdir():
        (photos / group.name).write_bytes(group.read_bytes())

    def people_by_photo(out):
        faces = [f for f in csv.DictReader(open(out / "faces.csv")) if f["person"]]
        by_photo = {}
        for f in faces:
            by_photo.setdefault(Path(f["path"]).name, []).append(int(f["person"]))
        return by_photo

    out = tmp_path / "out"
    assert main(["run", str(photos), "--out", str(out), "--no-progress"]) == 0
    by_photo = people_by_photo(out)
    assert len(by_photo["collage.jpg"]) == 2 and len(set(by_photo["collage.jpg"])) == 2
    assert all(len(set(p)) == len(p) for p in by_photo.values())  # every face its own person
    assert sum(len(p) for p in by_photo.values()) >= 6
    together = tmp_path / "together"
    assert main(["run", str(photos), "--out", str(together), "--no-progress",
                 "--no-same-photo-apart"]) == 0
    assert len(set(people_by_photo(together)["collage.jpg"])) == 1
    a, b = by_photo["collage.jpg"]
    assert main(["people", str(out), "merge", str(a), str(b)]) == 0  # the user says: one person
    for extra in ([], ["--recluster"]):
        assert main(["run", str(photos), "--out", str(out), "--no-progress", *extra]) == 0
        assert people_by_photo(out)["collage.jpg"] == [a, a]


def test_quality_gate_settings_are_checked(tmp_path, capsys):
    for bad in ("1.5", "-0.1", "nan", "x"):
        try:
            code = main(["run", str(PEOPLE), "--out", str(tmp_path / "o"), "--min-quality", bad])
        except SystemExit as stop:  # argparse's own type check (not a number)
            code = stop.code
        err = capsys.readouterr().err.strip()
        assert code == 2 and "min-quality" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
    s = Settings().update({"min-quality": 0, "same-photo-apart": False})
    assert (s.min_quality, s.same_photo_apart) == (0.0, False)
    with pytest.raises(ValueError, match="same-photo-apart takes true or false"):
        Settings().update({"same-photo-apart": "no"})


def test_people_and_view_settings_are_checked():
    from facedist.align import make_aligner
    from facedist.models import get_spec

    with pytest.raises(ValueError, match="people-threshold"):
        Settings().update({"people-threshold": 0})
    with pytest.raises(ValueError, match="views takes one of 1, 2, 4"):
        Settings().update({"views": 3})
    with pytest.raises(ValueError, match="one view only"):
        make_aligner(get_spec("facenet-vggface2"), 2)
    assert make_aligner(get_spec("dlib-resnet"), 2).views == 2


@pytest.mark.parametrize("values, message", [
    ({"k": "ten"}, "k takes a whole number"), ({"k": 0}, "k takes"), ({"k": 2.5}, "k takes"),
    ({"threshold": "x"}, "threshold takes a distance"), ({"threshold": -1}, "threshold takes"),
    ({"thresholds": 0.6}, "thresholds takes three numbers"),
    ({"thresholds": [0.6, 0.7]}, "thresholds takes"), ({"thresholds": [0.6, 0.7, 7]}, "thresholds takes"),
    ({"min-face-size": 0}, "min-face-size takes"), ({"min_face_size": -20}, "min-face-size takes"),
    ({"factor": 1.0}, "factor takes a number between 0 and 1"), ({"factor": 0}, "factor takes"),
    ({"max-side": -1}, "max-side takes"), ({"embed-batch-size": 0}, "embed-batch-size takes"),
    ({"decode-workers": "two"}, "decode-workers takes"), ({"max-pixels": 0}, "max-pixels takes"),
    ({"faces": "some"}, "faces takes one of all, largest"), ({"plot": "yes"}, "plot takes true or false"),
    ({"sample-interval": 0}, "sample-interval takes"), ({"matrix-max-faces": -5}, "matrix-max-faces takes"),
    ({"views": 3}, "views takes"), ({"people-threshold": "far"}, "people-threshold takes"),
    ({"colour": "red"}, "unknown setting 'colour'"),
])
def test_every_bad_setting_is_one_line_before_any_work(values, message, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        Settings().update(values)
    key, value = next(iter(values.items()))
    cfg = tmp_path / "settings.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump({key: value}))
    out = tmp_path / "out"
    assert main(["run", str(PEOPLE), "--out", str(out), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split()[0] in err and "Traceback" not in err
    assert not out.exists()  # refused before any work


def test_broken_yaml_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "settings.yaml"
    cfg.write_text("k: [1\nfoo: : :\n")
    assert main(["run", str(PEOPLE), "--out", str(tmp_path / "out"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML (line 2)" in err and err.count("\n") == 1


@pytest.mark.slow
def test_near_writes_real_csv_whatever_the_path(tmp_path, capsys):
    import shutil

    photos = tmp_path / "photos"
    photos.mkdir()
    odd = photos / 'a, "b"\n c.jpg'
    shutil.copy(PEOPLE / "obama" / "obama_1.jpg", odd)
    out = tmp_path / "out"
    assert main(["run", str(photos), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["near", str(PEOPLE / "obama" / "obama_2.jpg"), "--db", str(out), "-k", "1"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines(keepends=True)))
    assert rows and rows[0]["path"] == str(odd)
    assert main(["near", str(PEOPLE / "obama" / "obama_2.jpg"), "--db", str(out), "-k", "0"]) == 2
    assert main(["near", str(PEOPLE / "obama" / "obama_2.jpg"), "--db", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "none").exists()  # a reader never creates a database


@pytest.mark.slow
def test_moved_renamed_and_deleted_photos_keep_the_users_work(tmp_path, capsys):
    """A renamed folder, a photo moved between sub-folders, a deleted one, and one moved while
    a copy stays at its old path: names and faces follow the photos, nothing is computed again,
    and `people` counts only the photos there now."""
    import shutil

    photos = tmp_path / "photos"
    shutil.copytree(PEOPLE, photos)
    out = tmp_path / "out"
    assert main(["run", str(photos), "--out", str(out), "--no-progress"]) == 0

    def faces_by_file() -> dict[str, list[tuple]]:
        got = {}
        for f in csv.DictReader(open(out / "faces.csv")):
            got.setdefault(Path(f["path"]).name, []).append((f["face_id"], f["person_name"]))
        return got

    kit = next(f["person"] for f in csv.DictReader(open(out / "faces.csv"))
               if "kit_harington_1" in f["path"])
    assert main(["people", str(out), "name", kit, "Kit"]) == 0
    before = faces_by_file()
    assert all(n == "Kit" for name, faces in before.items() if "kit" in name for _, n in faces)

    renamed = tmp_path / "photos-2025"
    photos.rename(renamed)  # the whole folder
    (renamed / "kit_harington" / "kit_harington_3.jpg").rename(renamed / "biden" / "kit_3.jpg")
    (renamed / "obama" / "obama_4.jpg").unlink()  # deleted
    shutil.copy(renamed / "rose_leslie" / "rose_leslie_1.jpg", renamed / "rose_copy.jpg")
    (renamed / "alex_lacamoire" / "alex_lacamoire_1.jpg").rename(renamed / "alex_moved.jpg")
    capsys.readouterr()
    assert main(["run", str(renamed), "--out", str(out), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["processed"] == 0 and summary["copies"] == 1  # only rose_copy.jpg is new
    after = faces_by_file()
    moved = {"kit_3.jpg": "kit_harington_3.jpg", "alex_moved.jpg": "alex_lacamoire_1.jpg"}
    for name, faces in after.items():
        if name == "rose_copy.jpg":
            assert [n for _, n in faces] == [n for _, n in before["rose_leslie_1.jpg"]]
            assert {i for i, _ in faces}.isdisjoint({i for i, _ in before["rose_leslie_1.jpg"]})
        else:  # the same face ids: nothing recomputed, and the name goes with them
            assert faces == before[moved.get(name, name)], name
    assert "obama_4.jpg" not in after and "kit_3.jpg" in after
    assert all(n == "Kit" for name, faces in after.items() if "kit" in name for _, n in faces)
    listed = list(csv.DictReader(open(out / "people.csv")))
    capsys.readouterr()
    assert main(["people", str(out), "--json"]) == 0
    people = json.loads(capsys.readouterr().out)
    # the command lists what people.csv lists: the photos there now, old paths gone
    assert sorted((str(p["person"]), p["faces"]) for p in people) == \
        sorted((r["person"], int(r["faces"])) for r in listed)
    placed = [f for f in csv.DictReader(open(out / "faces.csv")) if f["person"]]
    assert sum(p["faces"] for p in people) == len(placed)


def test_read_commands_never_load_torch(tmp_path):
    """Reading a finished output (people, look-alikes, export, the report) needs no model: those
    commands start in a second, not after torch's import (1.8 s here)."""
    from synthetic import synthetic_output

    out = tmp_path / "out"
    synthetic_output(out, tmp_path / "photos", n_photos=4, faces_per_photo=3, n_people=5)
    for command in (["people", str(out)], ["lookalikes", str(out)], ["report", str(out)],
                    ["export", "--db", str(out), "--dest", str(tmp_path / "export")]):
        code = ("import sys; from facedist.cli import main;"
                f"code = main({command!r});"
                "assert code == 0, code; assert 'torch' not in sys.modules, 'torch imported'")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, f"{command[0]}: {done.stderr[-500:]}"


def test_only_the_command_of_a_process_of_its_own_freezes_what_it_loaded(tmp_path):
    """`facedist` and `python -m facedist` (cli.program) freeze what the process loaded out of the
    garbage collector, so that no collection walks torch's objects again and the exit is not
    0.4 s of one; main() called by a program that goes on (these tests, a caller's script) leaves
    its collector alone."""
    from synthetic import synthetic_output

    out = tmp_path / "out"
    synthetic_output(out, tmp_path / "photos", n_photos=2, faces_per_photo=2, n_people=2)
    code = ("import gc, sys; from facedist.cli import main, program;"
            f"assert main(['people', {str(out)!r}]) == 0; print(gc.get_freeze_count());"
            f"sys.argv = ['facedist', 'people', {str(out)!r}]; assert program() == 0;"
            "print(gc.get_freeze_count())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    counts = [int(line) for line in done.stdout.splitlines() if line.strip().isdigit()]
    assert counts[0] == 0 and counts[-1] > 10_000, done.stdout[-300:]
    entry = subprocess.run([sys.executable, "-m", "facedist", "people", str(out)],
                           capture_output=True, text=True)
    assert entry.returncode == 0 and entry.stdout and entry.stdout in done.stdout, entry.stderr[-300:]
