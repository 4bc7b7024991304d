"""facedist against dlib's own pipeline on LFW (lfw-dev, 7 folds), stage by stage (issue 26).

    python bench/identity_vs_dlib.py ../shared/data/lfw-dev --run /tmp/runs/lfw \\
        --work /tmp/identity --out bench/results-identity/identity-vs-dlib

--run: a finished default facedist run over lfw-dev/lfw (`facedist eval lfw`), whose database
holds MTCNN's box, landmarks and the 4-view embedding of every face. Every stage caches under
--work, so a second call only redoes what is missing.

Stages (each photo's face: the one nearest the centre, as `evaluate.central_faces`):
1. prep: per photo, dlib's HOG detector (upsampled once, as dlib's examples), the HOG face
   nearest the centre (the median HOG box where it finds none); dlib's 5-point predictor in
   MTCNN's box (what facedist does) and in the HOG box; dlib's chips of both; the chip warped from
   MTCNN's own landmarks (facedist's second view).
2. embed: facedist's torch port of dlib's ResNet on each chip set (and mirrors where facedist
   uses them); dlib's native ResNet on dlib's own chips (HOG box), fold by fold (--native-folds).
3. levers, chosen by cross-validation over folds (fit on 6 folds, apply to the 7th): MTCNN's box
   mapped to where the HOG box lies (median of HOG box relative to MTCNN's box), predictor +
   chip + port in that box.
4. report (.json, and the figures of .md below its marker line; the prose above it is kept):
   per fold accuracy (evaluate.fold_accuracy: threshold best on the other folds) of
   every variant; per-stage differences (box IoU, landmarks, chips, port vs native cosine);
   the pairs that one pipeline gets wrong and the other right; stage swaps per fold; the
   default number of views chosen by cross-validation; four views only for pairs near the
   threshold (band chosen by nested cross-validation) and what that would cost in a collection.

On other LFW folds (e.g. folds 1-3, with their own pairs.txt and a facedist run over their
photos) pass --first-fold 1: every stage runs the same way there.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

CHIP = 150
PAD = 0.25


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes [N, 4] (x1, y1, x2, y2, continuous)."""
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def setup(root: Path, run: Path):
    from facedist.evaluate import central_faces, read_pairs

    folds, pairs = read_pairs(root / "pairs.txt")
    lfw = (root / "lfw").resolve()
    rows, table, db = central_faces(run, lfw)
    photos = sorted({p for a, b, _ in pairs for p in (a, b)})
    index = {p: k for k, p in enumerate(photos)}
    per_fold = len(pairs) // folds
    fold_of = np.full(len(photos), -1)
    for k, (a, b, _) in enumerate(pairs):
        for p in (a, b):
            f = k // per_fold
            if fold_of[index[p]] not in (-1, f):
                raise SystemExit(f"{p} is in two folds")
            fold_of[index[p]] = f
    med_box = np.median([table.boxes[i] for i in rows.values()], 0)
    med_marks = np.median([table.landmarks[i] for i in rows.values()], 0)
    found = np.array([p in rows for p in photos])
    mt_box = np.array([table.boxes[rows[p]] if p in rows else med_box for p in photos], float)
    mt_marks = np.array([table.landmarks[rows[p]] if p in rows else med_marks for p in photos],
                        float)
    stored = np.array([table.embeddings[rows[p]] if p in rows else np.full(128, np.nan)
                       for p in photos], np.float32)
    db.close()
    return dict(folds=folds, pairs=pairs, lfw=lfw, photos=photos, index=index, fold_of=fold_of,
                mt_found=found, mt_box=mt_box, mt_marks=mt_marks, stored=stored)


def load_image(path: Path) -> np.ndarray:
    from facedist.decode import decode_image

    return np.ascontiguousarray(decode_image(path, 10**9, None).pixels)


def dlib_chip(dlib, img, marks) -> np.ndarray:
    points = dlib.points()
    for x, y in marks:
        points.append(dlib.point(int(x), int(y)))
    shape = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), points)
    return np.asarray(dlib.get_face_chip(img, shape, CHIP, PAD), np.uint8)


def prep(s: dict, work: Path) -> dict:
    """HOG boxes, landmarks, chips (cached in work/prep.npz and work/chips-*.npy)."""
    cache = work / "prep.npz"
    if cache.exists():
        return dict(np.load(cache))
    import dlib

    from facedist.align import CHIP_TEMPLATE_150, similarity_transform, warp_chip
    from facedist.models import DLIB_SHAPE_PREDICTOR, resolve_file

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet")))
    n = len(s["photos"])
    hog_box = np.full((n, 4), np.nan)
    hog_count = np.zeros(n, np.int64)
    sizes = np.zeros((n, 2))
    t0 = time.time()
    for k, rel in enumerate(s["photos"]):
        img = load_image(s["lfw"] / rel)
        h, w = img.shape[:2]
        sizes[k] = (w, h)
        dets = hog(img, 1)
        hog_count[k] = len(dets)
        if len(dets):
            d = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in dets], float)
            c = ((d[:, 0] + d[:, 2]) / 2 - w / 2) ** 2 + ((d[:, 1] + d[:, 3]) / 2 - h / 2) ** 2
            hog_box[k] = d[np.argmin(c)]
        if k % 500 == 0:
            print(f"hog {k}/{n} {time.time() - t0:.0f}s", flush=True)
    hog_seconds = time.time() - t0
    hog_found = ~np.isnan(hog_box[:, 0])
    hog_box[~hog_found] = np.median(hog_box[hog_found], 0)
    marks_fd = np.zeros((n, 5, 2))
    marks_hog = np.zeros((n, 5, 2))
    chips = {k: np.lib.format.open_memmap(work / f"chips-{k}.npy", "w+", np.uint8,
                                          (n, CHIP, CHIP, 3)) for k in ("fd", "hog", "mt")}
    t0 = time.time()
    for k, rel in enumerate(s["photos"]):
        img = load_image(s["lfw"] / rel)
        for name, box, out in (("fd", s["mt_box"][k], marks_fd), ("hog", hog_box[k], marks_hog)):
            # facedist rounds MTCNN's float box (align.DlibChipAligner.boxes)
            shape = predictor(img, dlib.rectangle(*(int(round(v)) for v in box)))
            out[k] = [(p.x, p.y) for p in shape.parts()]
            chips[name][k] = dlib_chip(dlib, img, out[k])
        chips["mt"][k] = warp_chip(img, similarity_transform(s["mt_marks"][k], CHIP_TEMPLATE_150),
                                   CHIP)
    for c in chips.values():
        c.flush()
    out = dict(hog_box=hog_box, hog_found=hog_found, hog_count=hog_count, sizes=sizes,
               marks_fd=marks_fd, marks_hog=marks_hog, hog_seconds=np.array(hog_seconds),
               chip_seconds=np.array(time.time() - t0))
    np.savez(cache, **out)
    return out


def chips_of(work: Path, name: str) -> np.ndarray:
    return np.load(work / f"chips-{name}.npy", mmap_mode="r")


_EMB = {}


def port_raw(chips: np.ndarray, mirror: bool = False) -> np.ndarray:
    """facedist's torch port on chips [N, 150, 150, 3] (their mirror images with `mirror`): its
    raw descriptors, 64 chips a batch, the port built once."""
    from facedist.embed import build_embedder
    from facedist.models import get_spec

    if "port" not in _EMB:
        _EMB["port"] = build_embedder(get_spec("dlib-resnet"), None, "cpu")
    parts = []
    for i in range(0, len(chips), 64):
        x = np.asarray(chips[i:i + 64])
        if mirror:
            x = np.ascontiguousarray(x[:, :, ::-1])
        parts.append(_EMB["port"].embed_batch(x))
    return np.concatenate(parts).astype(np.float32)


def port_embed(work: Path, name: str, mirror: bool = False) -> np.ndarray:
    """facedist's torch port on a chip set (unit length), cached."""
    key = f"{name}{'-mirror' if mirror else ''}"
    cache = work / f"emb-port-{key}.npy"
    if cache.exists():
        return np.load(cache)
    c = chips_of(work, name)
    t0 = time.time()
    e = port_raw(c, mirror)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    print(f"port {key}: {len(c)} chips {time.time() - t0:.0f}s", flush=True)
    np.save(cache, e)
    return e


def native_embed(work: Path, s: dict, folds: list[int], raw: bool = False) -> np.ndarray:
    """dlib's native ResNet on dlib's own chips (HOG box), fold by fold, cached per fold
    (NaN rows for folds not computed)."""
    import dlib

    from facedist.models import get_spec, resolve_weights

    net = None
    out = np.full((len(s["photos"]), 128), np.nan, np.float32)
    c = chips_of(work, "hog")
    for f in folds:
        cache = work / f"emb-native-hog-fold{f}.npy"
        rows = np.flatnonzero(s["fold_of"] == f)
        if not cache.exists():
            if net is None:
                net = dlib.face_recognition_model_v1(str(resolve_weights(get_spec("dlib-resnet"))))
            t0 = time.time()
            e = np.concatenate([np.asarray([np.asarray(v) for v in net.compute_face_descriptor(
                [np.ascontiguousarray(c[r]) for r in rows[i:i + 32]])], np.float32)
                for i in range(0, len(rows), 32)])
            print(f"native fold {f}: {len(rows)} chips {time.time() - t0:.0f}s", flush=True)
            np.save(cache, e)
        e = np.load(cache)
        out[rows] = e if raw else e / np.linalg.norm(e, axis=1, keepdims=True)
    return out


def mapped_chips(s: dict, p: dict, work: Path, kind: str = "median") -> tuple[np.ndarray, list]:
    """The lever 'MTCNN box mapped to a HOG-like box', fitted per held-out fold on the other
    folds, over photos where both detectors found the central face and agree (IoU > 0.4), as
    the HOG box's corners relative to MTCNN's box (widths/heights): kind "median", their
    median; kind "landmarks", a least-squares linear map from MTCNN's five landmarks (in the
    same box-relative coordinates). Chips cached."""
    suffix = "" if kind == "median" else f"-{kind}"
    path = work / f"chips-mapped{suffix}.npy"
    fits = []
    rel = np.stack([(p["hog_box"][:, 0] - s["mt_box"][:, 0]), (p["hog_box"][:, 1] - s["mt_box"][:, 1]),
                    (p["hog_box"][:, 2] - s["mt_box"][:, 0]), (p["hog_box"][:, 3] - s["mt_box"][:, 1])], 1)
    w = s["mt_box"][:, 2] - s["mt_box"][:, 0]
    h = s["mt_box"][:, 3] - s["mt_box"][:, 1]
    rel /= np.stack([w, h, w, h], 1)
    marks_rel = (s["mt_marks"] - s["mt_box"][:, None, :2]) / np.stack([w, h], 1)[:, None]
    features = np.concatenate([np.ones((len(w), 1)), marks_rel.reshape(len(w), -1)], 1)
    usable = p["hog_found"] & s["mt_found"] & (iou(p["hog_box"], s["mt_box"]) > 0.4)
    boxes = np.zeros((len(w), 4))
    for f in range(s["folds"]):
        train = usable & (s["fold_of"] != f)
        test = s["fold_of"] == f
        if kind == "median":
            m = np.median(rel[train], 0)
            fits.append({"fold": f, "fit_on": int(train.sum()), "map": np.round(m, 4).tolist()})
            r = np.tile(m, (int(test.sum()), 1))
        else:
            coef = np.linalg.lstsq(features[train], rel[train], rcond=None)[0]
            fits.append({"fold": f, "fit_on": int(train.sum()), "kind": kind})
            r = features[test] @ coef
        boxes[test] = np.stack(
            [s["mt_box"][test, 0] + r[:, 0] * w[test], s["mt_box"][test, 1] + r[:, 1] * h[test],
             s["mt_box"][test, 0] + r[:, 2] * w[test], s["mt_box"][test, 1] + r[:, 3] * h[test]], 1)
    if path.exists():
        return np.load(work / f"mapped{suffix}.npz")["marks"], fits, boxes
    import dlib

    from facedist.models import DLIB_SHAPE_PREDICTOR, resolve_file

    predictor = dlib.shape_predictor(str(resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet")))
    n = len(s["photos"])
    marks = np.zeros((n, 5, 2))
    chips = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), "w+", np.uint8,
                                      (n, CHIP, CHIP, 3))
    for k, rel_path in enumerate(s["photos"]):
        img = load_image(s["lfw"] / rel_path)
        shape = predictor(img, dlib.rectangle(*(int(round(v)) for v in boxes[k])))
        marks[k] = [(q.x, q.y) for q in shape.parts()]
        chips[k] = dlib_chip(dlib, img, marks[k])
    chips.flush()
    del chips
    np.savez(work / f"mapped{suffix}.npz", marks=marks, boxes=boxes)
    os.replace(path.with_suffix(".tmp.npy"), path)
    return marks, fits, boxes


def combined_chips(s: dict, dlib_marks: np.ndarray, work: Path, name: str) -> None:
    """One chip per face placed by both landmark estimates at once: the similarity that maps
    dlib's 5 predictor points onto dlib's chip template and MTCNN's 5 points onto
    align.CHIP_TEMPLATE_150 with the least squared error over all 10 (no fitting on LFW)."""
    path = work / f"chips-{name}.npy"
    if path.exists():
        return
    from facedist.align import CHIP_TEMPLATE_150, DLIB_FACE_TEMPLATE_5, similarity_transform, \
        warp_chip

    dlib_template = (PAD + DLIB_FACE_TEMPLATE_5) / (2 * PAD + 1) * CHIP
    template = np.concatenate([dlib_template, CHIP_TEMPLATE_150])
    n = len(s["photos"])
    chips = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), "w+", np.uint8,
                                      (n, CHIP, CHIP, 3))
    for k, rel_path in enumerate(s["photos"]):
        img = load_image(s["lfw"] / rel_path)
        points = np.concatenate([dlib_marks[k], s["mt_marks"][k]])
        chips[k] = warp_chip(img, similarity_transform(points, template), CHIP)
    chips.flush()
    del chips
    os.replace(path.with_suffix(".tmp.npy"), path)


def parity(s: dict, p: dict, work: Path, count: int = 200) -> dict:
    """facedist's own predictor + chip (align.DlibChipAligner, NumPy) against dlib's, on the
    first `count` photos, in MTCNN's box."""
    from facedist.align import DlibChipAligner
    from facedist.detect import FaceDetection

    import dlib

    al = DlibChipAligner(views=1)
    lm, chip, decode = [], [], []
    fd = chips_of(work, "fd")
    for k in range(count):
        img = load_image(s["lfw"] / s["photos"][k])
        decode.append(np.abs(img.astype(int) - dlib.load_rgb_image(
            str(s["lfw"] / s["photos"][k]))).max())
        face = FaceDetection(s["mt_box"][k].astype(np.float32), 1.0,
                             s["mt_marks"][k].astype(np.float32))
        marks = al.shapes(img, [face])
        lm.append(np.abs(marks[0] - p["marks_fd"][k]).max())
        chip.append(np.abs(al.chips(img, marks)[0].astype(int) - fd[k]).max())
    return {"photos": count, "landmarks_max_abs_px": float(np.max(lm)),
            "chip_max_abs_grey": int(np.max(chip)),
            "decode_facedist_vs_dlib_load_rgb_image_max_abs_grey": int(np.max(decode))}


def lfw_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments this bench and identity_raw.py share: lfw-dev, the run, a work folder, the
    report and LFW's number of the first fold."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="lfw-dev: pairs.txt + lfw/")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="report path without suffix")
    ap.add_argument("--first-fold", type=int, default=4,
                    help="LFW's number of the first fold in pairs.txt (lfw-dev: 4)")
    return ap


def main() -> int:
    ap = lfw_parser(__doc__)
    ap.add_argument("--native-folds", default="all",
                    help="folds (0-based, comma-separated) to embed with dlib's native ResNet")
    ap.add_argument("--stage", default="all", choices=("prep", "embed", "all"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    s = setup(args.root, args.run)
    p = prep(s, args.work)
    if args.stage == "prep":
        return 0
    from facedist.evaluate import fold_accuracy

    nf = s["folds"]
    first = args.first_fold
    native_folds = list(range(nf)) if args.native_folds == "all" else [
        int(v) for v in args.native_folds.split(",")]
    e = {name: port_embed(args.work, name) for name in ("fd", "hog")}
    e["native"] = native_embed(args.work, s, native_folds)
    marks_map, fits, map_boxes = mapped_chips(s, p, args.work)
    e["map"] = port_embed(args.work, "mapped")
    marks_lmap, _, lmap_boxes = mapped_chips(s, p, args.work, "landmarks")
    e["lmap"] = port_embed(args.work, "mapped-landmarks")
    combined_chips(s, p["marks_fd"], args.work, "both")
    e["both"] = port_embed(args.work, "both")
    e["mt"] = port_embed(args.work, "mt")
    for name, chips in (("fd", "fd"), ("mt", "mt"), ("hog", "hog"), ("map", "mapped"),
                        ("lmap", "mapped-landmarks"),
                        ("both", "both")):
        e[name + "-m"] = port_embed(args.work, chips, True)
    if args.stage == "embed":
        return 0

    pairs, index = s["pairs"], s["index"]
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    same = np.array([t for _, _, t in pairs])
    per = len(pairs) // nf
    pair_fold = np.arange(len(pairs)) // per

    def unit(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def dist(v):
        v = unit(v)
        return np.linalg.norm(v[ia] - v[ib], axis=1)

    # the 9 photos without an MTCNN face: the stored run has no row; use the recomputed 4 views
    stored = s["stored"].copy()
    four = unit(e["fd"] + e["fd-m"] + e["mt"] + e["mt-m"])
    miss = np.isnan(stored[:, 0])
    stored[miss] = four[miss]
    variants = {
        "facedist --views 1 (predictor in MTCNN's box, port)": e["fd"],
        "facedist --views 2 (+ mirror)": e["fd"] + e["fd-m"],
        "facedist --views 4 (recomputed)": four,
        "facedist --views 4 (stored run)": stored,
        "dlib's pipeline: HOG box, predictor, chip, native ResNet": e["native"],
        "dlib's pipeline with the torch port (HOG box, predictor, chip, port)": e["hog"],
        "HOG chip + mirror (port)": e["hog"] + e["hog-m"],
        "lever: MTCNN box mapped to HOG-like box (CV), predictor, chip, port": e["map"],
        "lever: mapped box + mirror": e["map"] + e["map-m"],
        "lever: mapped box + MTCNN-landmark chip + both mirrors (4 views)":
            unit(e["map"]) + unit(e["map-m"]) + e["mt"] + e["mt-m"],
        "lever: MTCNN box mapped by its landmarks to a HOG-like box (linear, CV), predictor, "
        "chip, port": e["lmap"],
        "lever: landmark-mapped box + mirror": e["lmap"] + e["lmap-m"],
        "lever: landmark-mapped box + MTCNN-landmark chip + both mirrors (4 views)":
            e["lmap"] + e["lmap-m"] + e["mt"] + e["mt-m"],
        "MTCNN-landmark chip only (port)": e["mt"],
        "lever: one chip from both landmark sets (10-point similarity), port": e["both"],
        "lever: 10-point chip + mirror": e["both"] + e["both-m"],
        "lever: 10-point chip + mirror + facedist's 2 views (4 views + ...)":
            e["both"] + e["both-m"] + e["fd"] + e["fd-m"] + e["mt"] + e["mt-m"],
    }
    results = {}
    dists = {}
    raw_native = native_embed(args.work, s, native_folds, raw=True)
    for name, v in list(variants.items()) + [
            ("dlib's pipeline, dlib's own distance (Euclidean on raw descriptors)", raw_native)]:
        ok = ~np.isnan(v[:, 0])
        folds_ok = [f for f in range(nf) if ok[ia[pair_fold == f]].all() and ok[ib[pair_fold == f]].all()]
        if len(folds_ok) < 2:
            continue
        sel = np.isin(pair_fold, folds_ok)
        d = np.full(len(pairs), np.nan)
        d[sel] = (dist(np.nan_to_num(v)) if "raw descriptors" not in name else np.linalg.norm(
            np.nan_to_num(v)[ia] - np.nan_to_num(v)[ib], axis=1))[sel]
        accs, thr = fold_accuracy(d[sel], same[sel], len(folds_ok))
        dists[name] = d
        results[name] = {"folds": dict(zip([f + first for f in folds_ok], accs)),
                         "thresholds": thr, "mean": float(np.mean(accs)),
                         "std": float(np.std(accs)), "folds_used": len(folds_ok)}
        print(f"{name}: {100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f}", flush=True)

    # per-stage differences, per photo
    hb, mb = p["hog_box"], s["mt_box"]
    box_iou = iou(hb, mb)
    both = p["hog_found"] & s["mt_found"]
    iod = np.linalg.norm(p["marks_hog"][:, 0:2].mean(1) - p["marks_hog"][:, 2:4].mean(1), axis=1)
    lm_fd = np.linalg.norm(p["marks_fd"] - p["marks_hog"], axis=2).mean(1) / iod
    lm_map = np.linalg.norm(marks_map - p["marks_hog"], axis=2).mean(1) / iod
    cos = lambda a, b: np.sum(unit(a) * unit(b), 1)  # noqa: E731
    nat_ok = ~np.isnan(e["native"][:, 0])
    stage = {
        "photos": len(s["photos"]),
        "hog_found": int(p["hog_found"].sum()), "mtcnn_found": int(s["mt_found"].sum()),
        "hog_seconds": float(p["hog_seconds"]),
        "box_iou_mtcnn_vs_hog": pct(box_iou[both]),
        "box_iou_mapped_vs_hog": pct(iou(map_boxes, hb)[both]),
        "box_iou_landmark_mapped_vs_hog": pct(iou(lmap_boxes, hb)[both]),
        "landmarks_landmark_mapped_vs_hog_per_iod": pct(
            (np.linalg.norm(marks_lmap - p["marks_hog"], axis=2).mean(1) / iod)[both]),
        "landmarks_fd_vs_hog_per_iod": pct(lm_fd[both]),
        "landmarks_mapped_vs_hog_per_iod": pct(lm_map[both]),
        "cos_port_fd_chip_vs_port_hog_chip": pct(cos(e["fd"], e["hog"])[both]),
        "cos_port_mapped_chip_vs_port_hog_chip": pct(cos(e["map"], e["hog"])[both]),
        "cos_port_vs_native_same_chip": pct(cos(e["hog"][nat_ok], e["native"][nat_ok])),
        "cos_stored4_vs_recomputed4": pct(cos(s["stored"][~miss], four[~miss])),
        "box_map_fits": fits,
        "parity_facedist_numpy_vs_dlib": parity(s, p, args.work),
    }
    chip_diff = np.abs(chips_of(args.work, "fd")[both].astype(np.int16)
                       - chips_of(args.work, "hog")[both]).mean((1, 2, 3))
    stage["chip_mean_abs_diff_fd_vs_hog_grey_levels"] = pct(chip_diff)

    # pair by pair: decisions at each fold's held-out threshold
    def wrong(name):
        r = results[name]
        thr = dict(zip(r["folds"].keys(), r["thresholds"]))
        t = np.array([thr.get(f + first, np.nan) for f in pair_fold])
        return (dists[name] < t) != same

    ref = "dlib's pipeline: HOG box, predictor, chip, native ResNet"
    pairwise = {}
    if ref in results:
        nat_folds = np.isin(pair_fold, [f - first for f in results[ref]["folds"]])
        wr = wrong(ref) & nat_folds
        for name in ("facedist --views 1 (predictor in MTCNN's box, port)",
                     "dlib's pipeline with the torch port (HOG box, predictor, chip, port)",
                     "lever: MTCNN box mapped to HOG-like box (CV), predictor, chip, port",
                     "lever: one chip from both landmark sets (10-point similarity), port",
                     "MTCNN-landmark chip only (port)",
                     "facedist --views 2 (+ mirror)", "facedist --views 4 (stored run)"):
            w = wrong(name) & nat_folds
            only = np.flatnonzero(w & ~wr)
            pmin = np.minimum(box_iou[ia[only]], box_iou[ib[only]])
            pairwise[name] = {
                "pairs_scored": int(nat_folds.sum()), "wrong": int(w.sum()),
                "wrong_dlib": int(wr.sum()), "wrong_only_here": int(len(only)),
                "wrong_only_dlib": int((wr & ~w).sum()),
                "only_here_min_box_iou_median": float(np.median(pmin)) if len(only) else None,
                "only_here_pairs": [[pairs[k][0], pairs[k][1], bool(same[k]),
                                     round(float(dists[name][k]), 4), round(float(dists[ref][k]), 4),
                                     round(float(min(box_iou[ia[k]], box_iou[ib[k]])), 3)]
                                    for k in only],
            }
    extra = analyses(results, dists, same, pair_fold, nf, first, e, ia, ib, p, native_ok=ref in results)
    report = {"command": " ".join(["python"] + sys.argv), "results": results, "stages": stage,
              "pairwise_vs_dlib": pairwise, "analyses": extra, "machine": machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    md = args.out.with_suffix(".md")
    marker = "<!-- figures: written by bench/identity_vs_dlib.py -->\n"
    head = md.read_text().split(marker)[0] if md.exists() and marker in md.read_text() else ""
    md.write_text(head + marker + f"\nCommand: `{report['command']}`  \nMachine: "
                  f"{report['machine']}\n\n" + markdown(report, nf, first))
    print(json.dumps(stage, indent=1))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "only_here_pairs"}
                      for k, v in pairwise.items()}, indent=1))
    return 0


V1 = "facedist --views 1 (predictor in MTCNN's box, port)"
V2 = "facedist --views 2 (+ mirror)"
V4 = "facedist --views 4 (recomputed)"
NATIVE = "dlib's pipeline: HOG box, predictor, chip, native ResNet"
NATIVE_RAW = "dlib's pipeline, dlib's own distance (Euclidean on raw descriptors)"
PORT_HOG = "dlib's pipeline with the torch port (HOG box, predictor, chip, port)"


def best_threshold(d: np.ndarray, same: np.ndarray) -> float:
    """The threshold best on (d, same), as evaluate.fold_accuracy picks it."""
    x = np.sort(d)
    cands = np.concatenate([[x[0] - 1e-6], (x[1:] + x[:-1]) / 2, [x[-1] + 1e-6]])
    return float(cands[int(np.argmax([np.mean((d < t) == same) for t in cands]))])


def analyses(results, dists, same, pair_fold, nf, first, e, ia, ib, p, native_ok) -> dict:
    """Stage swaps per fold, how far apart 3-fold subsets can be, the default number of views
    chosen by cross-validation, and views only for pairs close to the threshold."""
    out = {}

    def per_fold_diff(a, b):
        fa, fb = results[a]["folds"], results[b]["folds"]
        common = sorted(set(fa) & set(fb))
        d = np.array([100 * (fa[f] - fb[f]) for f in common])
        return {"folds": dict(zip(common, np.round(d, 2).tolist())),
                "mean": round(float(d.mean()), 3), "sd": round(float(d.std()), 3)}

    swaps = {"box: MTCNN's box - HOG box (same predictor, chip, port)": (V1, PORT_HOG)}
    if native_ok:
        swaps["network: torch port - dlib's native ResNet (dlib's own chips)"] = (PORT_HOG, NATIVE)
        swaps["distance: unit-length - dlib's raw descriptors (native)"] = (NATIVE, NATIVE_RAW)
        swaps["whole pipeline: facedist --views 1 - dlib's own pipeline and distance"] = (
            V1, NATIVE_RAW)
        swaps["whole pipeline: facedist --views 1 - dlib's pipeline, unit length"] = (V1, NATIVE)
    swaps["mapped box (CV) - MTCNN's box"] = (
        "lever: MTCNN box mapped to HOG-like box (CV), predictor, chip, port", V1)
    swaps["landmark-mapped box (CV) - MTCNN's box"] = (
        "lever: MTCNN box mapped by its landmarks to a HOG-like box (linear, CV), predictor, "
        "chip, port", V1)
    out["swaps_points"] = {k: per_fold_diff(a, b) for k, (a, b) in swaps.items()}
    if native_ok:
        import itertools

        diff = np.array(list(out["swaps_points"][
            "whole pipeline: facedist --views 1 - dlib's own pipeline and distance"]["folds"].values()))
        sub = [float(diff[list(c)].mean()) for c in itertools.combinations(range(len(diff)), 3)]
        out["three_fold_subsets_v1_minus_dlib_points"] = {
            "subsets": len(sub), "min": round(min(sub), 3), "max": round(max(sub), 3)}

    # the default views by cross-validation: per held-out fold, the cheapest of 1, 2, 4 views
    # whose accuracy on the other folds reaches 99.0% and at least dlib's pipeline's
    pick = []
    for f in range(nf):
        tr = pair_fold != f
        ref = (np.mean(fold_acc(dists[NATIVE_RAW][tr], same[tr], nf - 1)) if native_ok else 0)
        chosen, reason = None, "none reaches 99.0% on the other folds: 4 (the most)"
        for views, name in ((1, V1), (2, V2), (4, V4)):
            a = np.mean(fold_acc(dists[name][tr], same[tr], nf - 1))
            if a >= 0.99 and a >= ref:
                chosen, reason = views, f"{100 * a:.2f}% on the other folds"
                break
        chosen = chosen or 4
        name = {1: V1, 2: V2, 4: V4}[chosen]
        pick.append({"fold": f + first, "views": chosen, "why": reason,
                     "held_out": results[name]["folds"][f + first]})
    out["views_by_cv"] = pick

    # views only where the one-view distance is within delta of the one-view threshold: those
    # pairs are decided by the 4-view distance (at the 4-view threshold); delta chosen per
    # held-out fold as the smallest whose accuracy on the other folds reaches that of 4 views
    d1, d4 = dists[V1], dists[V4]
    grid = [0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15]

    def banded(tr, te, delta):
        t1, t4 = best_threshold(d1[tr], same[tr]), best_threshold(d4[tr], same[tr])
        band = np.abs(d1 - t1) < delta
        dec = np.where(band, d4 < t4, d1 < t1)
        sel = te & band
        photos = len(set(ia[sel]) | set(ib[sel])) / len(set(ia[te]) | set(ib[te]))
        return float(np.mean(dec[te] == same[te])), float(np.mean(band[te])), photos

    curve = []
    for delta in grid:
        r = [banded(pair_fold != f, pair_fold == f, delta) for f in range(nf)]
        a = np.array([x[0] for x in r])
        curve.append({"delta": delta, "mean": float(a.mean()), "sd": float(a.std()),
                      "pairs_in_band": float(np.mean([x[1] for x in r])),
                      "photos_reembedded": float(np.mean([x[2] for x in r]))})
    cv = []
    for f in range(nf):
        tr, te = pair_fold != f, pair_fold == f
        train_folds = [g for g in range(nf) if g != f]
        goal = np.mean([banded(tr & (pair_fold != g), pair_fold == g, 1.0)[0] for g in train_folds])
        chosen = grid[-1]
        for delta in grid:
            a = np.mean([banded(tr & (pair_fold != g), pair_fold == g, delta)[0]
                         for g in train_folds])
            if a >= goal:
                chosen = delta
                break
        acc, pairs_in, photos = banded(tr, te, chosen)
        cv.append({"fold": f + first, "delta": chosen, "held_out": acc,
                   "pairs_in_band": pairs_in, "photos_reembedded": photos})
    out["views_near_threshold"] = {"curve": curve, "cv": cv}

    # in a collection every pair of faces is an answer: how many photos have one of their k
    # nearest neighbours (one view) within delta of the threshold
    v = e["fd"] / np.linalg.norm(e["fd"], axis=1, keepdims=True)
    g = np.clip(2 - 2 * (v @ v.T), 0, None) ** 0.5
    np.fill_diagonal(g, 9)
    near = np.sort(g, 1)[:, :10]
    t1 = best_threshold(d1, same)
    coll = []
    for delta in (0.02, 0.04):
        coll.append({"delta": delta, "any_pair": float(np.mean((np.abs(g - t1) < delta).any(1))),
                     **{f"k{k}": float(np.mean((np.abs(near[:, :k] - t1) < delta).any(1)))
                        for k in (1, 3, 10)}})
    out["views_near_threshold"]["collection"] = coll
    return out


def fold_acc(d, same, folds):
    from facedist.evaluate import fold_accuracy

    return fold_accuracy(d, same, folds)[0]


def markdown(report: dict, nf: int, first: int = 4) -> str:
    """The figures of the report (the prose around them is written by hand)."""
    folds = list(range(first, first + nf))
    lines = ["| pipeline (LFW %, per held-out fold) | " + " | ".join(f"fold {f}" for f in folds)
             + " | mean ± sd |", "|---|" + "---|" * (nf + 1)]
    for name, r in report["results"].items():
        cells = [f"{100 * r['folds'][f]:.2f}" if f in r["folds"] else "–" for f in folds]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} |")
    lines += ["", "| against dlib's pipeline (4,200 pairs, held-out thresholds) | wrong | "
              "wrong here only | wrong in dlib's only |", "|---|---|---|---|"]
    for name, r in report["pairwise_vs_dlib"].items():
        lines.append(f"| {name} | {r['wrong']} (dlib {r['wrong_dlib']}) | {r['wrong_only_here']}"
                     f" | {r['wrong_only_dlib']} |")
    extra = report.get("analyses", {})
    if extra:
        lines += ["", "Stage swaps, per fold (accuracy points, A - B):", "",
                  "| swap | " + " | ".join(f"fold {f}" for f in folds) + " | mean ± sd |",
                  "|---|" + "---|" * (nf + 1)]
        for name, r in extra["swaps_points"].items():
            cells = [f"{r['folds'][f]:+.2f}" if f in r["folds"] else "–" for f in folds]
            lines.append(f"| {name} | " + " | ".join(cells)
                         + f" | {r['mean']:+.2f} ± {r['sd']:.2f} |")
        lines += ["", "Default views chosen by cross-validation (cheapest of 1, 2, 4 reaching "
                  "99.0% and dlib's pipeline on the other folds):", "",
                  "| held-out fold | views | why | held-out % |", "|---|---|---|---|"]
        for r in extra["views_by_cv"]:
            lines.append(f"| {r['fold']} | {r['views']} | {r['why']} | {100 * r['held_out']:.2f} |")
        near = extra["views_near_threshold"]
        lines += ["", "Four views only for pairs whose one-view distance is within delta of the "
                  "one-view threshold (thresholds from the other folds):", "",
                  "| delta | LFW % (mean ± sd) | pairs in band | photos embedded 4x |",
                  "|---|---|---|---|"]
        for r in near["curve"]:
            lines.append(f"| {r['delta']:.2f} | {100 * r['mean']:.2f} ± {100 * r['sd']:.2f} | "
                         f"{100 * r['pairs_in_band']:.1f}% | {100 * r['photos_reembedded']:.1f}% |")
        cv = near["cv"]
        acc = np.array([r["held_out"] for r in cv])
        lines += ["", "delta chosen per held-out fold (smallest whose accuracy on the other "
                  "folds, by inner cross-validation, reaches that of 4 views everywhere): "
                  + ", ".join(f"fold {r['fold']}: {r['delta']:.2f}" for r in cv)
                  + f"; held out: {100 * acc.mean():.2f} ± {100 * acc.std():.2f}, "
                  f"{100 * np.mean([r['photos_reembedded'] for r in cv]):.1f}% of photos "
                  f"embedded 4x.", "",
                  "In a collection every pair of faces is an answer; photos (of the "
                  f"{report['stages']['photos']}) with a face within delta of the one-view "
                  "threshold:", "", "| delta | any other face | among its 1 / 3 / 10 nearest |",
                  "|---|---|---|"]
        for r in near["collection"]:
            lines.append(f"| {r['delta']:.2f} | {100 * r['any_pair']:.1f}% | {100 * r['k1']:.1f}% "
                         f"/ {100 * r['k3']:.1f}% / {100 * r['k10']:.1f}% |")
    return "\n".join(lines) + "\n"


def pct(v: np.ndarray) -> dict:
    v = np.asarray(v, float)
    q = np.percentile(v, [5, 25, 50, 75, 95])
    return {"n": int(len(v)), "mean": round(float(v.mean()), 4),
            **{f"p{k}": round(float(x), 4) for k, x in zip((5, 25, 50, 75, 95), q)}}


def machine() -> str:
    import dlib
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    return (f"{os.cpu_count()} cores ({cpu}), shared; {platform.system()}, Python "
            f"{platform.python_version()}, torch {torch.__version__} (1 thread), dlib "
            f"{dlib.__version__}")


if __name__ == "__main__":
    sys.exit(main())
