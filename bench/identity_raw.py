"""Raw against unit-length descriptors of the torch port of dlib's ResNet, on LFW (issue 36).

    python bench/identity_raw.py ../shared/data/lfw-dev --run /tmp/runs/lfw \\
        --work /tmp/identity --out bench/results-identity/raw-vs-unit

--run: a finished default facedist run over lfw-dev/lfw (`facedist eval lfw`): MTCNN's box and
landmarks of each photo's central face (as bench/identity_vs_dlib.py, whose functions and
--work caches this reuses). Per photo, facedist's four views: dlib's chip from dlib's 5-point
predictor in MTCNN's box ("fd"), its mirror, the chip warped from MTCNN's landmarks ("mt"), its
mirror. Each view's raw port descriptor (the network's output, not normalised) is cached under
--work as emb-port-raw-<view>.npy (and its unit-length copy as identity_vs_dlib's
emb-port-<view>.npy, so that bench reuses it).

Combinations of the views' raw vectors v_i, Euclidean distance, for 1, 2 and 4 views:
- unit: unit(sum(unit(v_i))), facedist today (embed.embed_faces);
- raw-mean: mean(v_i), dlib's own convention (the issue's proposal: pre-registered);
- unit-mean: mean(unit(v_i)), no final normalisation (exploratory);
- raw-mean-unit: unit(mean(v_i)) (exploratory: separates averaging from the final length).
Per held-out fold: accuracy at the threshold best on the other folds (evaluate.fold_accuracy).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from identity_vs_dlib import (CHIP, dlib_chip, lfw_parser, load_image, machine,  # noqa: E402
                             port_raw, setup)

VIEWS = {1: ("fd",), 2: ("fd", "fd-m"), 4: ("fd", "fd-m", "mt", "mt-m")}
PRE_REGISTERED = "raw-mean"


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def combine(raw: list[np.ndarray], kind: str) -> np.ndarray:
    if kind == "unit":
        return unit(sum(unit(v) for v in raw))
    if kind == "raw-mean":
        return sum(raw) / len(raw)
    if kind == "unit-mean":
        return sum(unit(v) for v in raw) / len(raw)
    if kind == "raw-mean-unit":
        return unit(sum(raw) / len(raw))
    raise ValueError(kind)


def facedist_chips(s: dict, work: Path) -> float:
    """chips-fd.npy (dlib's predictor in MTCNN's rounded box, dlib's chip) and chips-mt.npy
    (warped from MTCNN's landmarks), as identity_vs_dlib.prep cuts them, without its HOG stage.
    Returns the seconds taken (0 when cached)."""
    if (work / "chips-fd.npy").exists() and (work / "chips-mt.npy").exists():
        return 0.0
    import dlib

    from facedist.align import CHIP_TEMPLATE_150, similarity_transform, warp_chip
    from facedist.models import DLIB_SHAPE_PREDICTOR, resolve_file

    t0 = time.time()
    predictor = dlib.shape_predictor(str(resolve_file(DLIB_SHAPE_PREDICTOR, "dlib-resnet")))
    n = len(s["photos"])
    chips = {k: np.lib.format.open_memmap(work / f"chips-{k}.tmp.npy", "w+", np.uint8,
                                          (n, CHIP, CHIP, 3)) for k in ("fd", "mt")}
    for k, rel in enumerate(s["photos"]):
        img = load_image(s["lfw"] / rel)
        shape = predictor(img, dlib.rectangle(*(int(round(v)) for v in s["mt_box"][k])))
        chips["fd"][k] = dlib_chip(dlib, img, [(p.x, p.y) for p in shape.parts()])
        chips["mt"][k] = warp_chip(img, similarity_transform(s["mt_marks"][k], CHIP_TEMPLATE_150),
                                   CHIP)
        if k % 1000 == 0:
            print(f"chips {k}/{n} {time.time() - t0:.0f}s", flush=True)
    for name, c in chips.items():
        c.flush()
        del c
        (work / f"chips-{name}.tmp.npy").replace(work / f"chips-{name}.npy")
    return time.time() - t0


def raw_port_embed(work: Path, view: str) -> tuple[np.ndarray, float]:
    """The port's raw descriptors of one view ("fd", "fd-m", "mt", "mt-m"), cached; seconds."""
    cache = work / f"emb-port-raw-{view}.npy"
    if cache.exists():
        return np.load(cache), 0.0
    name, mirror = view.split("-")[0], view.endswith("-m")
    c = np.load(work / f"chips-{name}.npy", mmap_mode="r")
    t0 = time.time()
    e = port_raw(c, mirror)
    seconds = time.time() - t0
    print(f"port raw {view}: {len(c)} chips {seconds:.0f}s", flush=True)
    np.save(cache, e)
    unit_cache = work / f"emb-port-{name}{'-mirror' if mirror else ''}.npy"
    if not unit_cache.exists():  # identity_vs_dlib.port_embed's cache (unit length)
        np.save(unit_cache, unit(e))
    return e, seconds


def native_raw(work: Path, rows: np.ndarray, fold: int) -> np.ndarray:
    """dlib's native ResNet's raw descriptors of the fd chips of one fold, cached."""
    cache = work / f"emb-native-raw-fd-fold{fold}.npy"
    if cache.exists():
        return np.load(cache)
    import dlib

    from facedist.models import get_spec, resolve_weights

    net = dlib.face_recognition_model_v1(str(resolve_weights(get_spec("dlib-resnet"))))
    c = np.load(work / "chips-fd.npy", mmap_mode="r")
    e = np.concatenate([np.asarray([np.asarray(v) for v in net.compute_face_descriptor(
        [np.ascontiguousarray(c[r]) for r in rows[i:i + 32]])], np.float32)
        for i in range(0, len(rows), 32)])
    np.save(cache, e)
    return e


def stats(v: np.ndarray) -> dict:
    v = np.asarray(v, float)
    return {"n": int(len(v)), "mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4),
            "min": round(float(v.min()), 4), "max": round(float(v.max()), 4),
            **{f"p{q}": round(float(np.percentile(v, q)), 4) for q in (5, 50, 95)}}


def main() -> int:
    ap = lfw_parser(__doc__)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--native-fold", type=int, default=0,
                    help="fold (0-based) whose fd chips dlib's native ResNet also embeds, to check "
                         "that the port's raw descriptors are dlib's (-1: none)")
    ap.add_argument("--dlib-results", type=Path,
                    default=Path(__file__).parent / "results-identity" / "identity-vs-dlib.json",
                    help="identity_vs_dlib's results (dlib's native pipeline, raw and unit)")
    args = ap.parse_args()
    import torch

    from facedist.evaluate import fold_accuracy

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    seconds = {}
    t0 = time.time()
    s = setup(args.root, args.run)
    seconds["setup"] = time.time() - t0
    seconds["chips fd + mt (predictor, dlib chip, MTCNN-landmark chip)"] = facedist_chips(s, args.work)
    raw = {}
    for view in VIEWS[4]:
        raw[view], seconds[f"port raw {view}"] = raw_port_embed(args.work, view)

    nf, first = s["folds"], args.first_fold
    pairs, index = s["pairs"], s["index"]
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    same = np.array([t for _, _, t in pairs])
    pair_fold = np.arange(len(pairs)) // (len(pairs) // nf)
    folds = list(range(first, first + nf))

    # the recomputed 4 views against the run's stored embeddings (photos where MTCNN found one)
    four = combine([raw[v] for v in VIEWS[4]], "unit")
    ok = s["mt_found"]
    cos_stored = np.sum(four[ok] * unit(s["stored"][ok]), 1)

    results, dists = {}, {}
    t0 = time.time()
    for views, names in VIEWS.items():
        for kind in ("unit", "raw-mean", "unit-mean", "raw-mean-unit"):
            key = f"{views} views, {kind}"
            v = combine([raw[n] for n in names], kind)
            d = np.linalg.norm(v[ia] - v[ib], axis=1)
            accs, thr = fold_accuracy(d, same, nf)
            dists[key] = d
            results[key] = {
                "views": views, "kind": kind,
                "registered": "pre-registered (issue 36's held-out folds 1-3)"
                if kind == PRE_REGISTERED else ("today's default" if kind == "unit"
                                                else "exploratory"),
                "folds": dict(zip(folds, accs)), "thresholds": dict(zip(folds, thr)),
                "mean": float(np.mean(accs)), "std": float(np.std(accs)),
                "descriptor_norm": stats(np.linalg.norm(v, axis=1))}
            print(f"{key}: {100 * np.mean(accs):.2f} ± {100 * np.std(accs):.2f} "
                  f"thr {np.round(thr, 3).tolist()}", flush=True)
    for key, r in results.items():
        ref = results[f"{r['views']} views, unit"]["folds"]
        diff = np.array([r["folds"][f] - ref[f] for f in folds]) * len(pairs) / nf  # in pairs
        r["vs_unit_pairs_per_fold"] = dict(zip(folds, np.round(diff).astype(int).tolist()))
        r["vs_unit"] = {"wins": int((diff > 0.5).sum()), "ties": int((abs(diff) <= 0.5).sum()),
                        "losses": int((diff < -0.5).sum())}

    # dlib's native pipeline, from identity_vs_dlib's committed results (same data)
    native = {}
    if args.dlib_results.exists():
        dr = json.loads(args.dlib_results.read_text())["results"]
        for label, name in (("dlib native, unit", "dlib's pipeline: HOG box, predictor, chip, "
                                                  "native ResNet"),
                            ("dlib native, raw", "dlib's pipeline, dlib's own distance "
                                                 "(Euclidean on raw descriptors)")):
            if name in dr:
                r = dr[name]
                native[label] = {"folds": {int(k): v for k, v in r["folds"].items()},
                                 "thresholds": dict(zip(folds, r["thresholds"])),
                                 "mean": r["mean"], "std": r["std"]}
        if len(native) == 2:
            diff = np.array([native["dlib native, raw"]["folds"][f]
                             - native["dlib native, unit"]["folds"][f] for f in folds]) * 600
            native["dlib native, raw"]["vs_unit_pairs_per_fold"] = dict(
                zip(folds, np.round(diff).astype(int).tolist()))
            native["dlib native, raw"]["vs_unit"] = {
                "wins": int((diff > 0.5).sum()), "ties": int((abs(diff) <= 0.5).sum()),
                "losses": int((diff < -0.5).sum())}

    # distances of same and different people, per variant at 1, 2, 4 views: where the threshold
    # lies and the people-clustering scale
    scale = {}
    for key in results:
        if results[key]["kind"] not in ("unit", "raw-mean"):
            continue
        d = dists[key]
        sp, dp = d[same], d[~same]
        scale[key] = {"same": stats(sp), "different": stats(dp),
                      "same_mean": round(float(sp.mean()), 4),
                      "different_p5": round(float(np.percentile(dp, 5)), 4),
                      "different_p1": round(float(np.percentile(dp, 1)), 4),
                      "threshold_all_folds": round(float(np.mean(
                          list(results[key]["thresholds"].values()))), 4)}
    # today's unit people cut (0.34) and pair threshold (0.4) carried to raw-mean by quantiles
    # of the same-person and different-person distances
    for views in VIEWS:
        du, dr_ = dists[f"{views} views, unit"], dists[f"{views} views, raw-mean"]
        carry = {}
        for cut in (0.34, 0.4):
            q_diff = float(np.mean(du[~same] < cut))
            q_same = float(np.mean(du[same] < cut))
            carry[str(cut)] = {
                "unit_share_of_different_below": round(q_diff, 4),
                "unit_share_of_same_below": round(q_same, 4),
                "raw_at_same_share_of_different": round(float(np.quantile(dr_[~same], q_diff)), 4),
                "raw_at_same_share_of_same": round(float(np.quantile(dr_[same], q_same)), 4)}
        scale[f"{views} views, unit cuts carried to raw-mean"] = carry
    seconds["analysis"] = time.time() - t0

    if args.native_fold >= 0:
        t0 = time.time()
        rows = np.flatnonzero(s["fold_of"] == args.native_fold)
        nat = native_raw(args.work, rows, args.native_fold)
        seconds[f"native raw fd, fold {args.native_fold + first}"] = time.time() - t0
        port = raw["fd"][rows]
        native_check = {
            "photos": int(len(rows)), "fold": args.native_fold + first,
            "norm_native": stats(np.linalg.norm(nat, axis=1)),
            "norm_port_over_native": stats(np.linalg.norm(port, axis=1)
                                           / np.linalg.norm(nat, axis=1)),
            "max_abs_component_diff": round(float(np.abs(port - nat).max()), 6),
            "cosine": stats(np.sum(unit(port) * unit(nat), 1))}
    else:
        native_check = None
    norms = {view: stats(np.linalg.norm(raw[view], axis=1)) for view in VIEWS[4]}
    report = {"command": " ".join(["python"] + sys.argv),
              "machine": machine().replace(" (1 thread)", "")
              + f"; torch threads {args.threads}, no GPU",
              "photos": len(s["photos"]), "pairs": len(pairs), "mtcnn_found": int(ok.sum()),
              "cos_recomputed4_vs_stored_run": stats(cos_stored),
              "raw_view_norms": norms, "port_vs_native_raw_fd_chips": native_check, "results": results, "dlib_native": native,
              "distance_scale": scale, "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    md = args.out.with_suffix(".md")
    marker = "<!-- figures: written by bench/identity_raw.py -->\n"
    head = md.read_text().split(marker)[0] if md.exists() and marker in md.read_text() else ""
    md.write_text(head + marker + markdown(report, folds))
    return 0


def markdown(r: dict, folds: list[int]) -> str:
    lines = [f"\nCommand: `{r['command']}`  \nMachine: {r['machine']}  \n"
             f"Stages (s): " + ", ".join(f"{k} {v}" for k, v in r["seconds"].items()) + "\n",
             f"{r['photos']} photos, {r['pairs']} pairs; recomputed 4-view unit embedding against "
             f"the run's stored one (cosine, {r['cos_recomputed4_vs_stored_run']['n']} photos): "
             f"min {r['cos_recomputed4_vs_stored_run']['min']}, median "
             f"{r['cos_recomputed4_vs_stored_run']['p50']}.\n",
             native_line(r),
             "LFW % per held-out fold (threshold best on the other 6 folds); W/T/L: folds won, "
             "tied, lost against `unit` at the same views (per fold difference in pairs of 600 "
             "in brackets).\n",
             "| variant | status | " + " | ".join(f"fold {f}" for f in folds)
             + " | mean ± sd | W/T/L vs unit |", "|---|---|" + "---|" * (len(folds) + 2)]
    rows = list(r["results"].items()) + list(r["dlib_native"].items())
    for name, v in rows:
        cells = [f"{100 * v['folds'][f]:.2f}" for f in folds]
        wtl = v.get("vs_unit")
        diff = v.get("vs_unit_pairs_per_fold")
        w = (f"{wtl['wins']}/{wtl['ties']}/{wtl['losses']} ("
             + " ".join(f"{diff[f]:+d}" for f in folds) + ")") if wtl and "unit" != v.get(
            "kind") and name != "dlib native, unit" else "–"
        lines.append(f"| {name} | {v.get('registered', 'identity_vs_dlib.json')} | "
                     + " | ".join(cells) + f" | {100 * v['mean']:.2f} ± {100 * v['std']:.2f} | "
                     f"{w} |")
    lines += ["", "Thresholds chosen on the other 6 folds (per held-out fold):", "",
              "| variant | " + " | ".join(f"fold {f}" for f in folds) + " | range |",
              "|---|" + "---|" * (len(folds) + 1)]
    for name, v in rows:
        t = [v["thresholds"][f] for f in folds]
        lines.append(f"| {name} | " + " | ".join(f"{x:.3f}" for x in t)
                     + f" | {min(t):.3f}–{max(t):.3f} |")
    lines += ["", "Norms of the raw port descriptors (per view) and of the combined descriptors:",
              "", "| descriptor | mean | std | min | max |", "|---|---|---|---|---|"]
    for name, v in r["raw_view_norms"].items():
        lines.append(f"| raw view {name} | {v['mean']} | {v['std']} | {v['min']} | {v['max']} |")
    for name, v in r["results"].items():
        if v["kind"] in ("raw-mean", "unit-mean"):
            n = v["descriptor_norm"]
            lines.append(f"| {name} | {n['mean']} | {n['std']} | {n['min']} | {n['max']} |")
    lines += ["", "Distances of same-person and different-person pairs (all 4,200 pairs):", "",
              "| variant | same: mean / p50 / p95 / max | different: p1 / p5 / p50 / min | "
              "threshold (mean over folds) |", "|---|---|---|---|"]
    for name, v in r["distance_scale"].items():
        if "carried" in name:
            continue
        a, b = v["same"], v["different"]
        lines.append(f"| {name} | {a['mean']} / {a['p50']} / {a['p95']} / {a['max']} | "
                     f"{v['different_p1']} / {b['p5']} / {b['p50']} / {b['min']} | "
                     f"{v['threshold_all_folds']} |")
    lines += ["", "Today's unit-length cuts carried to raw-mean by quantile (the raw distance "
              "below which the same share of different-person / same-person pairs falls):", "",
              "| views | unit cut | share of different below | raw-mean at that share | "
              "share of same below | raw-mean at that share |", "|---|---|---|---|---|---|"]
    for name, v in r["distance_scale"].items():
        if "carried" not in name:
            continue
        for cut, c in v.items():
            lines.append(f"| {name.split(',')[0]} | {cut} | "
                         f"{100 * c['unit_share_of_different_below']:.2f}% | "
                         f"{c['raw_at_same_share_of_different']} | "
                         f"{100 * c['unit_share_of_same_below']:.1f}% | "
                         f"{c['raw_at_same_share_of_same']} |")
    return "\n".join(lines) + "\n"


def native_line(r: dict) -> str:
    c = r.get("port_vs_native_raw_fd_chips")
    if not c:
        return ""
    return (f"The port's raw descriptors are dlib's: on the fd chips of fold {c['fold']} "
            f"({c['photos']} photos), dlib's native ResNet gives norms {c['norm_native']['mean']} "
            f"± {c['norm_native']['std']}; port / native norm {c['norm_port_over_native']['min']}"
            f"–{c['norm_port_over_native']['max']}, largest component difference "
            f"{c['max_abs_component_diff']}, cosine min {c['cosine']['min']}.\n")


if __name__ == "__main__":
    sys.exit(main())
