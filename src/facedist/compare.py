"""compare: Euclidean distances between all faces: exact and blockwise on BLAS, or approximate
(HNSW, FAISS) from APPROX_FROM faces on.

Exact: one pass over row blocks computes ||a - b|| = sqrt(|a|^2 + |b|^2 - 2 a.b) with a matrix
product, and from each block fills the full matrix (optional, memory-mapped .npy when large),
the k nearest neighbours of each face, and the pairs under a threshold. Nothing is ever looped
over in Python per pair. It costs N^2: about 28 min for a million faces on 2 cores.

Approximate: an HNSW graph (FAISS) finds each face's k nearest in O(N log N); the pairs are
then those among each face's k nearest under the threshold (a person with 5,000 faces has 12.5
million pairs under it: listing them all helps nobody). bench/results-scale measures how close
it comes to exact search. `exact=True` (--exact-neighbors) keeps exact search at any size.

Either way the pairs list holds at most `max_pairs`, the closest. People (same-person groups)
are made in cluster.py / people.py from the neighbours; `nearest_other` finds each face's
closest face of another person (look-alikes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .atomic import replaced, replacing

# Row blocks of this many faces keep the block (rows x N float32) at a few hundred MB at most.
BLOCK_BYTES = 256 << 20
# From this many faces on, neighbours are approximate by default (bench/results-scale: where
# HNSW's time drops under exact search's, at the quality the bench shows).
APPROX_FROM = 200_000
# efSearch: the share of a million faces whose 10th neighbour comes within 1% of exact was
# 92.8% at 64, 96.9% at 128, 98.4% at 192, 98.95% at 256 (search 102 s, 200 s, 313 s, 379 s):
# 192 is the least that clears 98%, and keeps a million faces within 15 min on 2 cores.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 192
MAX_PAIRS = 1_000_000  # pairs listed at most (--max-pairs)


@dataclass
class Comparison:
    neighbors: np.ndarray  # [N, k] face indices, nearest first
    neighbor_dist: np.ndarray  # [N, k] float32
    pairs: np.ndarray  # [P, 2] i < j with distance under the threshold
    pair_dist: np.ndarray  # [P] float32
    matrix: np.ndarray | None  # [N, N] float32 (a memmap when written to disk), or None
    pairs_found: int = 0  # pairs under the threshold before the max_pairs cap
    approximate: bool = False  # neighbours and pairs from the HNSW search


def distance_block(rows: np.ndarray, cols: np.ndarray, row_sq: np.ndarray,
                   col_sq: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(rows), len(cols)] in float32 via one matrix product."""
    d2 = rows @ cols.T
    d2 *= -2.0
    d2 += row_sq[:, None]
    d2 += col_sq[None, :]
    np.maximum(d2, 0.0, out=d2)  # rounding can make near-identical pairs slightly negative
    return np.sqrt(d2, out=d2)


def is_approximate(n: int, exact: bool | None) -> bool:
    """Whether n faces are compared approximately (exact: None = by size, True, False)."""
    return exact is False or (exact is None and n >= APPROX_FROM)


def compare(embeddings: np.ndarray, k: int, threshold: float, matrix_path: Path | None = None,
            in_memory_limit: int = 4096, progress: Callable[[int], None] | None = None,
            exact: bool | None = None, max_pairs: int = MAX_PAIRS) -> Comparison:
    """Distances of every face to every other. With `matrix_path`, the full matrix is written
    there as float32 .npy (memory-mapped above `in_memory_limit` faces; exact search only)."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    if is_approximate(n, exact) and n > 1 and k > 0:
        near, dist = hnsw_knn(x, min(k, n - 1), progress)
        i = np.repeat(np.arange(n), near.shape[1])
        under = dist.ravel() < threshold
        pairs, pair_dist = _unique_pairs(i[under], near.ravel()[under], dist.ravel()[under], n)
        found = len(pair_dist)
        pairs, pair_dist = _closest(pairs, pair_dist, max_pairs)
        return Comparison(near, dist, pairs, pair_dist, None, found, approximate=True)
    if matrix_path is not None and n > in_memory_limit:  # written beside, renamed when whole
        with replaced(matrix_path) as partial:
            matrix = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, n))
            with open(partial, "r+b") as fh:  # disk full is ENOSPC here, not SIGBUS mid-write
                os.posix_fallocate(fh.fileno(), 0, os.path.getsize(partial))
            result = _compare(x, k, threshold, matrix, progress, max_pairs)
            matrix.flush()
            del matrix
            return result
    matrix = np.empty((n, n), np.float32) if matrix_path is not None else None
    result = _compare(x, k, threshold, matrix, progress, max_pairs)
    if matrix is not None:
        with replacing(matrix_path, "wb") as fh:
            np.save(fh, matrix)
    return result


def _compare(x, k, threshold, matrix, progress, max_pairs=MAX_PAIRS) -> Comparison:
    n = len(x)
    k = max(0, min(k, n - 1))
    sq = np.einsum("ij,ij->i", x, x)
    neighbors = np.zeros((n, k), np.int64)
    neighbor_dist = np.zeros((n, k), np.float32)
    pair_i, pair_j, pair_d = [], [], []
    found = kept = 0
    step = max(1, min(n, BLOCK_BYTES // max(1, 4 * n)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = distance_block(x[start:stop], x, sq[start:stop], sq)
        rows = np.arange(stop - start)
        block[rows, rows + start] = 0.0  # a face is exactly at distance 0 from itself
        if matrix is not None:
            matrix[start:stop] = block
        if k:
            block[rows, rows + start] = np.inf  # ... but is not its own neighbour
            part = np.argpartition(block, k - 1, axis=1)[:, :k] if k < n else np.argsort(block, 1)
            pd = np.take_along_axis(block, part, 1)
            order = np.argsort(pd, axis=1, kind="stable")
            neighbors[start:stop] = np.take_along_axis(part, order, 1)
            neighbor_dist[start:stop] = np.take_along_axis(pd, order, 1)
            block[rows, rows + start] = 0.0
        ii, jj = np.nonzero(block < threshold)
        ii += start
        upper = jj > ii
        pair_i.append(ii[upper])
        pair_j.append(jj[upper])
        pair_d.append(block[ii[upper] - start, jj[upper]])
        found += int(upper.sum())
        kept += int(upper.sum())
        if kept > 2 * max_pairs:  # hold at most twice the cap: the closest so far
            p, d = _closest(np.stack([np.concatenate(pair_i), np.concatenate(pair_j)], 1),
                            np.concatenate(pair_d), max_pairs)
            pair_i, pair_j, pair_d, kept = [p[:, 0]], [p[:, 1]], [d], len(d)
        if progress:
            progress(stop - start)
    pairs = (np.stack([np.concatenate(pair_i), np.concatenate(pair_j)], 1) if pair_i
             else np.zeros((0, 2), np.int64))
    pair_dist = np.concatenate(pair_d).astype(np.float32) if pair_d else np.zeros(0, np.float32)
    pairs, pair_dist = _closest(pairs, pair_dist, max_pairs)
    return Comparison(neighbors, neighbor_dist, pairs, pair_dist, matrix, found)


def _closest(pairs: np.ndarray, dist: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n closest pairs, closest first (ties in the order given)."""
    if len(dist) > n:
        keep = np.sort(np.argpartition(dist, n - 1)[:n]) if n else np.zeros(0, np.int64)
        pairs, dist = pairs[keep], dist[keep]
    order = np.argsort(dist, kind="stable")
    return pairs[order], dist[order].astype(np.float32)


def _unique_pairs(i, j, d, n) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) once each from directed neighbour edges."""
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    key, first = np.unique(lo * n + hi, return_index=True)
    return np.stack([key // n, key % n], 1), d[first]


def hnsw_knn(x: np.ndarray, k: int, progress: Callable[[int], None] | None = None,
             ef_search: int = HNSW_EF_SEARCH) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows by an HNSW graph (FAISS): (indices, distances), nearest
    first. Approximate: bench/results-scale measures how close to exact."""
    import faiss

    n, d = x.shape
    index = faiss.IndexHNSWFlat(d, HNSW_M)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    step = 50_000
    for s in range(0, n, step):
        index.add(x[s:s + step])
    index.hnsw.efSearch = max(ef_search, k + 1)
    near = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    for s in range(0, n, step):
        q = x[s:s + step]
        d2, idx = index.search(q, k + 1)
        d2[idx == np.arange(s, s + len(q))[:, None]] = np.inf  # a face is not its own neighbour
        d2[idx < 0] = np.inf
        order = np.argsort(d2, axis=1, kind="stable")[:, :k]
        near[s:s + len(q)] = np.take_along_axis(idx, order, 1)
        dist[s:s + len(q)] = np.sqrt(np.maximum(np.take_along_axis(d2, order, 1), 0))
        if progress:
            progress(len(q))
    return near, dist


def knn(x: np.ndarray, k: int, exact: bool | None = None,
        ef_search: int = HNSW_EF_SEARCH) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows, exact or approximate by size (see `compare`)."""
    if is_approximate(len(x), exact) and len(x) > 1 and k > 0:
        return hnsw_knn(np.ascontiguousarray(x, dtype=np.float32), min(k, len(x) - 1),
                        ef_search=ef_search)
    res = compare(x, k, 0.0, exact=exact, max_pairs=0)
    return res.neighbors, res.neighbor_dist


def nearest(queries: np.ndarray, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query vector, the k nearest stored embeddings: (indices, distances), nearest first."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(x))
    d = distance_block(q, x, np.einsum("ij,ij->i", q, q), np.einsum("ij,ij->i", x, x))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, 1)


def nearest_other(embeddings: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each face, the nearest face of a different person: (index, distance); -1 and inf
    where every face is one person's."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    idx = np.full(n, -1, np.int64)
    dist = np.full(n, np.inf, np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    step = max(1, min(n, BLOCK_BYTES // max(1, 4 * n)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = distance_block(x[start:stop], x, sq[start:stop], sq)
        block[person[start:stop, None] == person[None, :]] = np.inf
        j = np.argmin(block, axis=1)
        d = block[np.arange(stop - start), j]
        ok = np.isfinite(d)
        idx[start:stop][ok] = j[ok]
        dist[start:stop][ok] = d[ok]
    return idx, dist
