import numpy as np

from facedist.compare import compare, groups, nearest


def brute(x):
    return np.sqrt(((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1))


def test_matrix_neighbours_and_pairs_match_brute_force(tmp_path, rng, monkeypatch):
    import facedist.compare as c

    monkeypatch.setattr(c, "BLOCK_BYTES", 4 * 57 * 7)  # force many small row blocks
    x = rng.normal(size=(57, 16)).astype(np.float32)
    d = brute(x)
    res = compare(x, k=5, threshold=5.0, matrix_path=tmp_path / "d.npy", in_memory_limit=10)
    m = np.load(tmp_path / "d.npy")
    assert m.dtype == np.float32 and np.allclose(m, d, atol=1e-4)
    assert np.all(np.diag(m) == 0)
    dd = d + np.diag(np.full(57, np.inf))
    assert np.array_equal(res.neighbors, np.argsort(dd, 1)[:, :5])
    ii, jj = np.nonzero(np.triu(d < 5.0, 1))
    assert {tuple(p) for p in res.pairs.tolist()} == set(zip(ii.tolist(), jj.tolist()))
    assert np.all(np.diff(res.pair_dist) >= 0)


def test_small_inputs():
    res = compare(np.zeros((1, 4), np.float32), k=10, threshold=1.0)
    assert res.neighbors.shape == (1, 0) and len(res.pairs) == 0
    res = compare(np.zeros((0, 4), np.float32), k=10, threshold=1.0)
    assert res.neighbors.shape == (0, 0)


def test_nearest_queries(rng):
    x = rng.normal(size=(30, 8)).astype(np.float32)
    idx, dist = nearest(x[[3, 7]], x, 4)
    assert idx[:, 0].tolist() == [3, 7] and np.allclose(dist[:, 0], 0, atol=1e-3)


def test_groups_are_connected_components():
    labels = groups(6, np.array([[0, 2], [2, 4], [1, 5]]))
    assert labels[0] == labels[2] == labels[4]
    assert labels[1] == labels[5] != labels[0]
    assert len(set(labels.tolist())) == 3
