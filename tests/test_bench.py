import json

import pytest

from conftest import GOLDEN, HUMANS
from facedist.cli import main


@pytest.mark.slow
def test_tiny_bench_of_every_variant(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", str(HUMANS), "--out", str(out), "--limit", "3", "--v1-limit", "2",
                 "--peer-limit", "2", "--weights", "synthetic", "--no-micro",
                 "--reference", str(GOLDEN / "mtcnn_humans.json")]) == 0
    result = json.loads((out / "bench.json").read_text())
    names = [r["variant"] for r in result["variants"]]
    assert names == ["study-v1", "study-v2", "study-v3", "study-parallel", "facedist",
                     "facedist-facenet", "facedist-full", "face-recognition", "facenet-pytorch-plain"]
    for r in result["variants"]:
        assert r["process_seconds"] >= r["total_seconds"] > 0 and r["process_rss_peak_mb"] > 50
        if r["variant"] != "facenet-pytorch-plain":  # timed from outside only
            assert r["faces_found"] >= 2 and r["count_agreement"] >= 2 / 3
    impl = {r["variant"]: r["implementation"] for r in result["variants"]}
    assert impl["study-v3"] == "facenet-pytorch 2.6.0" and impl["facedist"] == "facedist"
    assert impl["face-recognition"].startswith("face_recognition")
    images = {r["variant"]: r["images"] for r in result["variants"]}
    assert images["study-v1"] == images["face-recognition"] == 2 and images["study-v3"] == 3
    # scored against the full-resolution reference (these 3 photos agree; see below for a miss)
    for r in result["variants"]:
        if r["variant"].startswith("facedist-") or r["variant"] == "facedist":
            assert r["ref_count_agreement"] == 1.0 and r["ref_disagreements"] == []
            assert r["ref_iou90_share"] == 1.0
        else:
            assert "ref_count_agreement" not in r
    md = (out / "results.md").read_text()
    assert "synthetic" in md and "study-v1 ran on the first 2 images" in md
    assert "face-recognition ran on the first 2 images" in md
    assert (out / "timelines.png").stat().st_size > 5000
    assert len((out / "results.csv").read_text().splitlines()) == 10
    assert "reproduction" not in md  # facenet-pytorch itself ran
    # only the measurements stay: scratch (links, vectors, databases) is removed
    assert sorted(p.name for p in (out / "study-v3").iterdir()) == ["perf"]
    assert not (out / "input").exists()


def test_reference_disagreements_are_listed(tmp_path):
    from facedist.bench import _reference_agreement

    (tmp_path / "facedist").mkdir()
    mine = {"00000_a.jpg": [{"box": [10, 10, 110, 130]}],
            "00001_b.jpg": [{"box": [0, 0, 50, 50]}, {"box": [200, 200, 240, 250]}]}
    (tmp_path / "facedist" / "faces.json").write_text(json.dumps(mine))
    reference = {"a.jpg": {"boxes": [[11, 10, 110, 131], [300, 40, 330, 75]], "probs": [1.0, 0.82]},
                 "b.jpg": {"boxes": [[0, 0, 50, 52]], "probs": [0.99]}}
    rows = [{"variant": "facedist"}]
    _reference_agreement(rows, tmp_path, reference)
    r = rows[0]
    assert r["ref_count_agreement"] == 0.0 and r["ref_iou90_share"] == 1.0
    assert r["ref_disagreements"] == [
        "a.jpg: reference 2, ours 1; only the reference's: 30x35 at 300,40 p=0.82; only ours: none",
        "b.jpg: reference 1, ours 2; only the reference's: none; only ours: 40x50 at 200,200"]


@pytest.mark.slow
def test_detection_variants_run_with_their_settings(tmp_path):
    # "1 (198).jpg" (2500 px, the smallest of the 5 such photos) has a 63 px detection in the
    # full-resolution reference that the default (P-Net up to 1024 px) misses; --max-side 0 and
    # --exact find it
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "1 (198).jpg").write_bytes((HUMANS / "1 (198).jpg").read_bytes())
    out = tmp_path / "bench"
    assert main(["bench", str(photos), "--out", str(out), "--weights", "synthetic", "--no-micro",
                 "--variants", "facedist-facenet,facedist-facenet-full,facedist-facenet-exact",
                 "--reference", str(GOLDEN / "mtcnn_humans.json")]) == 0
    rows = {r["variant"]: r for r in json.loads((out / "bench.json").read_text())["variants"]}
    assert rows["facedist-facenet"]["faces_found"] == 1
    assert rows["facedist-facenet"]["ref_count_agreement"] == 0.0
    for variant in ("facedist-facenet-full", "facedist-facenet-exact"):
        assert rows[variant]["faces_found"] == 2
        assert rows[variant]["ref_count_agreement"] == 1.0 and rows[variant]["ref_iou90_share"] == 1.0
    assert main(["bench", str(photos), "--out", str(out), "--variants", "facedist-fast"]) == 2


@pytest.mark.slow
def test_the_reproduction_says_so_in_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDIST_STUDY", "reproduction")  # the variant's subprocess inherits it
    out = tmp_path / "bench"
    assert main(["bench", str(HUMANS), "--out", str(out), "--limit", "2", "--weights", "synthetic",
                 "--no-micro", "--variants", "study-v3"]) == 0
    result = json.loads((out / "bench.json").read_text())
    assert result["variants"][0]["implementation"].startswith("reproduction")
    md = (out / "results.md").read_text()
    assert "reproduction of facenet-pytorch's models, not on facenet-pytorch itself" in md


def test_the_people_bench_compares_other_methods():
    """bench/people_methods.py's Chinese whispers and core-point rule (developer tooling)."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from people_methods import chinese_whispers, core_points
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from facedist.cluster import Graph
    import numpy as np

    g = Graph(5, np.array([0, 1, 3]), np.array([1, 2, 4]), np.array([0.1, 0.1, 0.1], np.float32))
    assert chinese_whispers(g).tolist() == [0, 0, 0, 1, 1]
    assert core_points(g, 0.5, min_faces=3).tolist() == [0, 0, 0, 1, 2]


@pytest.mark.slow
def test_the_album_review_bench_on_a_small_album(tmp_path):
    """bench/review_album.py on a slice of D1 (two family people with all their photos, eight
    strangers): ../shared/tools/album.py answers the queue through the command line as the
    owner would; the review reaches "done", no answer lowers F, and it ends no lower than it
    began, with its curves, table and plot written."""
    import csv
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from conftest import SHARED

    source = SHARED / "data" / "albums" / "D1"
    with open(source / "truth.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    family = sorted({r["person"] for r in truth if r["role"] == "family"})[:2]
    strangers = sorted(r["file"] for r in truth if r["role"] == "stranger")[:8]
    keep = [r for r in truth if r["person"] in family or r["file"] in strangers]
    album = tmp_path / "album"
    (album / "photos").mkdir(parents=True)
    for r in keep:
        shutil.copyfile(source / "photos" / r["file"], album / "photos" / r["file"])
    with open(album / "truth.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(truth[0]))
        writer.writeheader()
        writer.writerows(keep)
    assert main(["run", str(album / "photos"), "--out", str(tmp_path / "out")]) == 0
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(root / "bench" / "review_album.py"), str(album),
                           str(tmp_path / "out"), "-n", "30", "--results", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "r" / "albums.json").read_text())["results"]["album"]
    queue, plain = result["queue"], result["plain"]
    assert queue["done_at"] is not None and queue["done_at"] <= 30
    assert queue["worst_drop"] <= 0.001
    assert queue["curve"][-1] >= queue["curve"][0] and len(plain["curve"]) > 1
    assert "| album | queue |" in (tmp_path / "r" / "albums.md").read_text()
    assert (tmp_path / "r" / "albums.png").stat().st_size > 0
