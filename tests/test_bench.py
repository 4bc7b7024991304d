import json

import pytest

from conftest import GOLDEN, HUMANS
from facedist.cli import main

pytestmark = pytest.mark.slow


def test_tiny_bench_of_every_variant(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", str(HUMANS), "--out", str(out), "--limit", "3", "--v1-limit", "2",
                 "--weights", "synthetic", "--no-micro",
                 "--reference", str(GOLDEN / "mtcnn_humans.json")]) == 0
    result = json.loads((out / "bench.json").read_text())
    names = [r["variant"] for r in result["variants"]]
    assert names == ["study-v1", "study-v2", "study-v3", "study-parallel", "facedist", "facedist-facenet"]
    for r in result["variants"]:
        assert r["total_seconds"] > 0 and r["faces_found"] >= 2 and r["count_agreement"] >= 2 / 3
    assert result["variants"][0]["images"] == 2
    # scored against the full-resolution reference (on these 3 photos the default detection
    # finds one extra face, in "1 (1).jpeg")
    for r in result["variants"]:
        if r["variant"].startswith("facedist"):
            assert r["ref_count_agreement"] == pytest.approx(2 / 3, abs=1e-3)
            assert r["ref_iou90_share"] == 1.0
        else:
            assert "ref_count_agreement" not in r
    md = (out / "results.md").read_text()
    assert "synthetic" in md and "study-v1 ran on the first 2 images" in md
    assert (out / "timelines.png").stat().st_size > 5000
    assert len((out / "results.csv").read_text().splitlines()) == 7
    # only the measurements stay: scratch (links, vectors, databases) is removed
    assert sorted(p.name for p in (out / "study-v3").iterdir()) == ["perf"]
    assert not (out / "input").exists()
