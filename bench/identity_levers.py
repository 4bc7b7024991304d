"""What each alignment lever is worth on LFW (lfw-dev, 7 folds), with dlib's ResNet.

    python bench/identity_levers.py ../shared --work /tmp/levers --out bench/results-identity/levers.md

1. Runs facedist (MTCNN, one view) on data/celeba, data/humans and data/lfw-dev/lfw into --work
   (a second call reuses those runs).
2. Fits, on celeba + humans (not LFW), where dlib's HOG detector puts its box relative to
   MTCNN's, and where MTCNN's five landmarks fall in the chip that dlib's own pipeline cuts
   (the template `align.CHIP_TEMPLATE_150` comes from here, made left-right symmetric).
3. For the face nearest the centre of every LFW photo (median box where none was found),
   cuts chips by each lever, embeds them and their mirror images, and scores LFW's protocol.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def faces_of(out: Path):
    from facedist.api import open_db

    return open_db(out).faces()


def fit(work: Path):
    """(box map: dlib box relative to MTCNN's, template of MTCNN landmarks in dlib's chip)."""
    import dlib

    from facedist.decode import decode_image
    from facedist.models import DLIB_SHAPE_PREDICTOR, resolve_file

    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet")))
    rel, marks = [], []
    for name in ("celeba", "humans"):
        table = faces_of(work / name)
        by_path: dict[str, list[int]] = {}
        for i, p in enumerate(table.paths):
            by_path.setdefault(p, []).append(i)
        for path, rows in by_path.items():
            img = decode_image(path, 10**9, None).pixels
            if max(img.shape) > 1500:  # HOG on huge photos is slow and finds the same faces
                continue
            for r in hog(img, 1):
                d = np.array([r.left(), r.top(), r.right(), r.bottom()], float)
                best, best_iou = None, 0.4
                for i in rows:
                    b = table.boxes[i]
                    ix = max(0, min(b[2], d[2]) - max(b[0], d[0]))
                    iy = max(0, min(b[3], d[3]) - max(b[1], d[1]))
                    inter = ix * iy
                    iou = inter / ((b[2] - b[0]) * (b[3] - b[1]) + (d[2] - d[0]) * (d[3] - d[1]) - inter)
                    if iou > best_iou:
                        best, best_iou = i, iou
                if best is None:
                    continue
                b = table.boxes[best]
                w, h = b[2] - b[0], b[3] - b[1]
                rel.append([(d[0] - b[0]) / w, (d[1] - b[1]) / h, (d[2] - b[0]) / w, (d[3] - b[1]) / h])
                chip = dlib.get_face_chip_details(predictor(img, r), 150, 0.25)
                c = np.array([(chip.rect.left() + chip.rect.right()) / 2,
                              (chip.rect.top() + chip.rect.bottom()) / 2])
                s = chip.rect.width() / 150
                ca, sa = np.cos(chip.angle), np.sin(chip.angle)
                v = (table.landmarks[best] - c) / s
                marks.append(np.stack([ca * v[:, 0] + sa * v[:, 1] + 74.5,
                                       -sa * v[:, 0] + ca * v[:, 1] + 74.5], 1))
    template = np.median(marks, 0)
    mirrored = template.copy()
    mirrored[:, 0] = 149 - mirrored[:, 0]
    symmetric = (template + mirrored[[1, 0, 2, 4, 3]]) / 2
    return np.median(rel, 0), template, symmetric, len(rel)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shared", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--jitters", type=int, default=3, help="dlib jitters added to the chip")
    args = ap.parse_args()

    import dlib

    from facedist import pipeline
    from facedist.align import CHIP_TEMPLATE_150, similarity_transform, warp_chip
    from facedist.config import Settings
    from facedist.decode import decode_image
    from facedist.embed import build_embedder
    from facedist.evaluate import central_faces, fold_accuracy, read_pairs
    from facedist.models import DLIB_SHAPE_PREDICTOR, get_spec, resolve_file

    data = args.shared / "data"
    for name, photos in (("celeba", data / "celeba"), ("humans", data / "humans"),
                         ("lfw", data / "lfw-dev" / "lfw")):
        pipeline.run(Settings(photos=photos, out=args.work / name, views=1, progress=False))
    box_map, template, symmetric, n_fit = fit(args.work)
    lines = ["# Alignment levers on LFW (lfw-dev), dlib-resnet\n",
             f"Command: `python bench/identity_levers.py ../shared --work /tmp/levers --out {args.out}`\n",
             f"Fitted on {n_fit} faces of celeba + humans that dlib's HOG detector and MTCNN both find:",
             f"- dlib's box relative to MTCNN's (x1, y1, x2, y2 in MTCNN box widths/heights): "
             f"{np.round(box_map, 4).tolist()}",
             f"- MTCNN's landmarks in dlib's 150 px chip: {np.round(template, 2).tolist()}",
             f"- made symmetric: {np.round(symmetric, 2).tolist()} (align.CHIP_TEMPLATE_150: "
             f"{CHIP_TEMPLATE_150.tolist()})\n"]

    folds, pairs = read_pairs(data / "lfw-dev" / "pairs.txt")
    root = (data / "lfw-dev" / "lfw").resolve()
    rows, table, _ = central_faces(args.work / "lfw", root)
    med_box = np.median([table.boxes[i] for i in rows.values()], 0)
    med_marks = np.median([table.landmarks[i] for i in rows.values()], 0)
    photos = sorted({p for a, b, _ in pairs for p in (a, b)})
    predictor = dlib.shape_predictor(str(resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet")))
    chips: dict[str, list[np.ndarray]] = {k: [] for k in ("dlib", "mapped", "mtcnn", "jitter")}
    t0 = time.time()
    for rel in photos:
        img = np.ascontiguousarray(decode_image(root / rel, 10**9, None).pixels)
        i = rows.get(rel)
        box = table.boxes[i] if i is not None else med_box
        marks = table.landmarks[i] if i is not None else med_marks
        w, h = box[2] - box[0], box[3] - box[1]
        mapped = [box[0] + box_map[0] * w, box[1] + box_map[1] * h, box[0] + box_map[2] * w,
                  box[1] + box_map[3] * h]
        for name, b in (("dlib", box), ("mapped", mapped)):
            shape = predictor(img, dlib.rectangle(*(int(round(v)) for v in b)))
            chips[name].append(np.asarray(dlib.get_face_chip(img, shape, 150, 0.25)))
        chips["jitter"].append(np.stack([chips["dlib"][-1]] + [
            np.asarray(j) for j in dlib.jitter_image(chips["dlib"][-1], args.jitters)]))
        chips["mtcnn"].append(warp_chip(img, similarity_transform(marks, CHIP_TEMPLATE_150), 150))
    chip_seconds = time.time() - t0
    emb = build_embedder(get_spec("dlib-resnet"), None, "cpu")

    def embed(c: np.ndarray) -> np.ndarray:
        out = np.concatenate([emb.embed_batch(c[i:i + 32]) for i in range(0, len(c), 32)])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    raw = {}
    vec = {}
    for name in ("dlib", "mapped", "mtcnn"):
        c = np.stack(chips[name])
        e = np.concatenate([emb.embed_batch(c[i:i + 32]) for i in range(0, len(c), 32)])
        raw[name] = e
        vec[name] = e / np.linalg.norm(e, axis=1, keepdims=True)
        vec[name + "-mirror"] = embed(np.ascontiguousarray(c[:, :, ::-1]))
    jit = np.stack(chips["jitter"])
    vec["jitter"] = embed(jit.reshape(-1, 150, 150, 3)).reshape(len(photos), -1, 128).sum(1)
    index = {p: k for k, p in enumerate(photos)}
    same = np.array([s for _, _, s in pairs])

    def score(e: np.ndarray) -> str:
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        d = np.array([np.linalg.norm(e[index[a]] - e[index[b]]) for a, b, _ in pairs])
        accs, _ = fold_accuracy(d, same, folds)
        return f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f}"

    def unnormalized(e: np.ndarray) -> str:
        d = np.array([np.linalg.norm(e[index[a]] - e[index[b]]) for a, b, _ in pairs])
        accs, _ = fold_accuracy(d, same, folds)
        return f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f}"

    table_rows = [
        ("dlib's predictor in MTCNN's box, raw embedding (the old default)", 1, unnormalized(raw["dlib"])),
        ("same, unit length", 1, score(vec["dlib"])),
        ("predictor in MTCNN's box mapped to dlib's detector box", 1, score(vec["mapped"])),
        ("chip from MTCNN's landmarks (template)", 1, score(vec["mtcnn"])),
        ("dlib's chip + its mirror (`--views 2`)", 2, score(vec["dlib"] + vec["dlib-mirror"])),
        ("mapped box + mirror", 2, score(vec["mapped"] + vec["mapped-mirror"])),
        ("MTCNN-landmark chip + mirror", 2, score(vec["mtcnn"] + vec["mtcnn-mirror"])),
        (f"dlib's chip + {args.jitters} dlib jitters", 1 + args.jitters, score(vec["jitter"])),
        ("dlib's chip + MTCNN-landmark chip + both mirrors (`--views 4`, default)", 4,
         score(vec["dlib"] + vec["dlib-mirror"] + vec["mtcnn"] + vec["mtcnn-mirror"])),
    ]
    lines += ["| lever | embeddings per face | LFW accuracy % (7 folds, mean ± std) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in table_rows]
    lines += ["", f"Chips for {len(photos)} photos in {chip_seconds:.0f} s (all levers, one core). "
              f"Machine: {sys.platform}, see README for the CPU."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
