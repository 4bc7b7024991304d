"""Stand-in embeddings for a million faces, shaped like real ones, stored as a real run stores them.

    # 1. fit: real dlib-resnet embeddings of labelled photos (a run's output folder per set; the
    #    label of a photo's largest face is its folder's name)
    facedist run ../shared/data/celeba --out /tmp/real/celeba
    facedist run ../shared/data/lfw-dev/lfw --out /tmp/real/lfw
    python bench/scale_data.py fit /tmp/real/celeba /tmp/real/lfw --out bench/results-scale
    # 2. make: N faces in OUT/facedist.sqlite (committed model: no real run needed)
    python bench/scale_data.py make --faces 1000000 --out /tmp/scale/out-1000000

The model: a person's centre is drawn from a Gaussian with the mean and the between-person
covariance of the real people, each face from that centre plus the pooled within-person
covariance, then made unit length (as facedist's dlib embeddings are). Two scale factors are
tuned so that the median same-person and different-person distances equal the real ones; the
fit writes the quantiles of both, real against generated (distance-model.md). Person sizes
follow a discrete power law (exponent ALPHA, 1 to MAX_SIZE faces): most people have 1-5 faces,
the largest a few thousand, as in a family's photo library. Faces sit 1-3 to a photo.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ALPHA = 2.1  # person sizes: P(s) ~ s^-ALPHA
MAX_SIZE = 5000
QUANTILES = [1, 5, 25, 50, 75, 95, 99]
KEY = "scale|generated"


# -- fit ----------------------------------------------------------------------------------------
def labelled(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """The largest face of each photo of a run's output folder and its folder name as label."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from facedist.api import open_db

    t = open_db(out).faces()
    area = (t.boxes[:, 2] - t.boxes[:, 0]) * (t.boxes[:, 3] - t.boxes[:, 1])
    best: dict[str, int] = {}
    for i, p in enumerate(t.paths):
        if p not in best or area[i] > area[best[p]]:
            best[p] = i
    rows = np.array(sorted(best.values()))
    names = np.array([Path(t.paths[i]).parent.name for i in rows])
    return t.embeddings[rows].astype(np.float64), np.unique(names, return_inverse=True)[1]


def distances(x: np.ndarray, label: np.ndarray, rng, pairs: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """All same-person distances, and `pairs` random different-person ones."""
    same = []
    for p in np.unique(label):
        m = x[label == p]
        if len(m) > 1:
            d = np.sqrt(np.maximum(((m[:, None] - m[None]) ** 2).sum(-1), 0))
            same.append(d[np.triu_indices(len(m), 1)])
    a, b = rng.integers(0, len(x), (2, pairs))
    keep = label[a] != label[b]
    diff = np.linalg.norm(x[a[keep]] - x[b[keep]], axis=1)
    return np.concatenate(same), diff


def covariances(x: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, between-person and pooled within-person covariance (unbiased)."""
    ids, inv, counts = np.unique(label, return_inverse=True, return_counts=True)
    centre = np.zeros((len(ids), x.shape[1]))
    np.add.at(centre, inv, x)
    centre /= counts[:, None]
    dev = (x - centre[inv])[counts[inv] > 1]
    dof = (counts[counts > 1] - 1).sum()
    within = dev.T @ dev / dof
    between = np.cov(centre.T) - np.mean(1 / counts) * within
    vals, vecs = np.linalg.eigh(between)
    between = (vecs * np.maximum(vals, 0)) @ vecs.T
    return x.mean(0), between, within


def sample(model: dict, sizes: np.ndarray, rng) -> np.ndarray:
    """Unit-length faces of people of `sizes` (in order), float32. Each person's spread, and
    each face's distance from its person, vary by log-normal factors (sigma_person, sigma_face):
    some people change more than others, and some photos are poor."""
    a, b = model["a"], model["b"]
    sp, sf = model["sigma_person"], model["sigma_face"]
    dim = len(model["mean"])
    lb = np.linalg.cholesky(model["between"] * a * a + 1e-12 * np.eye(dim))
    lw = np.linalg.cholesky(model["within"] * b * b + 1e-12 * np.eye(dim))
    out = np.empty((int(sizes.sum()), dim), np.float32)
    step = 50_000  # people a batch
    at = 0
    for s in range(0, len(sizes), step):
        sz = sizes[s:s + step]
        centres = model["mean"] + rng.standard_normal((len(sz), dim)) @ lb.T
        rep = np.repeat(centres, sz, axis=0)
        spread = np.repeat(np.exp(sp * rng.standard_normal(len(sz)) - sp * sp / 2), sz)
        spread *= np.exp(sf * rng.standard_normal(len(rep)) - sf * sf / 2)
        x = rep + (rng.standard_normal(rep.shape) @ lw.T) * spread[:, None]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[at:at + len(x)] = x
        at += len(x)
    return out


def fit(real: list[Path], dest: Path) -> None:
    rng = np.random.default_rng(0)
    xs, labels, report = [], [], {}
    for k, out in enumerate(real):
        x, lab = labelled(out)
        same, diff = distances(x, lab, rng)
        report[out.name] = {"faces": len(x), "people": int(lab.max() + 1),
                            "same": np.percentile(same, QUANTILES).round(4).tolist(),
                            "different": np.percentile(diff, QUANTILES).round(4).tolist()}
        xs.append(x)
        labels.append(lab + (labels[-1].max() + 1 if labels else 0))
    x, lab = np.concatenate(xs), np.concatenate(labels)
    same, diff = distances(x, lab, rng)
    target = np.median(same), np.median(diff)
    mean, between, within = covariances(x, lab)
    sizes = np.full(400, 6)
    truth = np.repeat(np.arange(400), 6)
    want = np.percentile(same, QUANTILES[1:-1]), np.percentile(diff, QUANTILES[1:-1])
    best = None
    for sp in (0.0, 0.1, 0.2, 0.3):  # the spreads' factors: a small grid, scored by quantiles
        for sf in (0.0, 0.1, 0.2, 0.3, 0.4):
            model = {"mean": mean, "between": between, "within": within, "a": 1.0, "b": 1.0,
                     "sigma_person": sp, "sigma_face": sf}
            for _ in range(6):  # two medians, two scales: a few fixed-point steps
                g = sample(model, sizes, np.random.default_rng(1)).astype(np.float64)
                gs, gd = distances(g, truth, np.random.default_rng(2), 100_000)
                model["b"] *= target[0] / np.median(gs)
                model["a"] *= (target[1] / np.median(gd)) ** 1.5
            g = sample(model, sizes, np.random.default_rng(1)).astype(np.float64)
            gs, gd = distances(g, truth, np.random.default_rng(2), 100_000)
            score = (np.sum((np.percentile(gs, QUANTILES[1:-1]) - want[0]) ** 2)
                     + np.sum((np.percentile(gd, QUANTILES[1:-1]) - want[1]) ** 2))
            if best is None or score < best[0]:
                best = (score, model, gs, gd)
    _, model, gs, gd = best
    report["all real"] = {"faces": len(x), "people": int(lab.max() + 1),
                          "same": np.percentile(same, QUANTILES).round(4).tolist(),
                          "different": np.percentile(diff, QUANTILES).round(4).tolist()}
    report["generated"] = {"faces": len(g), "people": 400,
                           "same": np.percentile(gs, QUANTILES).round(4).tolist(),
                           "different": np.percentile(gd, QUANTILES).round(4).tolist()}
    dest.mkdir(parents=True, exist_ok=True)
    np.savez(dest / "embedding-model.npz", **{k: np.asarray(v) for k, v in model.items()})
    lines = ["# Real and generated embedding distances\n",
             f"`python bench/scale_data.py fit {' '.join(map(str, real))} --out {dest}`: dlib-resnet "
             f"(4 views), the largest face of each photo labelled by its folder. Quantiles "
             f"{', '.join(f'{q}%' for q in QUANTILES)} of same-person and different-person "
             f"distances (different: 200,000 random pairs). Scales a = {model['a']:.4f} "
             f"(between), b = {model['b']:.4f} (within); log-normal spread factors "
             f"{model['sigma_person']} (person), {model['sigma_face']} (face).\n",
             "| set | faces | people | same-person | different-person |", "|---|---|---|---|---|"]
    for name, r in report.items():
        lines.append(f"| {name} | {r['faces']} | {r['people']} | {' / '.join(map(str, r['same']))} "
                     f"| {' / '.join(map(str, r['different']))} |")
    (dest / "distance-model.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# -- make ---------------------------------------------------------------------------------------
def person_sizes(n_faces: int, rng) -> np.ndarray:
    """Heavy-tailed person sizes summing to n_faces."""
    s = np.arange(1, MAX_SIZE + 1)
    p = s ** -ALPHA
    p /= p.sum()
    sizes = rng.choice(s, size=int(n_faces / (s * p).sum() * 1.2) + 10, p=p)
    sizes = sizes[np.cumsum(sizes) <= n_faces]
    if sizes.sum() < n_faces:
        sizes = np.append(sizes, n_faces - sizes.sum())
    return sizes


def make(n_faces: int, out: Path, model_path: Path, seed: int = 0) -> dict:
    """OUT/facedist.sqlite with n_faces generated faces under a finished run; the true person of
    each face (store order) in OUT/truth.npy."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from facedist.config import Settings
    from facedist.store import FaceStore, ImageResult

    rng = np.random.default_rng(seed)
    m = np.load(model_path)
    model = {k: (m[k] if m[k].ndim else float(m[k])) for k in m.files}
    sizes = person_sizes(n_faces, rng)
    x = sample(model, sizes, rng)
    person = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(n_faces)  # people's faces scattered over the library
    x, person = x[order], person[order]
    per_photo = rng.integers(1, 4, n_faces)  # faces on each photo, taken in order
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings(photos=Path("/library"), out=out, progress=False)
    store = FaceStore(out)
    run_id = store.begin_run(KEY, settings.model, "/library", settings.to_dict(), {"generated": "1"})
    at, photo, chunk, paths = 0, 0, [], []
    t0 = time.perf_counter()
    while at < n_faces:
        n = int(min(per_photo[photo], n_faces - at))
        path = f"/library/{photo // 1000:04d}/photo-{photo:07d}.jpg"
        box = np.array([[10 + 100 * i, 10, 90 + 100 * i, 90] for i in range(n)], np.float32)
        chunk.append(ImageResult(store.image_id(path, 1000 + photo, photo), 100 * n, 100,
                                 f"{photo:064x}", box, np.full(n, 0.99, np.float32),
                                 np.zeros((n, 5, 2), np.float32), x[at:at + n]))
        paths.append(path)
        at += n
        photo += 1
        if len(chunk) == 2000:
            store.save_chunk(run_id, KEY, settings.model, chunk)
            chunk = []
    store.save_chunk(run_id, KEY, settings.model, chunk)
    store.finish_run(run_id, {"found": photo}, seen=paths)
    store.close()
    # store order is by path then face index: the order faces were made in
    np.save(out / "truth.npy", person)
    info = {"faces": n_faces, "photos": photo, "people": int(len(sizes)),
            "largest": int(sizes.max()), "people_1_to_5": round(float((sizes <= 5).mean()), 3),
            "store_seconds": round(time.perf_counter() - t0, 1)}
    (out / "generated.json").write_text(json.dumps(info, indent=1))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("real", type=Path, nargs="+", help="output folders of real runs")
    f.add_argument("--out", type=Path, default=Path("bench/results-scale"))
    mk = sub.add_parser("make")
    mk.add_argument("--faces", type=int, required=True)
    mk.add_argument("--out", type=Path, required=True)
    mk.add_argument("--model", type=Path, default=Path("bench/results-scale/embedding-model.npz"))
    args = ap.parse_args()
    if args.cmd == "fit":
        fit(args.real, args.out)
    else:
        print(json.dumps(make(args.faces, args.out, args.model), indent=1))


if __name__ == "__main__":
    main()
