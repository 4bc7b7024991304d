"""The device check of the GPU path (issue 14): parity with the CPU and throughput, on a bare
GPU machine, in under 8 minutes. tools/gpu_check.sh runs it; see there for the two steps.

prepare (here, with ../shared and PyPI): fills DEST (default .device/, git-ignored) with what
the bare machine lacks: dlib's two model files (the 5-point predictor and the ResNet, as a
facedist cache: FACEDIST_CACHE), the 111 smaller photos of data/humans (the issue's workload) and 48 celeba photos to make LFW-size photos from.

run (there): makes the workloads from the carried photos (4,000 distinct 250 px photos:
crops, mirror images, light and JPEG quality varied), then
1. parity: the same photos through FacePipeline on cpu and on cuda (fp32), with TF32 switched
   on process-wide first, as torch has it on such machines: face counts, matched-box IoU,
   landmark and embedding agreement; and fp16 embeddings against fp32 ones on the GPU;
2. throughput: `facedist run` as whole processes on each workload (cuda, and cpu for the
   comparison), GPU utilisation sampled by nvidia-smi every 100 ms;
and writes gpu.md and gpu.json to OUT (commit them under bench/results-gpu/).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DLIB_FILES = ["shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"]
HUMANS_SMALLER = 111  # the workload: the 111 photos of data/humans with the smallest long side
LFW_PHOTOS = 4000
LFW_SIDE = 250


def prepare(shared: Path, dest: Path) -> None:
    import importlib.util

    from PIL import Image

    # dlib's two model files, where `facedist weights fetch` would put them (no dlib needed)
    weights = dest / "cache" / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("face_recognition_models")
    for name in DLIB_FILES:
        shutil.copy2(Path(spec.submodule_search_locations[0]) / "models" / name, weights / name)
    humans = sorted((shared / "data" / "humans").iterdir(),
                    key=lambda p: (max(Image.open(p).size), p.name))[:HUMANS_SMALLER]
    for sub, files in (("humans", humans),
                       ("seeds", sorted((shared / "data" / "celeba").rglob("*.jpg"))[::5][:48])):
        (dest / sub).mkdir(exist_ok=True)
        for f in files:
            shutil.copy2(f, dest / sub / f"{f.parent.name}_{f.name}" if sub == "seeds" else dest / sub / f.name)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    print(f"{dest}: {size / 2**20:.1f} MiB to carry")


def _variant(args) -> tuple[str, str]:
    """One LFW-size photo from a seed: a random crop, maybe mirrored, lit, at a JPEG quality."""
    import numpy as np
    from PIL import Image, ImageEnhance

    seed_path, out, k = args
    rng = np.random.default_rng(k)
    img = Image.open(seed_path).convert("RGB")
    w, h = img.size
    side = int(min(w, h) * rng.uniform(0.75, 1.0))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    img = img.crop((x, y, x + side, y + side)).resize((LFW_SIDE, LFW_SIDE), Image.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(80, 96)))
    Path(out).write_bytes(buf.getvalue())
    return out, hashlib.sha256(buf.getvalue()).hexdigest()


def make_lfw_size(seeds: Path, out: Path, count: int = LFW_PHOTOS) -> Path:
    from multiprocessing import Pool

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = sorted(seeds.iterdir())
    jobs = [(str(files[k % len(files)]), str(out / f"{k:05d}.jpg"), k) for k in range(count)]
    with Pool() as pool:
        digests = [d for _, d in pool.map(_variant, jobs, chunksize=64)]
    assert len(set(digests)) == len(digests), "two generated photos are byte-identical"
    return out


def parity(photos: list[Path], gpu: str = "cuda") -> dict:
    import numpy as np
    import torch

    from facedist.backend import _tf32_flags, tf32_enabled
    from facedist.bench import _iou
    from facedist.config import Settings
    from facedist.compute import FacePipeline

    for flag in _tf32_flags():  # as torch has it on GPU machines: TF32 convolutions allowed
        flag.set("tf32" if flag.off == "ieee" else True)
    assert tf32_enabled()
    out = {}
    runs = {}
    half = "fp16" if gpu == "cuda" else "fp32"  # --dry-run: cpu, where fp16 is refused
    for name, kw in (("cpu", dict(device="cpu")), ("cuda", dict(device=gpu)),
                     ("cuda-fp16", dict(device=gpu, precision=half))):
        pipe = FacePipeline(Settings(progress=False, **kw))
        t0 = time.perf_counter()
        runs[name] = pipe.process_images(photos)
        out[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
    assert tf32_enabled(), "a run left TF32 switched off"
    for other in ("cuda", "cuda-fp16"):
        same_count, ious, marks, cos = 0, [], [], []
        for ra, rb in zip(runs["cpu"], runs[other]):
            same_count += len(ra.boxes) == len(rb.boxes)
            for i in range(len(ra.boxes)):
                j = max(range(len(rb.boxes)), key=lambda j: _iou(ra.boxes[i], rb.boxes[j]), default=None)
                if j is None:
                    ious.append(0.0)
                    continue
                ious.append(_iou(ra.boxes[i], rb.boxes[j]))
                marks.append(float(np.abs(ra.landmarks[i] - rb.landmarks[j]).max()))
                cos.append(float(ra.embeddings[i] @ rb.embeddings[j]))
        out[other] = {"photos": len(photos), "same_face_count": same_count,
                      "faces": len(ious), "iou_min": round(float(min(ious, default=1.0)), 6),
                      "landmark_max_px": round(max(marks, default=0.0), 4),
                      "cosine_min": round(min(cos, default=1.0), 7),
                      "cosine_median": round(float(np.median(cos)) if cos else 1.0, 7)}
    out["torch"] = torch.__version__
    out["gpu"] = torch.cuda.get_device_name(0) if gpu == "cuda" else "none (--dry-run on CPU)"
    return out


class GpuSampler:
    """nvidia-smi's utilisation.gpu (%) and memory used every 100 ms, with their times."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []
        if not shutil.which("nvidia-smi"):  # --dry-run on a machine without a GPU
            self._proc = None
            return
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
             "-lms", "100"], stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                util, mem = (float(v) for v in line.split(","))
            except ValueError:
                continue
            self.samples.append((time.perf_counter(), util, mem))

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        self._proc.wait()

    def between(self, t0: float, t1: float) -> list[float]:
        return [u for t, u, _ in self.samples if t0 <= t <= t1]


def throughput(name: str, photos: Path, work: Path, sampler: GpuSampler, *flags: str) -> dict:
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "facedist", "run", str(photos), "--out", str(out), "--no-progress",
           *flags]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"name": name, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    perf = json.loads((out / "perf" / "summary.json").read_text())
    util = sampler.between(t0, t0 + wall)
    # the processing span: from the first to the last sample the GPU was busy
    busy = [i for i, u in enumerate(util) if u > 0]
    span = util[busy[0]:busy[-1] + 1] if busy else []
    images = perf["images"]
    return {"name": name, "command": "facedist run PHOTOS " + " ".join(flags), "images": images,
            "faces": perf["faces"], "wall_s": round(wall, 2), "run_s": perf["total_seconds"],
            "images_per_s_wall": round(images / wall, 1),
            "images_per_s_run": round(images / perf["total_seconds"], 1),
            "stages_s": perf.get("stages"), "rss_peak_mb": perf.get("rss_peak_mb"),
            "gpu_util_mean_run": round(sum(util) / len(util), 1) if util else None,
            "gpu_util_mean_busy": round(sum(span) / len(span), 1) if span else None,
            "gpu_mem_peak_mb": max((m for t, _, m in sampler.samples if t0 <= t <= t0 + wall),
                                   default=None)}


def run(dest: Path, out: Path, work: Path, dry_run: bool = False) -> None:
    """dry_run: the whole check on CPU with 100 LFW-size photos, to try the script without a GPU."""
    os.environ.setdefault("FACEDIST_CACHE", str(work / "cache"))
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "facedist.kernels"], check=True)  # numba's cache, once
    lfw = make_lfw_size(dest / "seeds", work / "lfw-size", 100 if dry_run else LFW_PHOTOS)
    humans = dest / "humans"
    gpu = "cpu" if dry_run else "cuda"
    report = {"machine": {"python": platform.python_version(), "cores": os.cpu_count()},
              "made_lfw_s": round(time.perf_counter() - started, 1)}
    photos = sorted(humans.iterdir())[::3] + sorted(lfw.iterdir())[:40]
    report["parity"] = parity(photos[::4] if dry_run else photos, gpu)
    print(json.dumps(report["parity"], indent=1), flush=True)
    sampler = GpuSampler()
    runs = []
    try:
        half = ["--precision", "fp16"] if not dry_run else []
        for name, path, flags in (
                ("cuda lfw-size", lfw, ["--device", gpu]),
                ("cuda humans", humans, ["--device", gpu]),
                ("cuda lfw-size facenet fp16", lfw, ["--device", gpu, "--model", "facenet-vggface2",
                                                     "--weights", "synthetic", *half]),
                ("cpu humans", humans, ["--device", "cpu"]),
                ("cpu lfw-size", lfw, ["--device", "cpu"])):
            if dry_run and name.startswith("cpu"):
                continue
            if time.perf_counter() - started > 390 and name.startswith("cpu lfw"):
                runs.append({"name": name, "error": ["skipped: the check's 8 minutes"]})
                continue
            runs.append(throughput(name.replace(" ", "-"), path, work, sampler, *flags))
            print(json.dumps(runs[-1]), flush=True)
    finally:
        sampler.stop()
    report["runs"] = runs
    report["seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    p = r["parity"]
    lines = [f"# Device check: {p['gpu']}, torch {p['torch']}, {r['machine']['cores']} cores",
             "", "Made by `bash tools/gpu_check.sh` (bench/gpu_check.py); one run.", "",
             "## Parity with the CPU (TF32 switched on process-wide first)", "",
             "| run | photos | same face count | faces | min IoU | max landmark px | min cosine | median cosine |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ("cuda", "cuda-fp16"):
        q = p[name]
        lines.append(f"| {name} vs cpu | {q['photos']} | {q['same_face_count']} | {q['faces']} | "
                     f"{q['iou_min']} | {q['landmark_max_px']} | {q['cosine_min']} | {q['cosine_median']} |")
    lines += ["", "## Throughput (whole `facedist run` processes)", "",
              "| run | images | faces | wall s | images/s (wall) | images/s (run, models loaded) | "
              "GPU util % (run / busy span) | GPU mem MB | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        if "error" in x:
            lines.append(f"| {x['name']} | {' '.join(x['error'])} |||||||")
            continue
        lines.append(f"| {x['name']} | {x['images']} | {x['faces']} | {x['wall_s']} | "
                     f"{x['images_per_s_wall']} | {x['images_per_s_run']} | "
                     f"{x['gpu_util_mean_run']} / {x['gpu_util_mean_busy']} | {x['gpu_mem_peak_mb']} | "
                     f"{x['rss_peak_mb']} |")
    lines += ["", "Stage seconds per run are in gpu.json.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--dest", type=Path, default=ROOT / ".device")
    r = sub.add_parser("run")
    r.add_argument("--dest", type=Path, default=ROOT / ".device")
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/results-gpu")))
    r.add_argument("--work", type=Path, default=Path("/tmp/gpu-check"))
    r.add_argument("--dry-run", action="store_true", help="on CPU, 100 LFW-size photos: try the script")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.shared, a.dest)
    else:
        run(a.dest, a.out, a.work, a.dry_run)


if __name__ == "__main__":
    main()
