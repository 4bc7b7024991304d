import numpy as np

from facedist.cluster import Graph, average_linkage, bcubed, chinese_whispers, core_points, relabel
from facedist.compare import compare


def full_graph(x):
    res = compare(x, 0, np.inf)
    return Graph(len(x), res.pairs[:, 0], res.pairs[:, 1], res.pair_dist)


def test_average_linkage_matches_exact_average_linkage(rng):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    for _ in range(4):
        x = rng.normal(size=(50, 3)).astype(np.float32)
        d = pdist(x)
        cut = float(np.median(d)) / 2
        ref = fcluster(linkage(d, "average"), cut, "distance")
        ours = average_linkage(full_graph(x), cut, radius=1e9)
        assert bcubed(ours, ref) == (1.0, 1.0, 1.0)


def test_a_chain_of_close_pairs_does_not_make_one_person():
    """Points 0.3 apart on a line: every neighbour is under the cut, the ends are far apart.
    Connected components would chain all 30 into one group."""
    x = np.stack([np.arange(30) * 0.3, np.zeros(30)], 1).astype(np.float32)
    labels = average_linkage(full_graph(x), cut=0.5, radius=1e9)
    assert len(set(labels.tolist())) >= 10
    assert max(np.bincount(labels)) <= 3


def test_two_blobs_and_a_bridge(rng):
    a = rng.normal(0, 0.05, (20, 8))
    b = rng.normal(0, 0.05, (20, 8)) + np.eye(8)[0] * 1.0
    bridge = np.linspace(0, 1, 7)[1:-1, None] * np.eye(8)[0]  # stepping stones between them
    x = np.concatenate([a, b, bridge]).astype(np.float32)
    labels = average_linkage(full_graph(x), cut=0.4, radius=0.6)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:40])) == 1
    assert labels[0] != labels[20]


def test_seeds_start_together_and_never_merge(rng):
    x = np.concatenate([rng.normal(0, 0.01, (6, 4)), [[5, 5, 5, 5]]]).astype(np.float32)
    seeds = np.array([1, 1, 1, 2, 2, -1, 3])  # 1 and 2 are close but two known people
    labels = average_linkage(full_graph(x), cut=0.5, radius=1.0, seeds=seeds)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]
    assert labels[5] in (labels[0], labels[3])  # the free face joins one of them
    assert labels[6] not in labels[:6]  # a seed far from everyone stays, with its own group


def test_graph_with_missing_pairs_counts_them_as_radius():
    # 0-1 close, 2 close to 1 only; the missing pair 0-2 counts as radius 1.0: mean 0.6 > 0.5
    g = Graph(3, np.array([0, 1]), np.array([1, 2]), np.array([0.1, 0.2], np.float32))
    assert average_linkage(g, 0.5, radius=1.0).tolist() == [0, 0, 1]
    assert average_linkage(g, 0.5, radius=0.5).tolist() == [0, 0, 0]


def test_deterministic_whatever_the_run(rng):
    x = rng.normal(size=(80, 6)).astype(np.float32)
    g = full_graph(x)
    assert np.array_equal(average_linkage(g, 2.0, 3.0), average_linkage(g, 2.0, 3.0))


def test_other_methods_and_bcubed():
    g = Graph(5, np.array([0, 1, 3]), np.array([1, 2, 4]), np.array([0.1, 0.1, 0.1], np.float32))
    assert chinese_whispers(g).tolist() == [0, 0, 0, 1, 1]
    assert core_points(g, 0.5, min_faces=3).tolist() == [0, 0, 0, 1, 2]
    assert relabel(np.array([7, 3, 7, 9])).tolist() == [0, 1, 0, 2]
    p, r, f = bcubed(np.array([0, 0, 1, 1]), np.array(["a", "a", "a", "b"]))
    assert (p, r) == (0.75, (2 / 3 + 2 / 3 + 1 / 3 + 1) / 4)
    assert bcubed(np.zeros(4), np.array(list("abcd")))[0] == 0.25  # one chained group
