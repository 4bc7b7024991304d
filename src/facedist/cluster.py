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


def group_sums(x: np.ndarray, rows: np.ndarray, group: np.ndarray, groups: int,
               block: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group 0..groups-1, the float64 sum of the vectors x[rows[i]] of its members
    (group[i]), the sum of their squared norms and their number: what the mean squared distance
    between two groups is made of. A block of rows at a time, so no float64 copy of x is made
    (a million 128-d faces: 1 GB).

        >>> sums, squares, size = group_sums(np.array([[1.0, 0], [0, 2], [3, 0]]),
        ...                                  np.array([0, 1, 2]), np.array([1, 0, 1]), 2)
        >>> sums.tolist(), squares.tolist(), size.tolist()
        ([[0.0, 2.0], [4.0, 0.0]], [4.0, 10.0], [1.0, 2.0])
    """
    order = np.argsort(group, kind="stable")
    rows, group = np.asarray(rows)[order], np.asarray(group)[order]
    sums = np.zeros((groups, x.shape[1]))
    squares = np.zeros(groups)
    for start in range(0, len(rows), block):
        g = group[start:start + block]
        first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])  # each group's run in the block
        v = x[rows[start:start + block]].astype(np.float64)
        sums[g[first]] += np.add.reduceat(v, first, axis=0)
        squares[g[first]] += np.add.reduceat(np.einsum("ij,ij->i", v, v), first)
    return sums, squares, np.bincount(group, minlength=groups).astype(np.float64)


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
    merges in O(1) and is compacted as it is walked; a large group weighs its closest
    candidates again after a merge, not its whole list (LARGE). A million faces with their 10
    nearest each: bench/results-scale."""
    n = len(x)
    seed_of = np.full(n, -1, np.int64) if seeds is None else np.asarray(seeds, np.int64)
    group_seed = seed_of.copy()
    parent = np.arange(n)
    seeded = np.nonzero(seed_of >= 0)[0]
    if len(seeded):  # a seed's vectors are one group from the start (its first vector the root)
        _, first, inverse = np.unique(seed_of[seeded], return_index=True, return_inverse=True)
        roots = seeded[first]
        parent[seeded] = roots[inverse]
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
    # per group (its root): sum of vectors, sum of squared norms, size; made after the lists,
    # whose making needs as much again (a million faces: 1 GB here, 0.7 GB there)
    sums = np.array(x, np.float64)
    squares = np.einsum("ij,ij->i", sums, sums)
    size = np.ones(n)
    if len(seeded):
        sums[roots], squares[roots], size[roots] = group_sums(x, seeded, inverse, len(roots))
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
def _mean_square(sums, squares, size, a, b):
    """The mean squared distance over the cross pairs of groups a and b."""
    dot = 0.0
    for t in range(sums.shape[1]):
        dot += sums[a, t] * sums[b, t]
    return squares[a] / size[a] + squares[b] / size[b] - 2.0 * dot / (size[a] * size[b])


@compiled
def _drawn(mean, pairs, shrink):
    """A mean squared distance over `pairs` cross pairs, weighed by their number to the power
    shrink[2] and drawn toward shrink[1] weighed shrink[0] (average_linkage's `single_cut`;
    shrink[0] = 0: the mean itself): the value merges follow. A weighed mean of the two, so
    never under min(mean, shrink[1])."""
    if shrink[0] == 0.0:
        return mean
    weight = np.sqrt(pairs) if shrink[2] == 0.5 else pairs ** shrink[2]  # sqrt: far cheaper
    return (weight * mean + shrink[0] * shrink[1]) / (weight + shrink[0])


@compiled
def _pair(g, r, sums, squares, size, shrink):
    """The drawn mean squared distance between groups g and r: what merges follow."""
    return _drawn(_mean_square(sums, squares, size, min(g, r), max(g, r)), size[g] * size[r],
                  shrink)


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


# A group with LARGE neighbouring groups or more keeps the CANDIDATES closest of them (by
# _pair) and a floor under the rest. When it absorbs a small group, or its closest merges
# elsewhere, it weighs those and the small group's neighbours again, not its whole list: a
# large person takes in its faces one by one, each a walk of thousands of entries before
# (bench/results-scale: the people of a million faces).
LARGE = 128
CANDIDATES = 64


@compiled
def _hold(ids, means, held, node, mean):
    """Keep (node, mean) among the CANDIDATES least means of one row (ids, means; `held`
    filled). Returns the new count and the mean that left the row or never entered it (inf:
    none), for the floor under the others."""
    if held < CANDIDATES:
        ids[held] = node
        means[held] = mean
        return held + 1, np.inf
    worst = 0
    for t in range(1, held):
        if means[t] > means[worst]:
            worst = t
    if mean >= means[worst]:
        return held, mean
    out = means[worst]
    ids[worst] = node
    means[worst] = mean
    return held, out


@compiled
def _apart(g, r, group_seed):
    """Groups that hold two different seeds never merge."""
    return group_seed[g] >= 0 and group_seed[r] >= 0 and group_seed[g] != group_seed[r]


@compiled
def _release(g, slot, free):
    """Group g's candidate slot back to the free ones."""
    if slot[g] >= 0:
        free[free[0] + 1] = slot[g]
        free[0] += 1
        slot[g] = -1


@compiled
def _unlink(g, prev, following, head, nxt):
    """Drop the entry after `prev` (-1: the first) from group g's neighbour list."""
    if prev < 0:
        head[g] = following
    else:
        nxt[prev] = following


@compiled
def _scan(g, sums, squares, size, group_seed, parent, head, tail, nxt, val, degree, stamp, tick,
          best, best_version, version, constrained, sibling, sib_head, sib_next, sib_count,
          shrink, slot, cand_id, cand_mean, cand_count, cand_version, floor, free):
    """Walk group g's neighbour list once: each entry to its group's root; duplicates, g itself
    and groups g may never join unlinked (another seed; another face of a photo g holds, looked
    for only in a group that would be g's closest), since merges only add to what keeps two
    groups apart; g's closest group it may join into best[g] (with that group's version). A
    list of LARGE groups or more leaves its candidates in a slot (see LARGE).
    Returns the drawn mean squared distance to the closest (inf: none)."""
    stamp[g] = tick
    g_shares = constrained and sib_count[g] > 0  # else g holds no face of a shared photo
    collect = degree[g] >= LARGE  # degree: before the walk, at least its count after
    scratch = len(cand_count)  # cand_id/cand_mean's last row: candidates while walking
    held, low = 0, np.inf
    closest, partner = np.inf, -1
    prev, e, count = -1, head[g], 0
    while e >= 0:
        r = _root(parent, val[e])
        following = nxt[e]
        drop = stamp[r] == tick or _apart(g, r, group_seed)
        if not drop:
            stamp[r] = tick
            m = _pair(g, r, sums, squares, size, shrink)
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
                if collect:
                    held, out = _hold(cand_id[scratch], cand_mean[scratch], held, r, m)
                    low = min(low, out)
        if drop:
            _unlink(g, prev, following, head, nxt)
        e = following
    tail[g] = prev
    if prev >= 0:
        nxt[prev] = -1
    degree[g] = count
    best[g] = partner
    best_version[g] = version[partner] if partner >= 0 else 0
    s = slot[g]
    if collect and count >= LARGE and (s >= 0 or free[0] > 0):  # none free: g walks its list
        if s < 0:
            free[0] -= 1
            s = free[free[0] + 1]
            slot[g] = s
        cand_id[s, :held] = cand_id[scratch, :held]
        cand_mean[s, :held] = cand_mean[scratch, :held]
        cand_count[s] = held
        floor[s] = low
        cand_version[s] = version[g]
    elif s >= 0:
        _release(g, slot, free)
    return closest


@compiled
def _reweigh(g, s, tick, sums, squares, size, group_seed, parent, stamp, cand_id, cand_mean,
             cand_count, shrink):
    """Slot s's candidates (group g's) weighed again, each to its root: g itself, repeats and
    groups g may never join leave the row. Stamps them with `tick`."""
    stamp[g] = tick
    held = 0
    for t in range(cand_count[s]):
        r = _root(parent, cand_id[s, t])
        if stamp[r] == tick or _apart(g, r, group_seed):
            continue
        stamp[r] = tick
        cand_id[s, held] = r
        cand_mean[s, held] = _pair(g, r, sums, squares, size, shrink)
        held += 1
    cand_count[s] = held


@compiled
def _choose(g, s, size, parent, best, best_version, version, constrained, sibling, sib_head,
            sib_next, sib_count, shrink, cand_id, cand_mean, cand_count, floor):
    """Group g's closest from its candidates (slot s), when none of its other neighbours can be
    closer (their floor): best[g] as _scan leaves it. Else best[g] = -1, and the least its
    closest can be is returned: the merge loop walks g's whole list when that comes out."""
    g_shares = constrained and sib_count[g] > 0
    while True:
        closest, partner, at = np.inf, -1, -1
        for t in range(cand_count[s]):
            r = cand_id[s, t]
            m = cand_mean[s, t]
            if m < closest or (m == closest and r < partner):
                closest, partner, at = m, r, t
        if partner < 0 or not (g_shares and sib_count[partner] > 0 and _share_photo(
                g, partner, parent, sibling, sib_head, sib_next, sib_count)):
            break
        last = cand_count[s] - 1  # a photo keeps them apart for good: out of the row
        cand_id[s, at] = cand_id[s, last]
        cand_mean[s, at] = cand_mean[s, last]
        cand_count[s] = last
    if partner >= 0 and closest <= floor[s]:
        best[g] = partner
        best_version[g] = version[partner]
        return closest
    best[g] = -1
    return min(closest, floor[s])


@compiled
def _absorbed(keep, s, e, prev, tick, sums, squares, size, group_seed, parent, head, tail, nxt,
              val, degree, stamp, best, best_version, version, constrained, sibling, sib_head,
              sib_next, sib_count, shrink, cand_id, cand_mean, cand_count, cand_version, floor):
    """Group keep (slot s) has just absorbed a small group, whose neighbour list starts at
    entry e after keep's own (ending at prev): its candidates weighed again, the small group's
    entries walked (repeats and groups keep may never join unlinked) and held or under the
    floor. Returns what _choose returns."""
    _reweigh(keep, s, tick, sums, squares, size, group_seed, parent, stamp, cand_id, cand_mean,
             cand_count, shrink)
    held = cand_count[s]
    while e >= 0:
        r = _root(parent, val[e])
        following = nxt[e]
        if stamp[r] == tick or _apart(keep, r, group_seed):
            _unlink(keep, prev, following, head, nxt)
        else:
            stamp[r] = tick
            val[e] = r
            prev = e
            degree[keep] += 1
            held, out = _hold(cand_id[s], cand_mean[s], held, r,
                              _pair(keep, r, sums, squares, size, shrink))
            floor[s] = min(floor[s], out)
        e = following
    tail[keep] = prev
    if prev >= 0:
        nxt[prev] = -1
    cand_count[s] = held
    cand_version[s] = version[keep]
    return _choose(keep, s, size, parent, best, best_version, version, constrained, sibling,
                   sib_head, sib_next, sib_count, shrink, cand_id, cand_mean, cand_count, floor)


@compiled
def _lower_floor(low, sums, squares, size, keep, gone, shrink):
    """The floor under the drawn means of group keep to the groups it does not hold as
    candidates (`low`), once it absorbs gone: its mean to any group r becomes the mean of keep's
    and gone's weighed by their sizes (a = keep's share), and gone's is at least gone's own
    spread; the weight of the pairs grows by 1/sqrt(a), which can draw a mean under the cut
    nearer itself, by at most rho, taken at the fewest pairs (r of one face)."""
    spread = max(_mean_square(sums, squares, size, gone, gone) / 2, 0.0)
    a = size[keep] / (size[keep] + size[gone])
    if shrink[0] == 0.0:
        return a * low + (1 - a) * spread
    c = shrink[1]  # what the mean is drawn toward: C - drawn = (C - mean) w / (w + k)
    x = shrink[0] / size[keep] ** shrink[2]  # k / w at one face
    rho = (1 + x) / (1 + x * a ** shrink[2])
    return c - (a * rho * (c - min(low, c)) + (1 - a) * max(c - spread, 0.0))


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
    never merge (seeds, photos) stay so once groups grow, so refusing them keeps this true.

    The same weighted mean keeps a large group's floor (see LARGE) under its distance to every
    group it does not hold as a candidate, once it absorbs another (_lower_floor)."""
    n = len(parent)
    version = np.zeros(n, np.int64)
    stamp = np.zeros(n, np.int64)
    best = np.full(n, -1, np.int64)
    best_version = np.zeros(n, np.int64)
    # candidate slots: a holder had LARGE entries or more when it last walked its list, and the
    # lists are apart, so there are never more holders than entries / LARGE; far fewer in fact
    # (356 at most in 100,000 faces), and a group finding none free walks its list as before
    slots = min(len(val) // LARGE, n // 64) + 1
    slot = np.full(n, -1, np.int64)
    cand_id = np.zeros((slots + 1, CANDIDATES), np.int64)  # + the row _scan gathers into
    cand_mean = np.zeros((slots + 1, CANDIDATES))
    cand_count = np.zeros(slots, np.int64)
    cand_version = np.full(slots, -1, np.int64)
    floor = np.full(slots, np.inf)
    free = np.empty(slots + 1, np.int64)  # free[0]: how many are free, then the free slots
    free[0] = slots
    free[1:] = np.arange(slots)
    tick = 0
    heap = [(0.0, 0, 0)]
    heap.pop()
    for g in range(n):
        if parent[g] == g and head[g] >= 0:
            tick += 1
            m = _scan(g, sums, squares, size, group_seed, parent, head, tail, nxt, val, degree,
                      stamp, tick, best, best_version, version, constrained, sibling, sib_head,
                      sib_next, sib_count, shrink, slot, cand_id, cand_mean, cand_count,
                      cand_version, floor, free)
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
        if r < 0 or parent[r] != r or version[r] != best_version[g]:  # look again
            tick += 1
            s = slot[g]
            if r >= 0 and s >= 0 and cand_version[s] == version[g]:  # its partner moved
                _reweigh(g, s, tick, sums, squares, size, group_seed, parent, stamp, cand_id,
                         cand_mean, cand_count, shrink)
                m = _choose(g, s, size, parent, best, best_version, version, constrained,
                            sibling, sib_head, sib_next, sib_count, shrink, cand_id, cand_mean,
                            cand_count, floor)
            else:
                m = _scan(g, sums, squares, size, group_seed, parent, head, tail, nxt, val,
                          degree, stamp, tick, best, best_version, version, constrained, sibling,
                          sib_head, sib_next, sib_count, shrink, slot, cand_id, cand_mean,
                          cand_count, cand_version, floor, free)
            if m < limit:
                heapq.heappush(heap, (m, g, vg))
            continue
        keep, gone = (g, r) if degree[g] >= degree[r] else (r, g)
        s = slot[keep]
        cached = s >= 0 and cand_version[s] == version[keep] and degree[gone] < LARGE
        if cached:  # the floor under keep's other neighbours, now that gone joins it
            floor[s] = _lower_floor(floor[s], sums, squares, size, keep, gone, shrink)
        joined, keep_tail = head[gone], tail[keep]
        _release(gone, slot, free)
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
        if cached:
            m = _absorbed(keep, s, joined, keep_tail, tick, sums, squares, size, group_seed,
                          parent, head, tail, nxt, val, degree, stamp, best, best_version,
                          version, constrained, sibling, sib_head, sib_next, sib_count, shrink,
                          cand_id, cand_mean, cand_count, cand_version, floor)
        else:
            m = _scan(keep, sums, squares, size, group_seed, parent, head, tail, nxt, val,
                      degree, stamp, tick, best, best_version, version, constrained, sibling,
                      sib_head, sib_next, sib_count, shrink, slot, cand_id, cand_mean,
                      cand_count, cand_version, floor, free)
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
