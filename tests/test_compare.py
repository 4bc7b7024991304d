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


def clustered(rng, people=200, per=10, dim=32, spread=0.15):
    centres = rng.normal(size=(people, dim))
    x = np.repeat(centres, per, 0) + rng.normal(scale=spread, size=(people * per, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_approximate_neighbours_are_near_exact(rng):
    from facedist.compare import hnsw_knn

    x = clustered(rng)
    near, dist = hnsw_knn(x, 10)
    d = brute(x)
    np.fill_diagonal(d, np.inf)
    exact_kth = np.sort(d, 1)[:, 9]
    assert np.mean(dist[:, 9] <= exact_kth * 1.01 + 1e-6) >= 0.98
    assert (near != np.arange(len(x))[:, None]).all()  # never a face's own neighbour
    assert np.all(np.diff(dist, axis=1) >= 0)
    assert np.allclose(dist, np.take_along_axis(d, near, 1), atol=1e-4)  # true distances


def test_approximate_pairs_are_neighbour_pairs_under_the_threshold(rng):
    x = clustered(rng)
    res = compare(x, 10, 0.5, exact=False)
    assert res.approximate and res.matrix is None
    edges = {(min(i, int(j)), max(i, int(j))) for i in range(len(x)) for j, dd in
             zip(res.neighbors[i], res.neighbor_dist[i]) if dd < 0.5}
    assert {tuple(p) for p in res.pairs.tolist()} == edges
    assert (res.pairs[:, 0] < res.pairs[:, 1]).all() and np.all(np.diff(res.pair_dist) >= 0)


def test_max_pairs_keeps_the_closest_and_counts_the_rest(rng, monkeypatch):
    import facedist.compare as c

    x = clustered(rng, people=30)
    full = compare(x, 5, 0.6)
    monkeypatch.setattr(c, "BLOCK_BYTES", 4 * len(x) * 7)  # many blocks: pruned as it goes
    capped = compare(x, 5, 0.6, max_pairs=100)
    assert capped.pairs_found == full.pairs_found == len(full.pairs) > 300
    assert len(capped.pairs) == 100
    assert np.allclose(capped.pair_dist, full.pair_dist[:100])
    assert np.array_equal(capped.neighbors, full.neighbors)


def test_exact_by_default_below_the_approximate_size(rng, monkeypatch):
    import facedist.compare as c

    x = clustered(rng, people=20)
    assert not compare(x, 5, 0.5).approximate
    monkeypatch.setattr(c, "APPROX_FROM", 100)
    assert compare(x, 5, 0.5).approximate and not compare(x, 5, 0.5, exact=True).approximate


def test_scale_settings_are_checked_where_they_enter():
    import subprocess
    import sys

    import pytest

    from facedist.config import Settings

    s = Settings().update({"exact-neighbors": True, "max-pairs": 0})
    assert s.exact_neighbors is True and s.max_pairs == 0
    with pytest.raises(ValueError, match="max-pairs takes a number of pairs"):
        Settings().update({"max_pairs": -1})
    with pytest.raises(ValueError, match="exact-neighbors takes true or false"):
        Settings().update({"exact_neighbors": "yes"})
    bad = subprocess.run([sys.executable, "-m", "facedist.cli", "run", "/nonexistent", "--out",
                          "/tmp/x-out", "--max-pairs", "-3"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "facedist: max-pairs takes a number of pairs, 0 or more, not -3"], bad.stderr
