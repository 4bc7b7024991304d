"""A million faces on one machine: neighbours, pairs and people from a store, timed, with their
peak memory and their quality against exact search.

    python bench/scale.py --work /tmp/scale --faces 100000 1000000 --out bench/results-scale

For each size: a generated store (bench/scale_data.py make, if not in --work already), then
`compute`, a separate process that does what `facedist run` does after embedding (pipeline.
compare_and_group: compare → people → the output files) on every face of the store; its time
per stage and its peak RSS (the kernel's, for that process alone) are the figures. Then the
quality, in another process:
- neighbours: 10,000 sampled faces, their exact k-th neighbour distance (blockwise over all
  faces) against the one found; share within 1% (distances, not ids: a large person has ties);
- people: on the first 100,000 faces, people from exact neighbours against people from the
  approximate ones, same clustering (BCubed F between the two), and people against the
  generated truth.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def compute(out: Path) -> dict:
    from facedist.api import open_db
    from facedist.models import get_spec
    from facedist.monitor import Monitor
    from facedist.pipeline import RunSummary, compare_and_group
    from facedist.store import FaceStore

    t0 = time.perf_counter()
    db = open_db(out)
    settings = db.settings
    settings.out = out
    settings.recluster = True  # the whole clustering, every time
    settings.min_quality = 0.0  # generated embeddings have no landmarks to score: no gate
    monitor = Monitor(0.5).start()
    with monitor.stage("load"):
        table = db.faces()
    summary = RunSummary(out=out)
    writer = FaceStore(out)  # the reader's own connection is read-only
    compare_and_group(settings, get_spec(settings.model), writer, db.pipeline_key, table,
                      monitor, summary)
    writer.close()
    monitor.stop()
    peaks = monitor.summary()["stages"]
    return {"faces": len(table), "seconds": round(time.perf_counter() - t0, 1),
            "stages": {k: round(v.seconds, 1) for k, v in monitor.stages.items()},
            "stage_rss_peak_mb": {k: v["rss_peak_mb"] for k, v in peaks.items()},
            "people": summary.people, "pairs": summary.pairs, "pairs_found": summary.pairs_found,
            "approximate": summary.approximate}


def quality(out: Path, queries: int = 10_000, subset: int = 100_000) -> dict:
    from facedist.api import open_db
    from facedist.cluster import Graph, average_linkage, bcubed
    from facedist.compare import compare, distance_block, hnsw_knn
    from facedist.models import get_spec
    from facedist.report import read_neighbors

    db = open_db(out)
    table = db.faces()
    x = table.embeddings
    k = db.settings.k
    near, dist = read_neighbors(out, table)
    rng = np.random.default_rng(0)
    q = rng.choice(len(x), min(queries, len(x)), replace=False)
    sq = np.einsum("ij,ij->i", x, x)
    exact_kth = np.empty(len(q), np.float32)
    for s in range(0, len(q), 250):  # 250 x N distances at a time
        d = distance_block(x[q[s:s + 250]], x, sq[q[s:s + 250]], sq)
        exact_kth[s:s + 250] = np.partition(d, k, axis=1)[:, k]  # the face itself is the 0th
    found_kth = dist[q, k - 1]
    within = float(np.mean(found_kth <= exact_kth * 1.01 + 1e-6))
    res = {"queries": len(q), "kth_within_1pct": round(within, 4),
           "kth_ratio_median": round(float(np.median(found_kth / np.maximum(exact_kth, 1e-9))), 5)}
    cut = get_spec(db.settings.model).people_threshold
    truth = np.load(out / "truth.npy")
    person = db.person_of(table)
    res["people_vs_truth_bcubed"] = [round(v, 4) for v in bcubed(person, truth)]
    s = np.arange(min(subset, len(x)))
    xs = np.ascontiguousarray(x[s])
    labels = {}
    for name in ("exact", "approximate"):
        if name == "exact":
            r = compare(xs, 10, 0.0)
            nn, nd = r.neighbors, r.neighbor_dist
        else:
            nn, nd = hnsw_knn(xs, 10)
        g = Graph(len(s), np.repeat(s, 10), nn.ravel(), nd.ravel())
        labels[name] = average_linkage(xs, g, cut)
    res["subset"] = len(s)
    res["people_exact_vs_approximate_bcubed"] = [round(v, 4) for v in
                                                 bcubed(labels["approximate"], labels["exact"])]
    return res


def child(args: list[str]) -> tuple[dict, float]:
    """Run this script's `args` in a fresh process; its JSON answer and its peak RSS in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return json.loads(done.stdout.strip().splitlines()[-1]), round(max(peak, before) / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    ap.add_argument("--faces", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results-scale")
    ap.add_argument("--step", choices=["compute", "quality"], help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(compute(args.store) if args.step == "compute" else quality(args.store)))
        return
    rows = []
    for n in args.faces:
        store = args.work / f"out-{n}"
        if not (store / "truth.npy").exists():
            subprocess.run([sys.executable, str(ROOT / "bench" / "scale_data.py"), "make", "--faces",
                            str(n), "--out", str(store)], check=True)
        made = json.loads((store / "generated.json").read_text())
        row, peak = child(["--step", "compute", "--store", str(store)])
        row["peak_rss_mb"] = peak
        row["generated"] = made
        print(json.dumps(row), flush=True)
        row["quality"], _ = child(["--step", "quality", "--store", str(store)])
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if (args.out / "scale.json").exists():  # sizes measured in an earlier call stay
        done = {r["faces"] for r in rows}
        rows = sorted([r for r in json.loads((args.out / "scale.json").read_text())
                       if r["faces"] not in done] + rows, key=lambda r: r["faces"])
    (args.out / "scale.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Neighbours, pairs and people at scale\n",
             f"`python bench/scale.py --work {args.work} --faces N --out {args.out}` (one call "
             f"per size, or all sizes in one) on {platform.node()} ({platform.machine()}, {os.cpu_count()} "
             f"cores), {time.strftime('%Y-%m-%d')}; stand-in embeddings from bench/scale_data.py "
             f"(distance-model.md). One run each: the times are single samples.\n",
             "| faces | people (true) | largest | load s | compare s | people s | files s | "
             "total s | peak RSS MB | approximate | k-th within 1% | people exact vs approx. "
             "(BCubed F, 100k) | people vs truth (P / R / F) | pairs listed / under threshold |",
             "|" + "---|" * 14]
    for r in rows:
        st, qu, g = r["stages"], r["quality"], r["generated"]
        lines.append(
            f"| {r['faces']:,} | {g['people']:,} | {g['largest']:,} | {st.get('load', 0)} | "
            f"{st.get('compare', 0)} | {st.get('people', 0)} | {st.get('report', 0)} | "
            f"{r['seconds']} | {r['peak_rss_mb']:,} | {r['approximate']} | "
            f"{100 * qu['kth_within_1pct']:.2f}% | {qu['people_exact_vs_approximate_bcubed'][2]} | "
            f"{' / '.join(map(str, qu['people_vs_truth_bcubed']))} | "
            f"{r['pairs']:,} / {r['pairs_found']:,} |")
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
