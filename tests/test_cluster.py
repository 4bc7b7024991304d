import os
from pathlib import Path

import numpy as np

from facedist.cluster import Graph, average_linkage, bcubed, relabel
from facedist.compare import compare


def full_graph(x):
    res = compare(x, 0, np.inf)
    return Graph(len(x), res.pairs[:, 0], res.pairs[:, 1], res.pair_dist)


def reference_linkage(x, cut, single_cut=None):
    """The definition, all pairs, no graph: merge the two groups with the smallest mean squared
    cross distance while its root is under the cut. With `single_cut`: that mean over P pairs,
    weighed sqrt(P), drawn toward 2 cut^2 weighed k = (cut^2 - single_cut^2) / cut^2."""
    k = 0.0 if single_cut is None else (cut * cut - single_cut * single_cut) / (cut * cut)

    def mean_square(ga, gb):
        weight = np.sqrt(len(ga) * len(gb))
        mean = np.mean([((x[a] - x[b]) ** 2).sum() for a in ga for b in gb])
        return (weight * mean + k * 2 * cut * cut) / (weight + k)

    groups = [[i] for i in range(len(x))]
    while len(groups) > 1:
        best = min((mean_square(ga, gb), i, j) for i, ga in enumerate(groups)
                   for j, gb in enumerate(groups) if i < j)
        if best[0] >= cut * cut:
            break
        _, i, j = best
        groups[i] = groups[i] + groups.pop(j)
    labels = np.zeros(len(x), np.int64)
    for g, members in enumerate(groups):
        labels[members] = g
    return labels


def test_linkage_matches_its_definition(rng):
    for _ in range(4):
        x = rng.normal(size=(30, 3))
        cut = float(np.median(np.linalg.norm(x[:, None] - x[None], axis=-1))) / 2
        ours = average_linkage(x, full_graph(x.astype(np.float32)), cut)
        assert bcubed(ours, reference_linkage(x, cut)) == (1.0, 1.0, 1.0)


def test_a_chain_of_close_pairs_does_not_make_one_person():
    """Points 0.3 apart on a line: every neighbour is under the cut, the ends are far apart.
    Connected components would chain all 30 into one group."""
    x = np.stack([np.arange(30) * 0.3, np.zeros(30)], 1)
    labels = average_linkage(x, full_graph(x.astype(np.float32)), cut=0.5)
    assert len(set(labels.tolist())) >= 10
    assert max(np.bincount(labels)) <= 3


def test_two_blobs_and_a_bridge(rng):
    a = rng.normal(0, 0.05, (20, 8))
    b = rng.normal(0, 0.05, (20, 8)) + np.eye(8)[0] * 1.0
    bridge = np.linspace(0, 1, 7)[1:-1, None] * np.eye(8)[0]  # stepping stones between them
    x = np.concatenate([a, b, bridge])
    labels = average_linkage(x, full_graph(x.astype(np.float32)), cut=0.4)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:40])) == 1
    assert labels[0] != labels[20]


def test_seeds_start_together_and_never_merge(rng):
    x = np.concatenate([rng.normal(0, 0.01, (6, 4)), [[5, 5, 5, 5]]])
    seeds = np.array([1, 1, 1, 2, 2, -1, 3])  # 1 and 2 are close but two known people
    labels = average_linkage(x, full_graph(x.astype(np.float32)), cut=0.5, seeds=seeds)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]
    assert labels[5] in (labels[0], labels[3])  # the free face joins one of them
    assert labels[6] not in labels[:6]  # a seed far from everyone stays, with its own group


def test_the_graph_only_says_which_groups_to_compare():
    x = np.array([[0.0], [0.1], [0.2]])
    chain = Graph(3, np.array([0, 1]), np.array([1, 2]), np.zeros(2))
    assert average_linkage(x, chain, 0.5).tolist() == [0, 0, 0]
    apart = Graph(3, np.array([0]), np.array([1]), np.zeros(1))  # 2 is linked to nobody
    assert average_linkage(x, apart, 0.5).tolist() == [0, 0, 1]


def test_deterministic_whatever_the_run(tmp_path):
    """The same people in two processes (each with its own hash seed and allocations): what one
    process cannot see, such as an order taken from a set or from memory addresses."""
    import subprocess
    import sys

    code = ("import numpy as np, sys; from facedist.cluster import average_linkage; "
            "from test_cluster import full_graph; rng = np.random.default_rng(0); "
            "x = rng.normal(size=(80, 6)); g = full_graph(x.astype(np.float32)); "
            "np.save(sys.argv[1], average_linkage(x, g, 2.0, photo=np.arange(80) // 3))")
    labels = []
    for seed in ("1", "2"):
        path = tmp_path / f"labels-{seed}.npy"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                       cwd=Path(__file__).parent, env={**os.environ, "PYTHONHASHSEED": seed})
        labels.append(np.load(path))
    assert np.array_equal(*labels) and len(set(labels[0].tolist())) > 1


def test_relabel_and_bcubed():
    assert relabel(np.array([7, 3, 7, 9])).tolist() == [0, 1, 0, 2]
    p, r, f = bcubed(np.array([0, 0, 1, 1]), np.array(["a", "a", "a", "b"]))
    assert (p, r) == (0.75, (2 / 3 + 2 / 3 + 1 / 3 + 1) / 4)
    assert bcubed(np.zeros(4), np.array(list("abcd")))[0] == 0.25  # one chained group


def heap_linkage(x, graph, cut, single_cut=None):
    """The same algorithm in plain Python (one merge at a time from a heap, neighbours as sets,
    every pair of the new group pushed after each merge): the compiled loop must give exactly
    its groups."""
    import heapq

    k = 0.0 if single_cut is None else (cut * cut - single_cut * single_cut) / (cut * cut)

    n = len(x)
    sums, squares, size = x.astype(np.float64).copy(), (x.astype(np.float64) ** 2).sum(1), np.ones(n)
    parent = np.arange(n)
    adj = [set() for _ in range(n)]
    for a, b in zip(graph.i.tolist(), graph.j.tolist()):
        if a != b:
            adj[a].add(b)
            adj[b].add(a)

    def ms(a, b):
        mean = squares[a] / size[a] + squares[b] / size[b] - 2 * sums[a] @ sums[b] / (size[a] * size[b])
        weight = np.sqrt(size[a] * size[b])
        return (weight * mean + k * 2 * cut * cut) / (weight + k)

    version = [0] * n
    heap = [(ms(a, b), a, b, 0, 0) for a in range(n) for b in adj[a] if a < b]
    heapq.heapify(heap)
    while heap:
        m, a, b, va, vb = heapq.heappop(heap)
        if m >= cut * cut:
            break
        if parent[a] != a or parent[b] != b or version[a] != va or version[b] != vb:
            continue
        keep, gone = (a, b) if len(adj[a]) >= len(adj[b]) else (b, a)
        parent[gone] = keep
        sums[keep] += sums[gone]
        squares[keep] += squares[gone]
        size[keep] += size[gone]
        for c in adj[gone]:
            if c != keep:
                adj[c].discard(gone)
                adj[c].add(keep)
                adj[keep].add(c)
        adj[keep].discard(gone)
        adj[gone] = set()
        version[keep] += 1
        for c in adj[keep]:
            lo, hi = min(keep, c), max(keep, c)
            heapq.heappush(heap, (ms(keep, c), lo, hi, version[lo], version[hi]))
    while not np.array_equal(parent[parent], parent):
        parent = parent[parent]
    return relabel(parent)


def test_compiled_linkage_is_the_plain_algorithm_on_sparse_graphs(rng):
    for people, cut in ((40, 0.5), (80, 0.8), (15, 0.3)):
        x = np.repeat(rng.normal(size=(people, 6)), 8, 0) + rng.normal(scale=0.3, size=(people * 8, 6))
        res = compare(x.astype(np.float32), 5, 0.0)
        g = Graph(len(x), np.repeat(np.arange(len(x)), 5), res.neighbors.ravel(), res.neighbor_dist.ravel())
        assert np.array_equal(average_linkage(x, g, cut), heap_linkage(x, g, cut))


def test_two_faces_of_one_photo_stay_two_people(rng):
    """Two faces of one photo, closer to each other than to anyone: each joins its own person."""
    a = rng.normal(0, 0.02, (6, 4))
    b = rng.normal(0, 0.02, (6, 4)) + np.eye(4)[0]
    pair = np.array([[0.47, 0, 0, 0], [0.53, 0, 0, 0]])  # 0.06 apart, about 0.47 from a and b
    x = np.concatenate([a, b, pair])
    g = full_graph(x.astype(np.float32))
    photo = np.concatenate([np.arange(100, 112), [7, 7]])
    labels = average_linkage(x, g, cut=0.5, photo=photo)
    assert len(set(labels[:6])) == 1 and len(set(labels[6:12])) == 1 and labels[0] != labels[6]
    assert labels[12] == labels[0] and labels[13] == labels[6]
    assert average_linkage(x, g, cut=0.5)[12] == average_linkage(x, g, cut=0.5)[13]  # else one


def test_a_group_photo_is_as_many_people(rng):
    """Four people, one face each in a group photo, all four faces in the middle."""
    centres = np.eye(4) * 0.6
    people = np.concatenate([c + rng.normal(0, 0.02, (5, 4)) for c in centres])
    group = np.full((4, 4), 0.25) + np.eye(4) * 0.2 + rng.normal(0, 0.01, (4, 4))  # 0.28 apart
    x = np.concatenate([people, group])
    g = full_graph(x.astype(np.float32))
    photo = np.concatenate([np.full(20, -1), [3, 3, 3, 3]])
    labels = average_linkage(x, g, cut=0.5, photo=photo)
    assert [labels[20 + p] == labels[5 * p] for p in range(4)] == [True] * 4
    assert len(set(labels.tolist())) == 4
    assert len(set(average_linkage(x, g, cut=0.5)[20:].tolist())) == 1  # else: one person


def test_one_photo_keeps_apart_what_grew_around_it():
    """a and b share a photo. c is close to both: it joins the closer, a; the other stays. Then
    {a, c} and {b, d} are close as groups yet never merge, whichever member holds the photo."""
    x = np.array([[0.0], [0.4], [0.15]])
    labels = average_linkage(x, full_graph(x.astype(np.float32)), 0.5, photo=np.array([1, 1, -1]))
    assert labels.tolist() == [0, 1, 0]
    x = np.array([[0.0], [0.1], [0.3], [0.4]])  # a c b d
    g = full_graph(x.astype(np.float32))
    assert average_linkage(x, g, 1.0).tolist() == [0, 0, 0, 0]
    for photo in ([1, -1, 1, -1], [-1, 2, 2, -1], [3, 5, 3, 5]):
        assert average_linkage(x, g, 1.0, photo=np.array(photo)).tolist() == [0, 0, 1, 1]
    # a, c share one photo, b, d another: c and b merge first, then neither a nor d may join
    assert average_linkage(x, g, 1.0, photo=np.array([1, 1, 2, 2])).tolist() == [0, 1, 1, 0]


def test_photos_with_seeds(rng):
    """Faces the user put together stay together even from one photo, and still take in other
    faces, but not another face of that photo; different seeds still never merge."""
    x = np.array([[0, 0], [0.1, 0], [0.05, 0.1], [0.05, -0.1], [0.05, -0.45], [5, 5]])
    seeds = np.array([1, 1, -1, -1, 2, -1])
    photo = np.array([9, 9, 4, 9, -1, 4])  # 5 is far from everyone: alone anyway
    g = full_graph(x.astype(np.float32))
    labels = average_linkage(x, g, 0.5, seeds=seeds, photo=photo)
    assert labels[0] == labels[1] == labels[2]  # the user's pair, and a face of another photo
    assert labels[4] != labels[0]
    assert labels[3] == labels[4]  # the other face of photo 9 joins the farther seed
    assert labels[5] not in labels[:5]
    assert average_linkage(x, g, 0.5, seeds=seeds)[3] == labels[0]  # the nearer, without photos


def test_without_photo_conflicts_the_groups_are_the_same(rng):
    """photo=None is the linkage as before (the plain algorithm, heap_linkage); photos that
    never meet in a group (none, one face each, or faces too far apart to merge) change
    nothing."""
    for people, cut in ((30, 0.5), (15, 0.8)):
        x = np.repeat(rng.normal(size=(people, 6)), 6, 0)
        x += rng.normal(scale=0.3, size=x.shape)
        g = knn_graph(x, 5)
        plain = average_linkage(x, g, cut)
        assert np.array_equal(plain, heap_linkage(x, g, cut))
        n = len(x)
        far = np.arange(n) % 6 == 0  # each person's first face, with the next person's
        shared = np.where(far, (np.cumsum(far) - 1) // 2, -1)
        assert len(set(plain[far].tolist())) == far.sum()  # (those are in different groups)
        for photo in (np.full(n, -1), np.arange(n), shared):
            assert np.array_equal(average_linkage(x, g, cut, photo=photo), plain)


def knn_graph(x, k):
    res = compare(x.astype(np.float32), k, 0.0)
    return Graph(len(x), np.repeat(np.arange(len(x)), k), res.neighbors.ravel(),
                 res.neighbor_dist.ravel())


def constrained_reference(x, cut, photo, seeds, edges=None):
    """The rule, slowly: groups start as seeds and singletons; among pairs of groups joined by
    an edge (any pair when edges is None) that share no photo and hold no two seeds, the one
    with the smallest mean squared cross distance merges while its root is under the cut."""
    n = len(x)
    groups, by_seed = [], {}
    for i in range(n):
        if seeds[i] >= 0 and seeds[i] in by_seed:
            by_seed[seeds[i]].append(i)
        else:
            groups.append([i])
            if seeds[i] >= 0:
                by_seed[seeds[i]] = groups[-1]
    linked = None if edges is None else {(a, b) for a, b in edges} | {(b, a) for a, b in edges}

    def allowed(ga, gb):
        if linked is not None and not any((a, b) in linked for a in ga for b in gb):
            return False
        sa, sb = {seeds[a] for a in ga} - {-1}, {seeds[b] for b in gb} - {-1}
        if sa and sb and sa != sb:
            return False
        return not ({photo[a] for a in ga} - {-1}) & ({photo[b] for b in gb} - {-1})

    while True:
        pairs = [(np.mean([((x[a] - x[b]) ** 2).sum() for a in ga for b in gb]), i, j)
                 for i, ga in enumerate(groups) for j, gb in enumerate(groups)
                 if i < j and allowed(ga, gb)]
        if not pairs or min(pairs)[0] >= cut * cut:
            break
        _, i, j = min(pairs)
        groups[i] = groups[i] + groups.pop(j)
    labels = np.zeros(n, np.int64)
    for g, members in enumerate(groups):
        labels[members] = g
    return relabel(labels)


def test_photo_constraint_matches_the_slow_rule(rng):
    for trial in range(16):
        n = 24
        x = rng.normal(size=(n, 3))
        photo = np.where(rng.random(n) < 0.25, -1, rng.integers(0, 9, n))
        seeds = np.where(rng.random(n) < 0.2, rng.integers(0, 3, n), -1)
        if trial % 2:
            seeds[:] = -1
        median = float(np.median(np.linalg.norm(x[:, None] - x[None], axis=-1)))
        cut = median * (0.6 if trial < 8 else 1.2)
        if trial % 4 < 2:
            g, edges = full_graph(x.astype(np.float32)), None
        else:  # each point's 3 nearest: only groups joined by an edge are compared
            g = knn_graph(x, 3)
            edges = list(zip(g.i.tolist(), g.j.tolist()))
        ours = average_linkage(x, g, cut, seeds=seeds, photo=photo)
        assert np.array_equal(ours, constrained_reference(x, cut, photo, seeds, edges)), trial


def test_single_faces_need_the_single_cut_groups_the_cut():
    """Two single faces 0.45 apart stay two under single_cut 0.42 (cut 0.54); two pairs of
    faces whose cross distances are about 0.45 join: a mean over four pairs says more than one
    pair. Without a single cut, both join."""
    pair = np.array([[0.0, 0.0], [0.45, 0.0]])
    assert len(set(average_linkage(pair, full_graph(pair.astype(np.float32)), 0.54).tolist())) == 1
    assert len(set(average_linkage(pair, full_graph(pair.astype(np.float32)), 0.54,
                                   single_cut=0.42).tolist())) == 2
    # two tight pairs (0.05 within), their centres 0.45 apart
    quad = np.array([[0.0, 0.025], [0.0, -0.025], [0.45, 0.025], [0.45, -0.025]])
    labels = average_linkage(quad, full_graph(quad.astype(np.float32)), 0.54, single_cut=0.42)
    assert len(set(labels.tolist())) == 1


def test_linkage_with_a_single_cut_matches_its_definition(rng):
    for _ in range(4):
        x = rng.normal(size=(24, 3))
        cut = float(np.median(np.linalg.norm(x[:, None] - x[None], axis=-1))) / 2
        ours = average_linkage(x, full_graph(x.astype(np.float32)), cut, single_cut=0.8 * cut)
        assert bcubed(ours, reference_linkage(x, cut, 0.8 * cut)) == (1.0, 1.0, 1.0)


def linkage_by_matrix(x, cut, single_cut=None):
    """reference_linkage for hundreds of vectors: every pair of groups' mean squared distance
    from their sums at each merge (numpy), the smallest (ties: the lowest pair) merging."""
    k = 0.0 if single_cut is None else (cut * cut - single_cut * single_cut) / (cut * cut)
    x = x.astype(np.float64)
    sums, squares, size = x.copy(), (x * x).sum(1), np.ones(len(x))
    members = [[i] for i in range(len(x))]
    while len(members) > 1:
        mean = (squares / size)[:, None] + (squares / size)[None] - 2 * (sums @ sums.T) / np.outer(size, size)
        weight = np.sqrt(np.outer(size, size))
        drawn = (weight * mean + k * 2 * cut * cut) / (weight + k)
        np.fill_diagonal(drawn, np.inf)
        a, b = np.unravel_index(np.argmin(drawn), drawn.shape)
        if drawn[a, b] >= cut * cut:
            break
        a, b = min(a, b), max(a, b)
        sums[a] += sums[b]
        squares[a] += squares[b]
        size[a] += size[b]
        members[a] += members.pop(b)
        sums, squares, size = np.delete(sums, b, 0), np.delete(squares, b), np.delete(size, b)
    labels = np.zeros(len(x), np.int64)
    for g, faces in enumerate(members):
        labels[faces] = g
    return relabel(labels)


def test_large_groups_weigh_their_candidates_and_the_rest_by_a_floor(rng):
    """Groups with cluster.LARGE neighbours or more keep candidates (and a floor under the
    rest) instead of walking their list after each merge. Six people of 400 faces, each face
    linked to its 12 nearest: under a single cut the people grow large first and then take in
    their single faces one by one (hundreds of merges by candidates), and the groups are
    heap_linkage's, which weighs every neighbour after every merge."""
    x = np.repeat(rng.normal(size=(6, 8)), 400, 0) + rng.normal(scale=0.4, size=(2400, 8))
    g = knn_graph(x, 12)
    for cut, single_cut in ((2.0, 1.8), (1.5, 1.35), (2.0, None)):
        ours = average_linkage(x, g, cut, single_cut=single_cut)
        assert 6 <= len(set(ours.tolist())) < 200
        assert np.array_equal(ours, heap_linkage(x, g, cut, single_cut)), (cut, single_cut)


def test_large_groups_on_a_complete_graph_are_the_definition(rng):
    """A complete graph on 400 vectors: every list is over cluster.LARGE from the start, more
    groups than there are candidate slots for (those walk their lists), and the groups are
    those of the definition, with and without a single cut."""
    from facedist import cluster

    x = np.repeat(rng.normal(size=(12, 8)), 34, 0)[:400] + rng.normal(scale=0.35, size=(400, 8))
    assert len(x) - 1 > cluster.LARGE
    g = full_graph(x.astype(np.float32))
    for cut, single_cut in ((1.5, None), (1.6, 1.4), (2.0, 1.8)):
        ours = average_linkage(x, g, cut, single_cut=single_cut)
        assert 12 <= len(set(ours.tolist())) < 100
        assert np.array_equal(ours, linkage_by_matrix(x, cut, single_cut)), (cut, single_cut)


def test_group_sums_are_those_of_every_member_whatever_the_blocks(rng):
    from facedist.cluster import group_sums

    x = rng.normal(size=(500, 6)).astype(np.float32)
    rows = rng.permutation(500)[:400]
    group = rng.integers(0, 37, 400)
    sums, squares, size = group_sums(x, rows, group, 40, block=64)  # groups across blocks
    want = np.zeros((40, 6))
    np.add.at(want, group, x[rows].astype(np.float64))
    assert np.allclose(sums, want, rtol=0, atol=1e-9)
    assert np.allclose(squares, np.bincount(group, weights=(x[rows].astype(np.float64) ** 2).sum(1),
                                            minlength=40), rtol=0, atol=1e-9)
    assert size.tolist() == np.bincount(group, minlength=40).tolist() and size[37:].sum() == 0
