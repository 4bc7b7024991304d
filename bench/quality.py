"""Fit and measure facedist.quality (developer tool; the package never imports it).

    .venv/bin/python bench/quality.py centre     # the recognizability centre, from degraded CelebA faces
    .venv/bin/python bench/quality.py lfw        # (a) AUC per cue and combined on lfw-dev; fits the JSON
    .venv/bin/python bench/quality.py degraded   # (b) originals against degraded copies
    .venv/bin/python bench/quality.py gate       # the lowest-quality faces and the look-alikes' quality
    .venv/bin/python bench/quality.py report     # bench/results-quality/quality.md from quality.json

(a) needs a finished default run over lfw-dev (--lfw-run, default /tmp/runs/lfw). CelebA's 30 people
are split: the first 15 (sorted ids) give the centre, the last 15 (and data/labeled/people) the
degraded test (b), so that no face both fits and scores. Results go to bench/results-quality/.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from facedist import quality
from facedist.api import Analyzer, open_db

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results-quality"
CACHE = Path("/tmp/quality-bench")
MODEL = "dlib-resnet"
# "higher is better" for every cue: the ones that grow as a face gets worse are negated
SIGN = {"size": 1, "yaw": -1, "roll": -1, "pitch": -1, "outside": -1, "prob": 1, "recognizability": 1}


def auc(good: np.ndarray, bad: np.ndarray) -> float:
    """ROC AUC of `good` scoring above `bad` (0.5: no better than chance)."""
    # Mann-Whitney U with ties counted half: numpy only (no scikit-learn in the venv)
    values = np.r_[good, bad].astype(np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    uniq, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inverse, ranks) / counts)[inverse]  # mean rank of each tie
    u = ranks[:len(good)].sum() - len(good) * (len(good) + 1) / 2
    return float(u / (len(good) * len(bad)))


def oriented(found: dict, name: str) -> np.ndarray:
    x = found[name]
    if name == "pitch":  # both ways off frontal (about 0.5) are worse
        x = np.abs(x - 0.5)
    return SIGN[name] * x


L2 = 1000.0  # ridge on the standardized coefficients (the classes' weights sum to N, about 5,800)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> tuple:
    """Logistic regression by Newton's method on standardized x, each class weighted to half
    the total (so that 0.5 means even odds whatever the classes' sizes): (mean, scale, coef, b).
    lfw-dev's labelled faces are all large, uncut and confident, so with a weak ridge the fit
    turns each cue into a cliff (a face 16 px between the eyes, or 10% outside, scored 0); the
    ridge keeps the slopes gentle at a cost of 0.015 held-out AUC (quality.md)."""
    mean, scale = x.mean(0), x.std(0) + 1e-9
    z = np.c_[(x - mean) / scale, np.ones(len(x))]
    weight = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1)) * len(y)
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (weight * (p - y)) + l2 * np.r_[w[:-1], 0]
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0])
        w -= np.linalg.solve(hess, grad)
    return mean, scale, w[:-1], w[-1]


def predict(model: tuple, x: np.ndarray) -> np.ndarray:
    mean, scale, coef, b = model
    return 1 / (1 + np.exp(-(b + ((x - mean) / scale) @ coef)))


def machine() -> str:
    import os
    return f"{platform.machine()}, {os.cpu_count()} cores ({platform.processor() or platform.system()})"


def load_json() -> dict:
    path = RESULTS / "quality.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def save_json(key: str, value) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = load_json()
    data[key] = value
    data["machine"] = machine()
    (RESULTS / "quality.json").write_text(json.dumps(data, indent=1))


# -- images ------------------------------------------------------------------------------------
def celeba_split() -> tuple[list[Path], list[Path]]:
    people = sorted(p for p in (SHARED / "celeba").iterdir() if p.is_dir())
    files = lambda ps: sorted(f for p in ps for f in p.glob("*.jpg"))  # noqa: E731
    return files(people[:15]), files(people[15:])


def rgb(path: Path) -> np.ndarray:
    from PIL import ImageOps
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


def largest(analyzer: Analyzer, pixels: np.ndarray):
    faces = analyzer.get(pixels)
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) if faces else None


def eye_distance(face) -> float:
    return float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))


# -- the centre --------------------------------------------------------------------------------
def cmd_centre(args) -> None:
    """The mean embedding of heavily degraded faces: blurred past recognition, or 3-5 px between
    the eyes (faces of 8-14 px), embedded at their known landmarks (the detector would not find
    them), through facedist's own aligner and embedder."""
    from facedist.detect import FaceDetection
    from facedist.embed import embed_faces

    train, _ = celeba_split()
    analyzer = Analyzer(model=MODEL, device="cpu")
    pipe = analyzer.pipeline
    rng = np.random.default_rng(0)
    degraded, originals = [], []
    for path in train:
        pixels = rgb(path)
        face = largest(analyzer, pixels)
        if face is None:
            continue
        originals.append(face.embedding)
        d = eye_distance(face)
        variants = []
        for sigma in (0.5 * d, 1.0 * d):
            variants.append((np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(sigma))), 1.0))
        for target in (3.0, 5.0):
            s = target / d
            small = Image.fromarray(pixels).resize((max(1, round(pixels.shape[1] * s)),
                                                    max(1, round(pixels.shape[0] * s))), Image.BILINEAR)
            variants.append((np.asarray(small), s))
        for im, s in variants:
            det = FaceDetection(np.asarray(face.box) * s, 0.0, face.landmarks * s)
            crops = pipe.aligner.align(im, [det])
            degraded.append(embed_faces(pipe.embedder, crops, pipe.mirror, pipe.embed_batch_size)[0])
        rng.random()
    degraded, originals = np.array(degraded), np.array(originals)
    centre = degraded.mean(0)
    unit = centre / np.linalg.norm(centre)
    cos_deg, cos_orig = degraded @ unit, originals @ unit
    print(f"{len(originals)} faces, {len(degraded)} degraded; cosine to the centre: degraded "
          f"{cos_deg.mean():.3f} ± {cos_deg.std():.3f}, originals {cos_orig.mean():.3f} ± {cos_orig.std():.3f}")
    CACHE.mkdir(exist_ok=True)
    np.save(CACHE / f"centre-{MODEL}.npy", centre.astype(np.float32))
    save_json("centre", {"model": MODEL, "faces": len(originals), "degraded": len(degraded),
                         "people": "CelebA, the first 15 ids (sorted)",
                         "degradations": "Gaussian blur sigma 0.5 and 1.0 eye distances; downscaled to 3 and 5 px between the eyes",
                         "norm_of_mean": float(np.linalg.norm(centre)),
                         "cosine_degraded": [float(cos_deg.mean()), float(cos_deg.std())],
                         "cosine_originals": [float(cos_orig.mean()), float(cos_orig.std())],
                         "command": " ".join(sys.argv)})


def centre_or_none() -> np.ndarray | None:
    path = CACHE / f"centre-{MODEL}.npy"
    return np.load(path) if path.is_file() else None


def raw_cues(boxes, marks, probs, emb, wh) -> dict:
    """quality.cues, with the recognizability of the centre just fitted (not the shipped one)."""
    found = quality.cues(boxes, marks, probs, np.zeros((len(boxes), 0), np.float32), wh, "detector")
    centre = centre_or_none()
    if centre is not None:
        c = centre / np.linalg.norm(centre)
        found["recognizability"] = 1 - (emb @ c).astype(np.float64) / np.linalg.norm(emb, axis=1)
    return found


# -- (a) lfw-dev -------------------------------------------------------------------------------
def cmd_lfw(args) -> None:
    from facedist.evaluate import central_faces

    root = SHARED / "lfw-dev" / "lfw"
    rows, table, db = central_faces(Path(args.lfw_run), root)
    sizes = db.store.image_sizes()
    wh = np.array([sizes[p] for p in table.paths], np.float64)
    found = raw_cues(table.boxes, table.landmarks, table.probs, table.embeddings, wh)
    y = np.zeros(len(table), int)
    y[list(rows.values())] = 1
    person = np.array([Path(p).parent.name for p in table.paths])
    names = np.unique(person)
    fold_of = dict(zip(np.random.default_rng(0).permutation(names), np.arange(len(names)) % 10))
    fold = np.array([fold_of[p] for p in person])
    print(f"lfw-dev: {len(table)} faces, {y.sum()} labelled, {len(y) - y.sum()} other detections, "
          f"{len(names)} people in 10 folds")
    per_cue = {c: auc(oriented(found, c)[y == 1], oriented(found, c)[y == 0]) for c in found}
    for c, a in per_cue.items():
        print(f"  {c:16s} AUC {a:.4f}")

    def features(names_):
        return np.stack([found[c] if c != "pitch" else np.abs(found[c] - 0.5) for c in names_], 1)

    def cross_validate(names_):
        x, held, scores = features(names_), [], np.zeros(len(y))
        for f in range(10):
            test = fold == f
            model = fit_logistic(x[~test], y[~test])
            scores[test] = predict(model, x[test])
            held.append(auc(scores[test & (y == 1)], scores[test & (y == 0)]))
        return held, scores

    candidates = [c for c in ("size", "yaw", "roll", "pitch", "outside", "prob", "recognizability")
                  if c in found]
    sets = {"all": candidates}
    for c in candidates:
        sets[f"all but {c}"] = [k for k in candidates if k != c]
    # roll is left out: alignment undoes it, and lfw-dev's labelled faces are upright because
    # an upright detector chose them (with roll in, yaw's coefficient turns the wrong way)
    chosen = [c for c in args.cues.split(",") if c in found]
    sets["chosen"] = chosen
    sets["chosen, detector only"] = [c for c in chosen if c != "recognizability"]
    cv = {}
    for label, names_ in sets.items():
        held, scores = cross_validate(names_)
        cv[label] = {"cues": names_, "folds": held, "mean": float(np.mean(held)), "std": float(np.std(held)),
                     "pooled": auc(scores[y == 1], scores[y == 0])}
        print(f"  {label:28s} held-out AUC {np.mean(held):.4f} ± {np.std(held):.4f} "
              f"(min {np.min(held):.4f}, pooled {cv[label]['pooled']:.4f})")
        if label == "chosen":
            chosen_scores = scores
        if label == "chosen, detector only":
            detector_scores = scores
    gates = {}
    for label, s in (("dlib-resnet", chosen_scores), ("detector only", detector_scores)):
        gates[label] = {f"{t:.2f}": {"labelled_under": float((s[y == 1] < t).mean()),
                                     "others_under": float((s[y == 0] < t).mean())}
                        for t in np.arange(0.1, 0.91, 0.05)}
    for label in gates:
        print(f"  gate ({label}, held-out scores): " + ", ".join(
            f"{t}: {g['labelled_under']:.1%}/{g['others_under']:.1%}" for t, g in gates[label].items()
            if t in ("0.20", "0.30", "0.40", "0.50", "0.60")))
    # the shipped fit: all of lfw-dev
    shipped = {}
    for label, names_ in (("dlib-resnet", chosen), ("detector", sets["chosen, detector only"])):
        mean, scale, coef, b = fit_logistic(features(names_), y)
        spec = {"cues": names_, "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(),
                "intercept": float(b),
                "fitted_on": "lfw-dev (default run): the labelled face of each photo against the other "
                             "detections, classes weighted equally; bench/quality.py lfw",
                "centre": None}
        if "recognizability" in names_:
            spec["centre"] = [round(float(v), 6) for v in centre_or_none()]
            spec["centre_from"] = "mean dlib-resnet embedding of degraded CelebA faces (bench/quality.py centre)"
        if "pitch" in names_:
            raise SystemExit("pitch is scored as |pitch - 0.5| here but raw in quality.py: keep it out")
        (quality.WEIGHTS / f"quality-{label}.json").write_text(json.dumps(spec, indent=1) + "\n")
        shipped[label] = {k: spec[k] for k in ("cues", "coef", "intercept")}
    quality.fitted.cache_clear()
    save_json("lfw", {"faces": len(y), "labelled": int(y.sum()), "others": int(len(y) - y.sum()),
                      "per_cue": per_cue, "cv": cv, "gates": gates, "shipped": shipped,
                      "run": args.lfw_run, "command": " ".join(sys.argv)})
    db.close()


# -- (b) degraded copies -----------------------------------------------------------------------
def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def degrade(pixels: np.ndarray, face, kind: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """A degraded copy and where the face's box should now be."""
    im, box = Image.fromarray(pixels), np.asarray(face.box, np.float64)
    if kind.startswith("blur"):
        return np.asarray(im.filter(ImageFilter.GaussianBlur(float(kind[4:])))), box
    if kind == "small":  # the face 12-24 px wide
        s = rng.uniform(12, 24) / (box[2] - box[0])
        size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
        return np.asarray(im.resize(size, Image.BILINEAR)), box * s
    if kind == "cut":  # the photo's edge cuts 30-60% of the box away
        f = rng.uniform(0.3, 0.6)
        w, h = box[2] - box[0], box[3] - box[1]
        side = rng.integers(3)
        if side == 0:  # left
            x = int(box[0] + f * w)
            return pixels[:, x:], box - [x, 0, x, 0]
        if side == 1:  # right
            return pixels[:, :int(box[2] - f * w)], box
        return pixels[:int(box[3] - f * h)], box  # bottom
    raise ValueError(kind)


def cmd_degraded(args) -> None:
    _, test = celeba_split()
    per = {}
    test = [f for f in test if per.setdefault(f.parent, []).append(f) or len(per[f.parent]) <= args.per_person]
    test += sorted((SHARED / "labeled" / "people").rglob("*.jp*g"))
    analyzer = Analyzer(model=MODEL, device="cpu", min_face_size=12)
    rng = np.random.default_rng(1)
    kinds = ["blur2", "blur4", "blur8", "small", "cut"]
    rows = {k: [] for k in ["original"] + kinds}  # (box, marks, prob, emb, wh)
    missed = {k: 0 for k in kinds}
    eyes = []
    t0 = time.time()
    for path in test:
        pixels = rgb(path)
        face = largest(analyzer, pixels)
        if face is None:
            continue
        eyes.append(eye_distance(face))
        rows["original"].append((face.box, face.landmarks, face.prob, face.embedding, pixels.shape[1::-1]))
        for kind in kinds:
            im, expect = degrade(pixels, face, kind, rng)
            found = [f for f in analyzer.get(im) if iou(f.box, expect) > 0.3]
            if not found:
                missed[kind] += 1
                continue
            f = max(found, key=lambda f: iou(f.box, expect))
            rows[kind].append((f.box, f.landmarks, f.prob, f.embedding, im.shape[1::-1]))
        print(".", end="", flush=True)
    print(f"{len(rows['original'])} photos ({time.time() - t0:.0f} s); eye distance median "
          f"{np.median(eyes):.0f} px; not found: {missed}")
    scored = {}
    for kind, r in rows.items():
        arr = [np.array([x[i] for x in r], np.float64 if i != 3 else np.float32) for i in range(5)]
        found = raw_cues(*arr)
        found["combined"] = quality.face_quality(*arr, MODEL).astype(np.float64)
        found["combined, detector only"] = quality.face_quality(*arr, "detector").astype(np.float64)
        scored[kind] = found
    result = {"photos": len(rows["original"]), "eye_distance_median": float(np.median(eyes)),
              "found": {k: len(v) for k, v in rows.items()}, "not_found": missed, "auc": {},
              "quality_median": {k: float(np.median(v["combined"])) for k, v in scored.items()},
              "command": " ".join(sys.argv),
              "photos_from": "CelebA, the last 15 ids (sorted), and data/labeled/people"}
    names = list(scored["original"])
    print(f"  {'cue':24s} " + " ".join(f"{k:>7s}" for k in kinds))
    for c in names:
        good = scored["original"][c] if c.startswith("combined") else oriented(scored["original"], c)
        row = {}
        for k in kinds:
            bad = scored[k][c] if c.startswith("combined") else oriented(scored[k], c)
            row[k] = auc(good, bad) if len(bad) else None
        result["auc"][c] = row
        print(f"  {c:24s} " + " ".join(f"{row[k]:7.3f}" if row[k] is not None else "      -" for k in kinds))
    print("  median quality: " + ", ".join(f"{k} {v:.2f}" for k, v in result["quality_median"].items()))
    save_json("degraded", result)


# -- the gate on other runs ---------------------------------------------------------------------
def cmd_gate(args) -> None:
    import csv

    out = {}
    for run in args.runs:
        db = open_db(run)
        table = db.faces()
        sizes = db.store.image_sizes()
        wh = np.array([sizes.get(p, (0, 0)) for p in table.paths], np.float64)
        # scored afresh with the shipped fit (what the run stored may predate it)
        q = quality.face_quality(table.boxes, table.landmarks, table.probs, table.embeddings, wh,
                                 db.settings.model)
        row_of = {int(f): i for i, f in enumerate(table.face_ids)}
        low = np.argsort(q)[:20]
        print(f"\n{run}: {len(table)} faces, gate {db.min_quality:.2f}; under it {np.mean(q < db.min_quality):.1%}")
        found = quality.cues(table.boxes, table.landmarks, table.probs, table.embeddings, wh, db.settings.model)
        print("  20 lowest quality (q, size=log2 eye px, yaw, outside, prob, recognizability, path #face):")
        lowest = []
        for i in low:
            lowest.append({"face_id": int(table.face_ids[i]), "quality": float(q[i]), "path": table.paths[i],
                           **{c: float(found[c][i]) for c in ("size", "yaw", "outside", "prob", "recognizability")
                              if c in found}})
            print(f"    {q[i]:.3f}  {found['size'][i]:.2f} {found['yaw'][i]:.2f} {found['outside'][i]:.2f} "
                  f"{table.probs[i]:.3f} {found.get('recognizability', np.full(len(q), np.nan))[i]:.3f}  "
                  f"{Path(table.paths[i]).name} #{table.face_index[i]}")
        pairs = []
        with open(Path(run) / "lookalikes.csv", newline="") as fh:
            for r in list(csv.DictReader(fh))[:10]:
                ids = [int(r["face_a"]), int(r["face_b"])]
                qa = [float(q[row_of[f]]) for f in ids if f in row_of]
                pairs.append({"distance": float(r["distance"]), "faces": ids, "quality": qa})
        print("  top 10 look-alikes: distance, quality of both faces")
        for p in pairs:
            print(f"    {p['distance']:.3f}  " + "  ".join(f"{v:.3f}" for v in p["quality"]) + f"   faces {p['faces']}")
        out[run] = {"faces": len(table), "gate": db.min_quality, "under_gate": float(np.mean(q < db.min_quality)),
                    "lowest": lowest, "top_lookalikes": pairs}
        db.close()
    save_json("gate", out)


def cmd_report(args) -> None:
    """bench/results-quality/quality.md from quality.json."""
    d = load_json()
    md = ["# Face quality (facedist.quality): what each cue tells", "",
          f"Machine: {d.get('machine')}, shared with other jobs. Model: {MODEL} (4 views).", ""]
    if "centre" in d:
        c = d["centre"]
        md += ["## The recognizability centre", "", f"`{c['command']}`", "",
               f"{c['degraded']} degraded copies of {c['faces']} faces ({c['people']}): {c['degradations']}. "
               f"Cosine to the centre: degraded {c['cosine_degraded'][0]:.3f} ± {c['cosine_degraded'][1]:.3f}, "
               f"the same faces undegraded {c['cosine_originals'][0]:.3f} ± {c['cosine_originals'][1]:.3f}.", ""]
    if "lfw" in d:
        a = d["lfw"]
        md += ["## (a) lfw-dev: the labelled face of each photo against the other detections", "",
               f"`{a['command']}` on the run `{a['run']}` (`facedist run ../shared/data/lfw-dev/lfw --out {a['run']}`)", "",
               f"{a['faces']} faces: {a['labelled']} labelled (nearest the photo's centre), {a['others']} others "
               "(background faces, false detections). ROC AUC (1: every labelled face above every other):", "",
               "| cue | AUC alone |", "|---|---|"]
        md += [f"| {c} | {v:.4f} |" for c, v in a["per_cue"].items()]
        md += ["", "Logistic regressions on standardized cues (ridge 1000, classes weighted equally), "
               "10 folds of people (by name): fitted on 9, scored on the 10th.", "",
               "| cues | held-out AUC, mean ± sd over folds | min fold | pooled |", "|---|---|---|---|"]
        md += [f"| {k}: {', '.join(v['cues'])} | {v['mean']:.4f} ± {v['std']:.4f} | {min(v['folds']):.4f} | {v['pooled']:.4f} |"
               for k, v in a["cv"].items()]
        md += ["", "Per fold (chosen): " + ", ".join(f"{v:.4f}" for v in a["cv"]["chosen"]["folds"]), "",
               "Share under a gate (held-out scores): labelled faces / other detections", "",
               "| gate | " + " | ".join(a["gates"]) + " |", "|---|" + "---|" * len(a["gates"])]
        for t in a["gates"]["dlib-resnet"]:
            md.append(f"| {t} | " + " | ".join(f"{g[t]['labelled_under']:.1%} / {g[t]['others_under']:.1%}"
                                               for g in a["gates"].values()) + " |")
        md += ["", "Shipped (fitted on all of lfw-dev): " + "; ".join(
            f"{k}: " + ", ".join(f"{c} {w:+.2f}" for c, w in zip(v["cues"], v["coef"])) + f", intercept {v['intercept']:+.2f}"
            for k, v in a["shipped"].items()), ""]
    if "degraded" in d:
        b = d["degraded"]
        kinds = list(next(iter(b["auc"].values())))
        md += ["## (b) labelled faces against degraded copies of themselves", "",
               f"`{b['command']}`", "",
               f"{b['photos']} photos ({b['photos_from']}), face eye distance median {b['eye_distance_median']:.0f} px; "
               "blurN: Gaussian blur of radius N px; small: downscaled so the face is 12-24 px wide (detector at "
               "min_face_size 12); cut: the photo cut through the face so 30-60% of its box is outside (left, right "
               f"or bottom). Faces found: {b['found']}; not found: {b['not_found']}. Turned faces were not made "
               "(no cheap faithful way): yaw is validated on (a) only. AUC of originals against each kind "
               "(combined: the shipped scores, fitted on lfw-dev only):", "",
               "| cue | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for c, row in b["auc"].items():
            md.append(f"| {c} | " + " | ".join("-" if row[k] is None else f"{row[k]:.3f}" for k in kinds) + " |")
        md += ["", "Median quality: " + ", ".join(f"{k} {v:.2f}" for k, v in b["quality_median"].items()), ""]
    if "gate" in d:
        md += ["## The gate on other runs", ""]
        for run, g in d["gate"].items():
            md += [f"### {run}", "", f"{g['faces']} faces; {g['under_gate']:.1%} under the gate {g['gate']:.2f}.", "",
                   "20 lowest: " + "; ".join(f"{Path(x['path']).name} {x['quality']:.3f}" for x in g["lowest"]), "",
                   "Top 10 look-alikes (distance: quality of both faces): " + "; ".join(
                       f"{p['distance']:.3f}: " + "/".join(f"{q:.2f}" for q in p["quality"]) for p in g["top_lookalikes"]), ""]
    (RESULTS / "quality.md").write_text("\n".join(md) + "\n")
    print(RESULTS / "quality.md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("centre")
    a = sub.add_parser("lfw")
    a.add_argument("--lfw-run", default="/tmp/runs/lfw")
    a.add_argument("--cues", default="size,yaw,outside,prob,recognizability",
                   help="comma-separated cues to ship")
    d = sub.add_parser("degraded")
    d.add_argument("--per-person", type=int, default=8, help="CelebA photos per person (of 8)")
    g = sub.add_parser("gate")
    g.add_argument("runs", nargs="*", default=["/tmp/runs/celeba", "/tmp/runs/humans"])
    sub.add_parser("report")
    args = p.parse_args()
    {"centre": cmd_centre, "lfw": cmd_lfw, "degraded": cmd_degraded, "gate": cmd_gate,
     "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
