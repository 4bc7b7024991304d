"""The Ray engine against the local one on the same photos, and how many photos per second the
driver can store (where a cluster stops scaling).

    python bench/ray_engine.py --photos /tmp/longrun/photos-1000 --runs 3 --out bench/results-ray

- engines: `facedist run PHOTOS --out OUT --engine local|ray` from an empty OUT, the two in
  turn (local, ray, local, ray …) so that drift hits both; whole-process wall time, the Ray
  one including starting its local instance (2 CPUs here: 2 actors of 1 CPU). Median and the
  ray/local ratio pair by pair.
- store: results of photos with 2 faces each (128-d embeddings), saved through FaceStore in
  batches of 16 as the driver saves what the actors return: photos/s one driver can take.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def engine_runs(photos: Path, runs: int, args: list[str]) -> dict:
    times: dict[str, list[float]] = {"local": [], "ray": []}
    work = Path(tempfile.mkdtemp(prefix="facedist-ray-bench-"))
    try:
        for _ in range(runs):
            for engine in ("local", "ray"):
                out = work / engine
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "facedist.cli", "run", str(photos), "--out",
                                str(out), "--no-progress", "--engine", engine, *args],
                               check=True, capture_output=True)
                times[engine].append(round(time.perf_counter() - t, 2))
                print(engine, times[engine][-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = [r / l for l, r in zip(times["local"], times["ray"])]
    images = sum(1 for p in photos.rglob("*") if p.is_file())
    return {"photos": images, "seconds": times,
            "median_s": {k: float(np.median(v)) for k, v in times.items()},
            "images_per_s": {k: round(images / float(np.median(v)), 2) for k, v in times.items()},
            "ray_over_local": [round(r, 3) for r in ratios],
            "ray_over_local_median": round(float(np.median(ratios)), 3)}


def store_rate(photos: int = 20_000, faces: int = 2, dim: int = 128, batch: int = 16) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from facedist.store import FaceStore, ImageResult

    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="facedist-store-bench-"))
    try:
        store = FaceStore(work, check=True)
        run_id = store.begin_run("key", "dlib-resnet", str(work), {}, {})
        ids = [store.image_id(f"/photos/{i:07d}.jpg", 1000 + i, i) for i in range(photos)]
        results = [ImageResult(i, 640, 480, f"{i:064x}",
                               boxes=rng.uniform(0, 400, (faces, 4)).astype(np.float32),
                               probs=np.full(faces, 0.99, np.float32),
                               landmarks=rng.uniform(0, 400, (faces, 5, 2)).astype(np.float32),
                               embeddings=rng.normal(size=(faces, dim)).astype(np.float32))
                   for i in ids]
        t = time.perf_counter()
        for s in range(0, photos, batch):
            store.save_chunk(run_id, "key", "dlib-resnet", results[s:s + batch])
        seconds = time.perf_counter() - t
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"photos": photos, "faces_per_photo": faces, "batch": batch,
            "seconds": round(seconds, 2), "photos_per_s": round(photos / seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results-ray")
    ap.add_argument("args", nargs="*", help="more flags for facedist run")
    a = ap.parse_args()
    res = {"machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
           "date": time.strftime("%Y-%m-%d"),
           "command": f"python bench/ray_engine.py --photos PHOTOS --runs {a.runs}",
           "engines": engine_runs(a.photos, a.runs, a.args), "store": store_rate()}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ray.json").write_text(json.dumps(res, indent=1) + "\n")
    e, s = res["engines"], res["store"]
    (a.out / "ray.md").write_text(
        f"# The Ray engine against the local one\n\n`{res['command']}` on {res['machine']}, "
        f"{res['date']}; PHOTOS: {e['photos']:,} photos. Each engine {a.runs} times, in turn, "
        f"from an empty output folder; whole-process wall time.\n\n"
        f"| engine | runs (s) | median s | photos/s |\n|---|---|---|---|\n"
        + "".join(f"| {k} | {', '.join(map(str, e['seconds'][k]))} | {e['median_s'][k]} | "
                  f"{e['images_per_s'][k]} |\n" for k in ("local", "ray"))
        + f"\nray / local, pair by pair: {', '.join(map(str, e['ray_over_local']))} "
          f"(median {e['ray_over_local_median']}).\n\n"
          f"Store: {s['photos']:,} photos of {s['faces_per_photo']} faces saved in batches of "
          f"{s['batch']} in {s['seconds']} s: **{s['photos_per_s']:,} photos/s** one driver can "
          f"store.\n")
    print((a.out / "ray.md").read_text())


if __name__ == "__main__":
    main()
