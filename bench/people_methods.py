"""Clustering methods for people, scored with BCubed on lfw-dev and celeba.

    facedist eval people ../shared/data/lfw-dev/lfw --out /tmp/people-lfw --label-face center
    facedist eval people ../shared/data/celeba --out /tmp/people-celeba
    python bench/people_methods.py /tmp/people-lfw:center:../shared/data/lfw-dev/lfw \\
        /tmp/people-celeba:largest:../shared/data/celeba --out bench/results-identity/people-methods.md

Each argument is OUT:LABEL_FACE:PHOTOS of a finished run (default model and views). Every
face is clustered; the labelled face of each photo (nearest the centre, or largest) is scored
against its folder name. Also times an incremental clustering: the first 90% of the faces
clustered, then the last 10% added, against one full clustering of all of them.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facedist.cluster import Graph, relabel


def labelled(out: Path, pick: str, root: Path):
    from facedist.evaluate import central_faces

    rows, table, _ = central_faces(out, root, pick)
    truth = np.full(len(table), None, object)
    for i in rows.values():
        truth[i] = Path(table.paths[i]).parent.name
    return table, truth


# The methods compared with facedist's average linkage (cluster.py), kept with this bench only.

def chinese_whispers(graph: Graph, iterations: int = 20) -> np.ndarray:
    """dlib's Chinese whispers, deterministic: nodes in index order take the label with the
    largest summed edge weight (1 - distance) among their neighbours, ties to the smaller label."""
    n = graph.n
    labels = np.arange(n)
    nbrs: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for a, b, dist in zip(graph.i.tolist(), graph.j.tolist(), graph.d.tolist()):
        w = max(1e-6, 1.0 - dist)
        nbrs[a].append((b, w))
        nbrs[b].append((a, w))
    for _ in range(iterations):
        changed = False
        for a in range(n):
            if not nbrs[a]:
                continue
            score: dict[int, float] = {}
            for b, w in nbrs[a]:
                score[labels[b]] = score.get(labels[b], 0.0) + w
            best = min(score, key=lambda lab: (-score[lab], lab))
            if best != labels[a]:
                labels[a] = best
                changed = True
        if not changed:
            break
    return relabel(labels)


def core_points(graph: Graph, cut: float, min_faces: int = 3) -> np.ndarray:
    """A DBSCAN-style rule as Immich uses: a face with at least `min_faces - 1` others within
    `cut` is a core face; core faces within `cut` of each other are one person; any other face
    joins the person of its nearest core face within `cut`, or stays alone."""
    n = graph.n
    close = graph.d < cut
    i, j, d = graph.i[close], graph.j[close], graph.d[close]
    degree = np.bincount(np.concatenate([i, j]), minlength=n)
    core = degree >= min_faces - 1
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(i[core[i] & core[j]].tolist(), j[core[i] & core[j]].tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    labels = np.array([find(a) for a in range(n)])
    nearest = np.full(n, np.inf)
    for a, b, dist in zip(i.tolist(), j.tolist(), d.tolist()):
        for x, y in ((a, b), (b, a)):
            if not core[x] and core[y] and dist < nearest[x]:
                nearest[x] = dist
                labels[x] = find(y)
    return relabel(labels)


def methods(cut: float):
    """(name, function of (graph, embeddings)) for every method and setting measured."""
    from facedist.cluster import Graph, average_linkage

    def under(g, t):
        keep = g.d < t
        return Graph(g.n, g.i[keep], g.j[keep], g.d[keep])

    # connected components are the core rule with every face a core face
    out = [(f"connected components < {t}", lambda g, x, t=t: core_points(g, t, 1)) for t in (0.4,)]
    from facedist.people import neighbor_graph

    def linkage(x, c, k):
        return average_linkage(x, neighbor_graph(x, np.arange(len(x)), k), c)

    out += [(f"average linkage (squared), cut {c}, {k} neighbours", lambda g, x, c=c, k=k: linkage(x, c, k))
            for c in (round(cut - 0.02, 3), cut, round(cut + 0.02, 3)) for k in ((10, 30) if c == cut else (10,))]
    out += [(f"Chinese whispers < {t}", lambda g, x, t=t: chinese_whispers(under(g, t)))
            for t in (0.3, 0.34, 0.4)]
    out += [(f"core rule (Immich) < {t}, min 3 faces", lambda g, x, t=t: core_points(g, t, 3))
            for t in (0.3, 0.34, 0.4)]
    try:
        from sklearn.cluster import HDBSCAN
    except ImportError:
        return out

    def hdbscan(x, m):
        labels = HDBSCAN(min_cluster_size=2, min_samples=m, copy=True).fit_predict(x)
        alone = labels < 0
        labels[alone] = labels.max() + 1 + np.arange(alone.sum())  # noise: a person each
        return labels

    out += [(f"HDBSCAN (scikit-learn), min_samples {m}", lambda g, x, m=m: hdbscan(x, m))
            for m in (1, 2)]
    return out


def threshold_check(out: Path, x: np.ndarray, truth: np.ndarray, known: np.ndarray) -> str:
    """The run's suggested threshold against the fixed default and the best one, by balanced
    accuracy (mean of same- and different-person accuracy) over all labelled pairs."""
    import json

    from facedist.models import get_spec

    suggested = json.loads((out / "perf" / "threshold.json").read_text())["suggested"]
    default = get_spec("dlib-resnet").default_threshold
    e = x[known]
    t = truth[known]
    from facedist.compare import distance_block

    sq = np.einsum("ij,ij->i", e, e)
    d = distance_block(e, e, sq, sq)
    iu = np.triu_indices(len(e), 1)
    d, same = d[iu], (t[:, None] == t[None, :])[iu]

    def balanced(th: float) -> float:
        return 0.5 * ((d[same] < th).mean() + (d[~same] >= th).mean())

    grid = np.arange(0.2, 0.6, 0.005)
    best = float(grid[int(np.argmax([balanced(g) for g in grid]))])
    return (f"Threshold: suggested from the photos {suggested:.3f} (balanced accuracy "
            f"{balanced(suggested):.4f}), fixed default {default} ({balanced(default):.4f}), best "
            f"{best:.3f} ({balanced(best):.4f}); {same.sum()} same-person and {(~same).sum()} "
            f"different-person pairs of labelled faces.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from facedist.cluster import Graph, bcubed
    from facedist.compare import compare
    from facedist.models import get_spec
    from facedist.people import assign_people
    from facedist.store import FaceStore, ImageResult

    cut = get_spec("dlib-resnet").people_threshold
    lines = ["# People: clustering methods, BCubed on labelled faces\n",
             f"Command: see `bench/people_methods.py`'s docstring. Default cut {cut}.\n"]
    for spec in args.runs:
        out, pick, root = spec.split(":", 2)
        table, truth = labelled(Path(out), pick, Path(root))
        x = table.embeddings.astype(np.float32)
        known = truth != None  # noqa: E711 (object array)
        res = compare(x, 0, 0.4)  # pairs for the methods that take a threshold
        graph = Graph(len(x), res.pairs[:, 0], res.pairs[:, 1], res.pair_dist)
        lines += [f"## {root}: {len(x)} faces, {known.sum()} labelled, "
                  f"{len(set(truth[known]))} people\n",
                  "| method | precision | recall | F | people found | seconds |", "|---|---|---|---|---|---|"]
        for name, fn in methods(cut):
            t0 = time.perf_counter()
            labels = fn(graph, x)
            dt = time.perf_counter() - t0
            p, r, f = bcubed(labels[known], truth[known])
            lines.append(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {len(set(labels[known].tolist()))} | {dt:.2f} |")
            print(lines[-1], flush=True)
        # incremental: 90% clustered, then 10% more, against one full clustering
        with tempfile.TemporaryDirectory() as tmp:
            store = FaceStore(tmp)
            store.save_chunk(1, "k", "m", [ImageResult(store.image_id(str(i), 1, 1), embeddings=x[i:i + 1],
                                                       boxes=np.zeros((1, 4), np.float32),
                                                       probs=np.ones(1, np.float32),
                                                       landmarks=np.zeros((1, 5, 2), np.float32))
                                           for i in range(len(x))])
            ids = np.array([int(store.db.execute("SELECT id FROM faces WHERE image_id = "
                                                 "(SELECT id FROM images WHERE path = ?)", (str(i),)).fetchone()[0])
                            for i in range(len(x))])
            order = np.random.default_rng(0).permutation(len(x))
            first, later = order[: int(0.9 * len(x))], order
            assign_people(store, "k", ids[first], x[first], cut, full=True)
            t0 = time.perf_counter()
            inc = assign_people(store, "k", ids[later], x[later], cut)
            t_inc = time.perf_counter() - t0
            t0 = time.perf_counter()
            full = assign_people(store, "k", ids[later], x[later], cut, full=True)
            t_full = time.perf_counter() - t0
            kl = known[later]
            fi = bcubed(inc[kl], truth[later][kl])[2]
            ff = bcubed(full[kl], truth[later][kl])[2]
            agree = bcubed(inc, full)[2]
            lines += ["", f"Incremental: 10% new faces ({len(x) - len(first)}) added to people of the "
                      f"other 90% in {t_inc:.2f} s, against {t_full:.2f} s for a full clustering of all "
                      f"({100 * t_inc / t_full:.0f}%). BCubed F {fi:.3f} incremental, {ff:.3f} full; "
                      f"agreement between the two (BCubed F) {agree:.3f}.", ""]
            print(lines[-2], flush=True)
        lines += [threshold_check(Path(out), x, truth, known), ""]
        print(lines[-2], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
