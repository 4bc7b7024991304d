"""cluster: same-person groups ("people") from a sparse graph of face distances.

Connected components over the pairs under a threshold chain a whole library into one group:
one close pair between two people is enough. The default here is average linkage: two groups
merge only while the *mean* distance over all their cross pairs is under the cut, so a few close
pairs cannot chain two people together. It runs on a sparse graph (the pairs under a radius a
little above the cut): a pair missing from the graph counts as `radius`, a lower bound of its
true distance, so the mean can only be underestimated where most pairs are missing.

Constraints make corrections stick: faces pinned to the same person start as one group, and
groups whose persons are known to differ (two pinned persons, or a "these are different
people" correction) never merge. The same function serves a full clustering and an incremental
one (existing people as pinned groups, new faces as singletons).

Chinese whispers and a DBSCAN-style core-point rule are here too, for comparison (`facedist
eval people --method`); measured on lfw-dev and celeba they do worse (README, "People").

    >>> import numpy as np
    >>> edges = Graph(4, np.array([0, 2]), np.array([1, 3]), np.array([0.2, 0.3], np.float32))
    >>> average_linkage(edges, cut=0.5, radius=0.8).tolist()
    [0, 0, 1, 1]
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass
class Graph:
    """Undirected weighted edges between n nodes: i[e] -- j[e] at distance d[e] (i != j)."""

    n: int
    i: np.ndarray
    j: np.ndarray
    d: np.ndarray


def relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..G-1 in order of each group's first member (deterministic)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    return order[inverse].astype(np.int64)


def average_linkage(graph: Graph, cut: float, radius: float,
                    seeds: np.ndarray | None = None) -> np.ndarray:
    """Agglomerative clustering, average linkage, cut at `cut`, on a sparse graph whose
    missing pairs count as `radius` (>= cut). Returns a group label per node (0..G-1).

    seeds: per node, -1 or a seed id; nodes of one seed start merged, and two groups that hold
    different seeds never merge."""
    n = graph.n
    seed_of = np.full(n, -1, np.int64) if seeds is None else np.asarray(seeds, np.int64)
    # per group (its root node): size, seed (-1 none), neighbour group -> [sum of distances, count]
    parent = np.arange(n)
    size = np.ones(n, np.int64)
    group_seed = seed_of.copy()
    adj: list[dict[int, list[float]] | None] = [dict() for _ in range(n)]

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    # seeds first: a seed's nodes become one group whatever their distances
    first_of_seed: dict[int, int] = {}
    for a in range(n):
        s = int(seed_of[a])
        if s >= 0:
            root = first_of_seed.setdefault(s, a)
            if root != a:
                parent[a] = root
                size[root] += 1
    for a, b, dist in zip(graph.i.tolist(), graph.j.tolist(), graph.d.tolist()):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        for x, y in ((ra, rb), (rb, ra)):
            entry = adj[x].setdefault(y, [0.0, 0])
            entry[0] += dist
            entry[1] += 1

    def mean(a: int, b: int, entry: list[float]) -> float:
        pairs = size[a] * size[b]
        return (entry[0] + (pairs - entry[1]) * radius) / pairs

    version = [0] * n  # bumped on every merge: older heap entries are stale
    heap = [(mean(a, b, e), a, b, 0, 0) for a in range(n) if parent[a] == a
            for b, e in adj[a].items() if a < b]
    heapq.heapify(heap)
    while heap:
        m, a, b, va, vb = heapq.heappop(heap)
        if m >= cut:
            break
        if parent[a] != a or parent[b] != b or version[a] != va or version[b] != vb:
            continue
        sa, sb = int(group_seed[a]), int(group_seed[b])
        if sa >= 0 and sb >= 0 and sa != sb:
            continue  # two known people: never one group
        # merge the smaller adjacency into the larger
        keep, gone = (a, b) if len(adj[a]) >= len(adj[b]) else (b, a)
        parent[gone] = keep
        size[keep] += size[gone]
        group_seed[keep] = max(sa, sb)
        adj[keep].pop(gone, None)
        for c, entry in adj[gone].items():
            if c == keep:
                continue
            mine = adj[keep].setdefault(c, [0.0, 0])
            mine[0] += entry[0]
            mine[1] += entry[1]
            other = adj[c]
            other.pop(gone, None)
            other[keep] = mine
        adj[gone] = None
        version[keep] += 1
        for c, entry in adj[keep].items():
            x, y = min(keep, c), max(keep, c)
            heapq.heappush(heap, (mean(keep, c, entry), x, y, version[x], version[y]))
    return relabel(np.array([find(a) for a in range(n)], np.int64))


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


def bcubed(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """BCubed precision, recall and F of a clustering against true classes (same length)."""
    labels = np.asarray(labels)
    truth = np.asarray(truth)
    if len(labels) == 0:
        return 1.0, 1.0, 1.0
    _, li = np.unique(labels, return_inverse=True)
    _, ti = np.unique(truth, return_inverse=True)
    both = li.astype(np.int64) * (ti.max() + 1) + ti
    _, bi, both_n = np.unique(both, return_inverse=True, return_counts=True)
    inter = both_n[bi]
    precision = float(np.mean(inter / np.bincount(li)[li]))
    recall = float(np.mean(inter / np.bincount(ti)[ti]))
    return precision, recall, 2 * precision * recall / (precision + recall)
