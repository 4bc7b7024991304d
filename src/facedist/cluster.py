"""cluster: same-person groups ("people") from a sparse graph of face distances.

Connected components over the pairs under a threshold chain a whole library into one group:
one close pair between two people is enough. The default here is average linkage on squared
distances: two groups merge only while the root of the *mean squared* distance over all their
cross pairs is under the cut, so a few close pairs cannot chain two people together. That mean
is exact from each group's sums, whatever the graph holds; the graph (each face's nearest
neighbours) only says which groups are worth comparing, so it stays small at any scale.

Constraints make corrections stick: faces pinned to the same person start as one group, and
groups whose persons are known to differ (two pinned persons, or a "these are different
people" correction) never merge. Two faces of one photo are two people: groups that hold faces
of the same photo never merge either (unless the user pinned them together). The same function
serves a full clustering and an incremental one (existing people as pinned groups, new faces as
singletons).

Chinese whispers and a DBSCAN-style core-point rule, measured against it and found worse on
lfw-dev and celeba (README, "People"), live with that bench (bench/people_methods.py).

    >>> x = np.array([[0, 0], [0.2, 0], [5, 0], [5.3, 0]])
    >>> edges = Graph(4, np.array([0, 2, 1]), np.array([1, 3, 2]), np.array([0.2, 0.3, 4.8]))
    >>> average_linkage(x, edges, cut=0.5).tolist()
    [0, 0, 1, 1]
    >>> average_linkage(x, edges, cut=0.5, photo=np.array([7, 7, -1, -1])).tolist()
    [0, 1, 2, 2]
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from .jit import compiled


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


# How a group pair's mean squared distance is weighed against the prior (single_cut): by the
# square root of its number of cross pairs. Chosen with the cuts on the albums, celeba and
# lfw-dev (1: albums as well, lfw-dev's people of a few photos mixed more).
SINGLE_CUT_POWER = 0.5


def average_linkage(x: np.ndarray, graph: Graph, cut: float,
                    seeds: np.ndarray | None = None,
                    photo: np.ndarray | None = None,
                    single_cut: float | None = None) -> np.ndarray:
    """Agglomerative clustering of the vectors `x`: the two groups with the smallest mean
    squared distance over all their cross pairs merge, while its root is under `cut`. Only
    groups joined by an edge of `graph` (say, each face's nearest neighbours) are candidates;
    the mean itself is exact, from each group's vector sum and sum of squared norms, so a few
    close pairs cannot chain two people and a large person holds together however few of its
    pairs are in the graph. Returns a group label per vector (0..G-1).

    seeds: per vector, -1 or a seed id; vectors of one seed start merged, and two groups that
    hold different seeds never merge.

    photo: per vector, a photo id (negative: none); two groups that hold faces of one photo
    never merge (a seed's vectors still start as one group, whatever their photos).

    single_cut: two single vectors merge only under it, larger groups nearer `cut`: a mean over
    few pairs says less than one over many, so the mean over P pairs, weighed sqrt(P)
    (SINGLE_CUT_POWER), is drawn toward twice the cut's square, weighed k, k such that one pair
    meets `single_cut` (models: people thresholds; bench/results-people/people-cut.md).

    The merge loop is compiled (numba): a heap of each group's closest neighbouring group
    (_merge says why one entry per group is enough), each group's neighbours a linked list that
    merges in O(1) and is compacted as it is walked. A million faces with their 10 nearest
    each: bench/results-scale."""
    n = len(x)
    seed_of = np.full(n, -1, np.int64) if seeds is None else np.asarray(seeds, np.int64)
    sums = np.asarray(x, np.float64).copy()  # per group (its root): sum of vectors,
    squares = np.einsum("ij,ij->i", sums, sums)  # sum of squared norms, size, seed
    size = np.ones(n)
    group_seed = seed_of.copy()
    parent = np.arange(n)
    seeded = np.nonzero(seed_of >= 0)[0]
    if len(seeded):  # a seed's vectors are one group from the start (its first vector the root)
        _, first, inverse = np.unique(seed_of[seeded], return_index=True, return_inverse=True)
        roots = seeded[first]
        parent[seeded] = roots[inverse]
        group_sums = np.zeros((len(roots), sums.shape[1]))
        np.add.at(group_sums, inverse, sums[seeded])
        sums[roots] = group_sums
        squares[roots] = np.bincount(inverse, weights=squares[seeded])
        size[roots] = np.bincount(inverse)
    constrained = photo is not None
    if constrained:
        sibling = _photo_siblings(np.asarray(photo, np.int64), n)
        sib_head, sib_tail, sib_next, sib_count = _sibling_lists(sibling, parent)
    else:
        sibling = sib_head = sib_tail = sib_next = sib_count = np.zeros(0, np.int64)
    ri, rj = parent[graph.i], parent[graph.j]  # every tree is one level deep here
    lo, hi = np.minimum(ri, rj).astype(np.int64), np.maximum(ri, rj).astype(np.int64)
    del ri, rj  # (a million faces' graph: each of these arrays is 80 MB)
    apart = lo != hi
    key = np.unique(lo[apart] * n + hi[apart])
    del lo, hi, apart
    a, b = key // n, key % n
    del key
    # each group's neighbours: a linked list over the directed edges (val, nxt), from head to tail
    src = np.concatenate([a, b])
    order = np.argsort(src, kind="stable")
    src = src[order]
    val = np.concatenate([b, a])[order]
    del order
    nxt = np.arange(1, len(src) + 1, dtype=np.int64)
    last = np.ones(len(src), bool)
    last[:-1] = src[1:] != src[:-1]
    nxt[last] = -1
    head = np.full(n, -1, np.int64)
    tail = np.full(n, -1, np.int64)
    first_of = np.ones(len(src), bool)
    first_of[1:] = src[1:] != src[:-1]
    head[src[first_of]] = np.nonzero(first_of)[0]
    tail[src[last]] = np.nonzero(last)[0]
    degree = np.bincount(src, minlength=n).astype(np.int64)
    del src, first_of, last
    del a, b
    # single_cut: two single faces merge under it, groups nearer `cut`: the mean squared
    # distance over P cross pairs, weighed sqrt(P), drawn toward 2 cut^2 weighed k (k solved so
    # that one pair meets single_cut)
    k = 0.0 if single_cut is None else max(0.0, (cut * cut - single_cut * single_cut) / (cut * cut))
    _merge(sums, squares, size, group_seed, parent, head, tail, nxt, val, degree, cut * cut,
           constrained, sibling, sib_head, sib_tail, sib_next, sib_count,
           np.array([k, 2 * cut * cut, SINGLE_CUT_POWER]))
    while True:  # every vector to its root
        up = parent[parent]
        if np.array_equal(up, parent):
            return relabel(parent)
        parent = up


def linkage_distance(rms, size_a, size_b, cut: float, single_cut: float | None = None):
    """The distance at which average_linkage weighs two groups of size_a and size_b faces whose
    faces are `rms` apart (root mean squared over their cross pairs) against `cut`: `rms`
    itself without a single_cut, else the root of the mean drawn toward 2 cut^2 as _mean_square
    draws it. Two groups under `cut` by it would merge, unless something keeps them apart (a
    photo they share, a correction, no edge between them in the graph).

        >>> round(float(linkage_distance(0.33, 1, 1, 0.37, 0.33)), 4)  # one pair: the single cut
        0.37
        >>> round(float(linkage_distance(0.33, 1, 1, 0.37)), 4)
        0.33
    """
    rms = np.asarray(rms, np.float64)
    if single_cut is None:
        return rms
    k = max(0.0, (cut * cut - single_cut * single_cut) / (cut * cut))
    weight = (np.asarray(size_a, np.float64) * np.asarray(size_b, np.float64)) ** SINGLE_CUT_POWER
    return np.sqrt((weight * rms * rms + k * 2 * cut * cut) / (weight + k))


def _photo_siblings(photo: np.ndarray, n: int) -> np.ndarray:
    """Each vector's next vector of the same photo, around a circle; itself when its photo has
    no other vector or is none (negative)."""
    if photo.shape != (n,):
        raise ValueError(f"photo: one id per vector expected, got shape {photo.shape}")
    sibling = np.arange(n, dtype=np.int64)
    known = np.nonzero(photo >= 0)[0]
    order = known[np.argsort(photo[known], kind="stable")]  # each photo's vectors one run
    if len(order):
        p = photo[order]
        starts = np.ones(len(order), bool)
        starts[1:] = p[1:] != p[:-1]
        ends = np.ones(len(order), bool)
        ends[:-1] = starts[1:]
        run_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
        following = np.arange(1, len(order) + 1)
        following[ends] = run_start[ends]  # the last of a run wraps to its first
        sibling[order] = order[following]
    return sibling


def _sibling_lists(sibling: np.ndarray, parent: np.ndarray):
    """Per group (its root, `parent` one level deep), a linked list of its members that share
    their photo with another vector: only those can keep two groups apart, and most faces are
    alone in their photo. Returns head and tail per group, next per member, count per group."""
    n = len(parent)
    members = np.nonzero(sibling != np.arange(n))[0]
    root = parent[members]
    order = np.argsort(root, kind="stable")
    members, root = members[order], root[order]
    head = np.full(n, -1, np.int64)
    tail = np.full(n, -1, np.int64)
    following = np.full(n, -1, np.int64)
    if len(members):
        last = np.ones(len(members), bool)
        last[:-1] = root[1:] != root[:-1]
        first = np.ones(len(members), bool)
        first[1:] = last[:-1]
        following[members[:-1]] = members[1:]
        following[members[last]] = -1
        head[root[first]] = members[first]
        tail[root[last]] = members[last]
    count = np.bincount(root, minlength=n).astype(np.int64)
    return head, tail, following, count


@compiled
def _mean_square(sums, squares, size, a, b, shrink):
    """The mean squared distance over the cross pairs of groups a and b, weighed by their
    number to the power shrink[2], drawn toward shrink[1] weighed shrink[0] (average_linkage's
    `single_cut`; shrink[0] = 0: the plain mean)."""
    dot = 0.0
    for t in range(sums.shape[1]):
        dot += sums[a, t] * sums[b, t]
    mean = squares[a] / size[a] + squares[b] / size[b] - 2.0 * dot / (size[a] * size[b])
    weight = (size[a] * size[b]) ** shrink[2]
    return (weight * mean + shrink[0] * shrink[1]) / (weight + shrink[0])


@compiled
def _root(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@compiled
def _share_photo(a, b, parent, sibling, sib_head, sib_next, sib_count):
    """Whether groups a and b (roots, both with members in sib lists) hold faces of one photo:
    the siblings of the shorter list's members, each to its root."""
    if sib_count[a] > sib_count[b]:
        a, b = b, a
    i = sib_head[a]
    while i >= 0:
        j = sibling[i]
        while j != i:
            if _root(parent, j) == b:
                return True
            j = sibling[j]
        i = sib_next[i]
    return False


@compiled
def _scan(g, sums, squares, size, group_seed, parent, head, tail, nxt, val, degree, stamp, tick,
          best, best_version, version, constrained, sibling, sib_head, sib_next, sib_count,
          shrink):
    """Walk group g's neighbour list once: each entry to its group's root; duplicates, g itself
    and groups g may never join unlinked (another seed; another face of a photo g holds, looked
    for only in a group that would be g's closest), since merges only add to what keeps two
    groups apart; g's closest group it may join into best[g] (with that group's version).
    Returns the mean squared distance to it (inf: none)."""
    stamp[g] = tick
    g_shares = constrained and sib_count[g] > 0  # else g holds no face of a shared photo
    closest, partner = np.inf, -1
    prev, e, count = -1, head[g], 0
    while e >= 0:
        r = _root(parent, val[e])
        following = nxt[e]
        drop = stamp[r] == tick or (group_seed[g] >= 0 and group_seed[r] >= 0
                                    and group_seed[g] != group_seed[r])
        if not drop:
            stamp[r] = tick
            m = _mean_square(sums, squares, size, min(g, r), max(g, r), shrink)
            closer = m < closest or (m == closest and r < partner)
            # photos only for a group that would be g's closest: the walk costs more than the
            # mean, and a group it would refuse further away does no harm in the list
            if closer and g_shares and sib_count[r] > 0 and _share_photo(
                    g, r, parent, sibling, sib_head, sib_next, sib_count):
                drop = True
            else:
                val[e] = r
                prev = e
                count += 1
                if closer:
                    closest, partner = m, r
        if drop:
            if prev < 0:
                head[g] = following
            else:
                nxt[prev] = following
        e = following
    tail[g] = prev
    if prev >= 0:
        nxt[prev] = -1
    degree[g] = count
    best[g] = partner
    best_version[g] = version[partner] if partner >= 0 else 0
    return closest


@compiled
def _merge(sums, squares, size, group_seed, parent, head, tail, nxt, val, degree, limit,
           constrained, sibling, sib_head, sib_tail, sib_next, sib_count, shrink):
    """The merge loop of average_linkage, in place on its arrays.

    The heap holds one entry per group: its distance to its closest neighbouring group, as
    computed when pushed. When two groups merge, the new group's mean to any other group is a
    weighted mean of the two old ones, so an entry is never above the true distance of any pair
    it covers: an entry whose partner has changed since is recomputed when it comes out, and one
    whose partner has not is the closest pair of all and merges. One push per merge, not one
    per neighbour (a million faces: a heap of ~1M entries instead of ~14M). Pairs that may
    never merge (seeds, photos) stay so once groups grow, so refusing them keeps this true."""
    n = len(parent)
    version = np.zeros(n, np.int64)
    stamp = np.zeros(n, np.int64)
    best = np.full(n, -1, np.int64)
    best_version = np.zeros(n, np.int64)
    tick = 0
    heap = [(0.0, 0, 0)]
    heap.pop()
    for g in range(n):
        if parent[g] == g and head[g] >= 0:
            tick += 1
            m = _scan(g, sums, squares, size, group_seed, parent, head, tail, nxt, val, degree,
                      stamp, tick, best, best_version, version, constrained, sibling, sib_head,
                      sib_next, sib_count, shrink)
            if m < limit:
                heap.append((m, g, 0))
    heapq.heapify(heap)
    while len(heap):
        m, g, vg = heapq.heappop(heap)
        if m >= limit:
            break
        if parent[g] != g or version[g] != vg:
            continue  # g has merged since: its entry was pushed again then
        r = best[g]
        if parent[r] != r or version[r] != best_version[g]:  # the partner changed: look again
            tick += 1
            m = _scan(g, sums, squares, size, group_seed, parent, head, tail, nxt, val, degree,
                      stamp, tick, best, best_version, version, constrained, sibling, sib_head,
                      sib_next, sib_count, shrink)
            if m < limit:
                heapq.heappush(heap, (m, g, vg))
            continue
        keep, gone = (g, r) if degree[g] >= degree[r] else (r, g)
        parent[gone] = keep
        sums[keep] += sums[gone]
        squares[keep] += squares[gone]
        size[keep] += size[gone]
        group_seed[keep] = max(group_seed[keep], group_seed[gone])
        if head[gone] >= 0:  # the neighbour lists join
            if head[keep] < 0:
                head[keep] = head[gone]
            else:
                nxt[tail[keep]] = head[gone]
            tail[keep] = tail[gone]
            head[gone] = -1
        if constrained and sib_head[gone] >= 0:  # and so do the lists of faces with siblings
            if sib_head[keep] < 0:
                sib_head[keep] = sib_head[gone]
            else:
                sib_next[sib_tail[keep]] = sib_head[gone]
            sib_tail[keep] = sib_tail[gone]
            sib_count[keep] += sib_count[gone]
            sib_head[gone] = -1
        version[keep] += 1
        tick += 1
        m = _scan(keep, sums, squares, size, group_seed, parent, head, tail, nxt, val, degree,
                  stamp, tick, best, best_version, version, constrained, sibling, sib_head,
                  sib_next, sib_count, shrink)
        if m < limit:
            heapq.heappush(heap, (m, keep, version[keep]))


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
