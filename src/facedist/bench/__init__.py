"""bench: `facedist bench PHOTOS` — the study's versions and the product, side by side.

Each variant runs in a fresh subprocess over the same images with the same monitor; the
orchestrator then writes OUT/results.md and results.csv (wall time, images/s, speed-ups,
CPU and memory, faces, agreement with the product), timelines.png (every variant's CPU and memory
over time) and bench.json, with the machine it ran on. A micro section measures the machine's
matmul bound and how close embedding and the distance matrix come to it.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ALL_VARIANTS = ["study-v1", "study-v2", "study-v3", "study-parallel", "facedist", "facedist-facenet",
                "facedist-full"]
# peers, run by default where installed (make install-study): face_recognition as its README
# calls it, and a plain facenet-pytorch loop without this bench around it (study_reference.py)
PEER_VARIANTS = ["face-recognition", "facenet-pytorch-plain"]
# facedist with other detection settings: -full by default, the others when named in --variants
DETECTION_VARIANTS = {"facedist-full": {"max_side": 0}, "facedist-facenet-full": {"max_side": 0},
                      "facedist-facenet-exact": {"exact": True}}
FACENET_GFLOP_PER_FACE = 2.84  # InceptionResnetV1 at 160x160, multiply-adds x2


def bench_parser(parents=(), parser_class=None):
    """`facedist bench`'s arguments (the command line hands them over unparsed, so that no
    other command imports this package); `parents`: the flags every command takes;
    `parser_class`: the command line's (one-line errors)."""
    import argparse

    p = (parser_class or argparse.ArgumentParser)(
        prog="facedist bench", parents=list(parents),
        description="run the study's versions and facedist side by side")
    p.add_argument("photos", type=Path)
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    p.add_argument("--variants",
                   help=f"comma-separated, from {', '.join(dict.fromkeys(ALL_VARIANTS + PEER_VARIANTS + list(DETECTION_VARIANTS)))} "
                        f"(default: {', '.join(ALL_VARIANTS)}, and the peers where installed)")
    p.add_argument("--limit", type=int, help="only the first N images (sorted by path)")
    p.add_argument("--v1-limit", type=int, default=40,
                   help="study-v1 rebuilds both models per image: run it on the first N only (default 40)")
    p.add_argument("--peer-limit", type=int, default=40,
                   help="face-recognition upsamples every photo for its HOG detector (minutes on "
                        "the largest): run it on the first N only (default 40)")
    p.add_argument("--weights", help="FaceNet weights file, or 'synthetic' (timing only) if you have none")
    p.add_argument("--sample-interval", type=float, default=0.1)
    p.add_argument("--no-micro", dest="micro", action="store_false", help="skip the matmul-bound checks")
    p.add_argument("--reference", type=Path,
                   help="reference detections (JSON: images → name → boxes), e.g. "
                        "../shared/golden/mtcnn_humans.json: facedist variants are scored against it")
    return p


def machine() -> dict:
    import torch

    model = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def default_variants() -> list[str]:
    from .study_reference import face_recognition_installed, facenet_pytorch_installed

    peers = {"face-recognition": face_recognition_installed(),
             "facenet-pytorch-plain": facenet_pytorch_installed()}
    return ALL_VARIANTS + [v for v in PEER_VARIANTS if peers[v]]


def cmd_bench(args) -> int:
    from ..discover import ImageFile, discover_images
    from .study import implementation_label

    variants = ([v.strip() for v in args.variants.split(",") if v.strip()] if args.variants
                else default_variants())
    unknown = set(variants) - set(ALL_VARIANTS) - set(PEER_VARIANTS) - set(DETECTION_VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants: {', '.join(sorted(unknown))}")
    needs_facenet = any(v not in ("facedist", "facedist-full", "face-recognition") for v in variants)
    if needs_facenet and args.weights != "synthetic":
        from ..models import get_spec, resolve_weights

        resolve_weights(get_spec("facenet-vggface2"), args.weights)  # fail now, not per variant
    out = args.out
    images = [f.path for f in discover_images(args.photos, exclude=[out]) if isinstance(f, ImageFile)]
    images = images[: args.limit] if args.limit else images
    # The variants read the same files through links (names kept), never the originals' folder.
    inputs = out / "input"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    for i, path in enumerate(images):
        os.symlink(path.resolve(), inputs / f"{i:05d}_{path.name}")
    synthetic = args.weights == "synthetic"
    rows = []
    for variant in variants:
        limit = {"study-v1": args.v1_limit, "face-recognition": args.peer_limit}.get(variant)
        n = min(len(images), limit) if limit else len(images)
        vdir = out / variant
        shutil.rmtree(vdir, ignore_errors=True)
        vdir.mkdir(parents=True)
        print(f"bench: {variant} on {n} images ...", flush=True)
        if variant == "facenet-pytorch-plain":  # no monitor in it: timed from outside only
            cmd = [sys.executable, "-m", "facedist.bench.study_reference", str(inputs)]
        else:
            cmd = [sys.executable, "-m", "facedist.bench", variant, str(inputs), str(vdir), str(n),
                   args.weights or "", str(args.sample_interval)]
        seconds, peak_mb, stdout = run_measured(cmd)
        if variant == "facenet-pytorch-plain":
            summary = {"total_seconds": seconds, "faces": int(stdout.split()[0]), "stages": {}}
        else:
            summary = json.loads((vdir / "perf" / "summary.json").read_text())
        summary["variant"], summary["images"] = variant, n
        summary["process_seconds"], summary["process_rss_peak_mb"] = seconds, peak_mb
        summary["implementation"] = (IMPLEMENTATIONS.get(variant) or
                                     (implementation_label() if variant.startswith("study-") else "facedist"))
        rows.append(summary)
        print(f"bench: {variant}: {seconds:.1f} s as a whole process, "
              f"{n / seconds:.2f} images/s", flush=True)
    _agreement(rows, out)
    if args.reference:
        _reference_agreement(rows, out, json.loads(args.reference.read_text())["images"])
    _tidy(out, variants)
    result = {"command": " ".join(["facedist", "bench"] + sys.argv[2:]), "machine": machine(),
              "weights": "synthetic stand-in weights: timing only, embeddings mean nothing"
              if synthetic else (args.weights or "VGGFace2 (cached)"),
              "variants": rows}
    if args.micro:
        result["micro"] = micro_bench()
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    write_tables(result, out)
    plot_variants(result, out)
    print((out / "results.md").read_text())
    return 0


IMPLEMENTATIONS = {"face-recognition": "face_recognition 1.3.0 (dlib HOG + ResNet)",
                   "facenet-pytorch-plain": "facenet-pytorch 2.6.0, plain loop"}


def run_measured(cmd: list[str]) -> tuple[float, float, str]:
    """Run a command; its wall time as a whole process, the peak RSS of its process tree (MB,
    sampled every 50 ms) and its stdout."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [root] + root.children(recursive=True)))
            except psutil.Error:
                pass
            time.sleep(0.05)
    except psutil.Error:
        pass
    stdout = proc.communicate()[0]
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return round(time.perf_counter() - t0, 2), round(peak / 2**20, 1), stdout


# -- a variant, in its own process --------------------------------------------------------------

def run_variant(variant: str, inputs: Path, vdir: Path, n: int, weights: str, interval: float) -> None:
    from ..monitor import Monitor

    paths = sorted(inputs.iterdir())[:n]
    monitor = Monitor(interval)
    if variant.startswith("study-"):
        from .study import VARIANTS

        scratch = vdir / "vectors"
        scratch.mkdir()
        with monitor:
            found = VARIANTS[variant](paths, scratch, weights or "synthetic", monitor)
        monitor.write(vdir / "perf", images=n, faces=sum(v is not None for _, v in found.values()))
        faces = {name: [{"box": _list(box), "embedding": _list(vec)}] if box is not None else []
                 for name, (box, vec) in found.items()}
    elif variant == "face-recognition":
        from .study_reference import face_recognition_run

        with monitor:
            found = face_recognition_run(paths, monitor)
        monitor.write(vdir / "perf", images=n, faces=sum(map(len, found.values())))
        faces = {name: [{"box": _list(box), "embedding": _list(vec)} for box, vec in fs]
                 for name, fs in found.items()}
    else:
        from .. import pipeline
        from ..models import pipeline_key
        from ..config import Settings
        from ..memory import freeze_loaded
        from ..store import FaceStore

        freeze_loaded()  # as `facedist run` does once torch is loaded (cli.cmd_run)

        photos = inputs.with_name(f"{inputs.name}-{variant}")  # beside the output, never in it
        shutil.rmtree(photos, ignore_errors=True)
        photos.mkdir()
        for p in paths:
            os.symlink(os.readlink(p), photos / p.name)
        s = Settings(photos=photos, out=vdir, progress=False, sample_interval=interval)
        if variant.startswith("facedist-facenet"):
            s.update({"model": "facenet-vggface2", "weights": weights or None})
        s.update(DETECTION_VARIANTS.get(variant, {}))
        run = pipeline.run(s, monitor=monitor)
        summary_path = vdir / "perf" / "summary.json"
        summary = json.loads(summary_path.read_text())
        summary["processed"] = run.processed + sum(run.skipped.values())  # the rest were copies
        summary_path.write_text(json.dumps(summary, indent=2))
        table = FaceStore(vdir, readonly=True).faces(pipeline_key(s))
        faces = {p.name: [] for p in paths}
        for i, path in enumerate(table.paths):
            faces[Path(path).name].append({"box": _list(table.boxes[i]),
                                           "embedding": _list(table.embeddings[i])})
    (vdir / "faces.json").write_text(json.dumps(faces))


def _list(a):
    return None if a is None else [round(float(x), 5) for x in np.asarray(a).ravel()]


def _tidy(out: Path, variants: list[str]) -> None:
    """Keep what the results speak of (each variant's perf/), drop the scratch: input links,
    vector files, databases and the per-face tables used for agreement."""
    for variant in variants:
        shutil.rmtree(out / f"input-{variant}", ignore_errors=True)
    shutil.rmtree(out / "input", ignore_errors=True)
    for variant in variants:
        for entry in (out / variant).iterdir():
            if entry.name != "perf":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


# -- agreement with the product ----------------------------------------------------------------

def _iou(a, b) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2): detect.box_iou's."""
    from ..detect import box_iou

    return float(box_iou(np.array([a, b], np.float64))[0, 1])


def _largest(faces):
    return max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1])) if faces else None


def _agreement(rows: list[dict], out: Path) -> None:
    """Per variant: share of images whose face count agrees with the product (study variants keep
    one face: they agree when both found some face or both none), mean IoU of the largest face,
    and mean embedding distance to facedist-facenet's largest face (same model, where dims match)."""
    rows = [r for r in rows if (out / r["variant"] / "faces.json").exists()]  # not the plain loop
    faces = {r["variant"]: json.loads((out / r["variant"] / "faces.json").read_text()) for r in rows}
    product = faces.get("facedist") or faces.get("facedist-facenet")
    ref_emb = faces.get("facedist-facenet")
    for r in rows:
        mine = faces[r["variant"]]
        r["faces_found"] = sum(len(v) for v in mine.values())
        if product is None:
            continue
        agree, ious, dists = 0, [], []
        for name, fs in mine.items():
            prod = product.get(name, [])
            if r["variant"].startswith("study-"):
                agree += (len(fs) > 0) == (len(prod) > 0)
            else:
                agree += len(fs) == len(prod)
            a, b = _largest(fs), _largest(prod)
            if a and b:
                ious.append(_iou(a["box"], b["box"]))
            e = _largest(ref_emb.get(name, [])) if ref_emb else None
            if a and e and a["embedding"] and len(a["embedding"]) == len(e["embedding"]):
                dists.append(float(np.linalg.norm(np.array(a["embedding"]) - np.array(e["embedding"]))))
        r["count_agreement"] = round(agree / max(1, len(mine)), 4)
        r["largest_box_iou_mean"] = round(float(np.mean(ious)), 4) if ious else None
        r["embedding_distance_to_facedist_facenet"] = round(float(np.mean(dists)), 4) if dists else None


def _reference_agreement(rows: list[dict], out: Path, reference: dict) -> None:
    """For facedist variants: share of images with the reference's face count, and share of the
    reference's matched faces (best IoU > 0.5) whose box overlaps ours with IoU >= 0.9. Images
    whose counts differ are listed with the faces only one side found (so a reader can look)."""
    for r in rows:
        if r["variant"].startswith("study-"):
            continue
        if not r["variant"].startswith("facedist"):
            continue
        mine = json.loads((out / r["variant"] / "faces.json").read_text())
        same, matched, scored, differ = 0, [], 0, []
        for name, faces in mine.items():
            original = name.split("_", 1)[1]  # inputs are named NNNNN_<original name>
            ref = reference.get(original)
            if ref is None:
                continue
            scored += 1
            same += len(faces) == len(ref["boxes"])
            for box in ref["boxes"]:
                best = max((_iou(f["box"], box) for f in faces), default=0.0)
                if best > 0.5:
                    matched.append(best)
            if len(faces) != len(ref["boxes"]):
                differ.append(_disagreement(original, ref, faces))
        r["ref_disagreements"] = differ
        if scored:
            r["ref_count_agreement"] = round(same / scored, 4)
            r["ref_iou90_share"] = round(float(np.mean(np.array(matched) >= 0.9)), 4) if matched else None


def _disagreement(name: str, ref: dict, faces: list[dict]) -> str:
    """One line: an image's face counts, and the boxes (w x h px at x, y) only one side has."""
    def boxes(found, others, probs=None):
        alone = [(i, b) for i, b in enumerate(found) if max((_iou(b, o) for o in others), default=0) <= 0.5]
        return ", ".join(f"{b[2] - b[0]:.0f}x{b[3] - b[1]:.0f} at {b[0]:.0f},{b[1]:.0f}"
                         + (f" p={probs[i]:.2f}" if probs else "") for i, b in alone) or "none"
    ours = [f["box"] for f in faces]
    return (f"{name}: reference {len(ref['boxes'])}, ours {len(ours)}; only the reference's: "
            f"{boxes(ref['boxes'], ours, ref.get('probs'))}; only ours: {boxes(ours, ref['boxes'])}")


# -- the machine's bound -----------------------------------------------------------------------

def micro_bench() -> dict:
    """Matmul GFLOP/s, the FaceNet faces/s it allows, what embedding reaches at batch 32, and the
    20000 x 512 distance matrix against the same bound."""
    import torch

    from ..compare import distance_block
    from ..embed import FacenetEmbedder
    from ..models import get_spec

    def best_of(fn, reps=3):
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    a = torch.randn(2048, 2048)
    gflops = 2 * 2048 ** 3 / best_of(lambda: a @ a) / 1e9
    emb = FacenetEmbedder(get_spec("facenet-vggface2"), "synthetic", torch.device("cpu"))
    crops = np.random.default_rng(0).integers(0, 255, (32, 160, 160, 3), dtype=np.uint8)
    faces_per_s = 32 / best_of(lambda: emb.embed_batch(crops), reps=2)
    bound = gflops / FACENET_GFLOP_PER_FACE
    x = np.random.default_rng(0).normal(size=(20000, 512)).astype(np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    out = np.empty((20000, 20000), np.float32)

    def matrix():
        for s in range(0, 20000, 2000):
            out[s:s + 2000] = distance_block(x[s:s + 2000], x, sq[s:s + 2000], sq)

    matrix_s = best_of(matrix, reps=1)
    matrix_gflops = 2 * 20000 * 20000 * 512 / matrix_s / 1e9
    return {"matmul_gflops": round(gflops, 1), "embed_bound_faces_per_s": round(bound, 1),
            "embed_faces_per_s_batch32": round(faces_per_s, 1),
            "embed_fraction_of_bound": round(faces_per_s / bound, 3),
            "distance_matrix_20000x512_s": round(matrix_s, 3),
            "distance_matrix_gflops": round(matrix_gflops, 1),
            "distance_matrix_fraction_of_bound": round(matrix_gflops / gflops, 3)}


# -- presentation ------------------------------------------------------------------------------

COLUMNS = [("variant", "variant"), ("implementation", "implementation"), ("images", "images"),
           ("processed", "processed"), ("process_seconds", "wall s (process)"),
           ("images_per_second", "images/s"), ("speedup_v1", "x study-v1"),
           ("speedup_v3", "x study-v3"), ("total_seconds", "in-process s"),
           ("cpu_mean", "CPU mean %"), ("cpu_peak", "CPU peak %"),
           ("rss_mean_mb", "RSS mean MB"), ("process_rss_peak_mb", "RSS peak MB"),
           ("faces_found", "faces"), ("count_agreement", "count agrees"),
           ("largest_box_iou_mean", "box IoU"),
           ("embedding_distance_to_facedist_facenet", "emb. dist to facedist-facenet"),
           ("ref_count_agreement", "ref. count agrees"), ("ref_iou90_share", "ref. IoU>=0.9")]


def write_tables(result: dict, out: Path) -> None:
    rows = result["variants"]
    # whole processes: start-up and model loading count, as a user waits for them
    rate = {r["variant"]: r["images"] / r.get("process_seconds", r["total_seconds"]) for r in rows}
    for r in rows:
        r.setdefault("processed", r["images"])
        r["images_per_second"] = round(rate[r["variant"]], 3)
        for base, key in (("study-v1", "speedup_v1"), ("study-v3", "speedup_v3")):
            r[key] = round(rate[r["variant"]] / rate[base], 2) if base in rate else None
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c for c, _ in COLUMNS])
        for r in rows:
            w.writerow([r.get(c) for c, _ in COLUMNS])
    m = result["machine"]
    lines = ["# facedist bench", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {m['cores']} cores, {m['cpu']}, torch {m['torch']} ({m['torch_threads']} threads), "
             f"Python {m['python']}, {m['system']}  ",
             f"FaceNet weights: {result['weights']}", ""]
    if "synthetic" in str(result["weights"]):
        lines += ["**Synthetic stand-in FaceNet weights: timings are real, embeddings and embedding "
                  "distances mean nothing about faces.**", ""]
    study = {r["implementation"] for r in rows if r["variant"].startswith("study-")}
    if any(i.startswith("reproduction") for i in study):
        lines += ["**The study-* variants ran on this project's reproduction of facenet-pytorch's "
                  "models, not on facenet-pytorch itself (not installed: `make install-study`).**", ""]
    v1 = next((r for r in rows if r["variant"] == "study-v1"), None)
    if v1 and any(r["images"] != v1["images"] for r in rows):
        lines += [f"study-v1 ran on the first {v1['images']} images only (it rebuilds both models per "
                  "image); speed-ups compare images per second.", ""]
    peer = next((r for r in rows if r["variant"] == "face-recognition"), None)
    if peer and any(r["images"] != peer["images"] for r in rows):
        lines += [f"face-recognition ran on the first {peer['images']} images only (its HOG "
                  "detector upsamples every photo); speed-ups compare images per second.", ""]
    lines += ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c, _ in COLUMNS) + " |")
    lines.append("")
    copies = [r for r in rows if r["processed"] < r["images"]]
    if copies:
        lines += [f"processed: images actually decoded and detected. facedist recognises byte-identical "
                  f"files and processes each content once ({copies[0]['images'] - copies[0]['processed']} "
                  f"of {copies[0]['images']} here are copies); images/s counts every file.", ""]
    lines += ["wall s (process): the variant as a whole process, start-up and model loading "
              "included; images/s and the speed-ups come from it. in-process s: from the "
              "variant's own start to its end. RSS peak: the process tree, sampled every 50 ms. "
              "CPU %: 100 = one core busy. count agrees: share of images whose face count agrees "
              "with `facedist` (study variants keep one face: found / not found). box IoU: largest "
              "face against `facedist`'s. ref.: against the `--reference` detections (count: "
              "share of images with the same face count; IoU>=0.9: share of the reference's "
              "matched faces).", ""]
    for r in rows:
        if r.get("ref_disagreements"):
            lines += [f"Images where `{r['variant']}` and the reference count differently:", ""]
            lines += [f"- {line}" for line in r["ref_disagreements"]] + [""]
    if "micro" in result:
        mb = result["micro"]
        lines += ["## Against the machine's bound", "",
                  f"- float32 matmul: {mb['matmul_gflops']} GFLOP/s → InceptionResnetV1 bound "
                  f"{mb['embed_bound_faces_per_s']} faces/s ({FACENET_GFLOP_PER_FACE} GFLOP/face)",
                  f"- embedding at batch 32: {mb['embed_faces_per_s_batch32']} faces/s = "
                  f"{100 * mb['embed_fraction_of_bound']:.0f}% of the bound",
                  f"- distance matrix 20000 x 512: {mb['distance_matrix_20000x512_s']} s = "
                  f"{mb['distance_matrix_gflops']} GFLOP/s = "
                  f"{100 * mb['distance_matrix_fraction_of_bound']:.0f}% of the bound", ""]
    (out / "results.md").write_text("\n".join(lines))


def plot_variants(result: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..monitor import read_timeline

    fig, (ax_cpu, ax_mem) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for r in result["variants"]:
        if not (out / r["variant"] / "perf").exists():  # the plain loop: timed from outside
            continue
        rows, _ = read_timeline(out / r["variant"] / "perf")
        t = [float(x["t"]) for x in rows]
        ax_cpu.plot(t, [float(x["cpu_process"]) for x in rows], lw=0.9, label=r["variant"])
        ax_mem.plot(t, [float(x["rss_mb"]) for x in rows], lw=0.9, label=r["variant"])
    ax_cpu.set_ylabel("CPU % (100 = one core)")
    ax_mem.set_ylabel("RSS MB (process tree)")
    ax_mem.set_xlabel("seconds since the variant started")
    ax_cpu.legend(fontsize=8, ncol=3)
    title = "facedist bench: CPU and memory of each variant"
    if "synthetic" in str(result["weights"]):
        title += " (synthetic FaceNet weights: timing only)"
    ax_cpu.set_title(title)
    fig.tight_layout()
    fig.savefig(out / "timelines.png", dpi=110)
    plt.close(fig)
    return out / "timelines.png"
