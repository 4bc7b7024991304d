import numpy as np

from facedist.cluster import Graph, average_linkage, bcubed, chinese_whispers, core_points, relabel
from facedist.compare import compare


def full_graph(x):
    res = compare(x, 0, np.inf)
    return Graph(len(x), res.pairs[:, 0], res.pairs[:, 1], res.pair_dist)


def reference_linkage(x, cut):
    """The definition, all pairs, no graph: merge the two groups with the smallest mean squared
    cross distance while its root is under the cut."""
    groups = [[i] for i in range(len(x))]
    while len(groups) > 1:
        best = min(((np.mean([((x[a] - x[b]) ** 2).sum() for a in ga for b in gb]), i, j)
                    for i, ga in enumerate(groups) for j, gb in enumerate(groups) if i < j))
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


def test_deterministic_whatever_the_run(rng):
    x = rng.normal(size=(80, 6))
    g = full_graph(x.astype(np.float32))
    assert np.array_equal(average_linkage(x, g, 2.0), average_linkage(x, g, 2.0))


def test_other_methods_and_bcubed():
    g = Graph(5, np.array([0, 1, 3]), np.array([1, 2, 4]), np.array([0.1, 0.1, 0.1], np.float32))
    assert chinese_whispers(g).tolist() == [0, 0, 0, 1, 1]
    assert core_points(g, 0.5, min_faces=3).tolist() == [0, 0, 0, 1, 2]
    assert relabel(np.array([7, 3, 7, 9])).tolist() == [0, 1, 0, 2]
    p, r, f = bcubed(np.array([0, 0, 1, 1]), np.array(["a", "a", "a", "b"]))
    assert (p, r) == (0.75, (2 / 3 + 2 / 3 + 1 / 3 + 1) / 4)
    assert bcubed(np.zeros(4), np.array(list("abcd")))[0] == 0.25  # one chained group


def heap_linkage(x, graph, cut):
    """The same algorithm in plain Python (one merge at a time from a heap, neighbours as sets):
    the compiled loop must give exactly its groups."""
    import heapq

    n = len(x)
    sums, squares, size = x.astype(np.float64).copy(), (x.astype(np.float64) ** 2).sum(1), np.ones(n)
    parent = np.arange(n)
    adj = [set() for _ in range(n)]
    for a, b in zip(graph.i.tolist(), graph.j.tolist()):
        if a != b:
            adj[a].add(b)
            adj[b].add(a)

    def ms(a, b):
        return squares[a] / size[a] + squares[b] / size[b] - 2 * sums[a] @ sums[b] / (size[a] * size[b])

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
