import numpy as np

from facedist.compare import compare, nearest, nearest_other


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


def test_nearest_other_skips_the_same_person(rng):
    x = rng.normal(size=(40, 8)).astype(np.float32)
    person = rng.integers(0, 5, 40)
    idx, dist = nearest_other(x, person)
    d = brute(x)
    d[person[:, None] == person[None, :]] = np.inf
    assert np.array_equal(idx, d.argmin(1)) and np.allclose(dist, d.min(1), atol=1e-4)
    idx, dist = nearest_other(x, np.zeros(40, np.int64))  # everybody one person
    assert (idx == -1).all() and np.isinf(dist).all()
