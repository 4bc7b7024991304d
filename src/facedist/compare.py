"""compare: Euclidean distances between all faces, blockwise on BLAS.

One pass over row blocks computes ||a - b|| = sqrt(|a|^2 + |b|^2 - 2 a.b) with a matrix product,
and from each block fills the full matrix (optional, memory-mapped .npy when large), the k nearest
neighbours of each face, and the pairs under a threshold. Nothing is ever looped over in Python
per pair. People (same-person groups) are made in cluster.py / people.py; `nearest_other`
finds each face's closest face of another person (look-alikes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# Row blocks of this many faces keep the block (rows x N float32) at a few hundred MB at most.
BLOCK_BYTES = 256 << 20


@dataclass
class Comparison:
    neighbors: np.ndarray  # [N, k] face indices, nearest first
    neighbor_dist: np.ndarray  # [N, k] float32
    pairs: np.ndarray  # [P, 2] i < j with distance under the threshold
    pair_dist: np.ndarray  # [P] float32
    matrix: np.ndarray | None  # [N, N] float32 (a memmap when written to disk), or None


def distance_block(rows: np.ndarray, cols: np.ndarray, row_sq: np.ndarray,
                   col_sq: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(rows), len(cols)] in float32 via one matrix product."""
    d2 = rows @ cols.T
    d2 *= -2.0
    d2 += row_sq[:, None]
    d2 += col_sq[None, :]
    np.maximum(d2, 0.0, out=d2)  # rounding can make near-identical pairs slightly negative
    return np.sqrt(d2, out=d2)


def compare(embeddings: np.ndarray, k: int, threshold: float, matrix_path: Path | None = None,
            in_memory_limit: int = 4096, progress: Callable[[int], None] | None = None) -> Comparison:
    """Distances of every face to every other. With `matrix_path`, the full matrix is written
    there as float32 .npy (memory-mapped above `in_memory_limit` faces)."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    matrix = None
    if matrix_path is not None:
        if n > in_memory_limit:  # written beside, renamed when whole
            partial = matrix_path.with_name(matrix_path.name + ".tmp")
            matrix = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, n))
            with open(partial, "r+b") as fh:  # disk full is ENOSPC here, not SIGBUS mid-write
                try:
                    os.posix_fallocate(fh.fileno(), 0, os.path.getsize(partial))
                except OSError:
                    del matrix
                    partial.unlink(missing_ok=True)
                    raise
        else:
            matrix = np.empty((n, n), np.float32)
    try:
        return _compare(x, k, threshold, matrix, matrix_path, progress)
    except BaseException:
        if isinstance(matrix, np.memmap):
            partial.unlink(missing_ok=True)
        raise


def _compare(x, k, threshold, matrix, matrix_path, progress) -> Comparison:
    n = len(x)
    k = max(0, min(k, n - 1))
    sq = np.einsum("ij,ij->i", x, x)
    neighbors = np.zeros((n, k), np.int64)
    neighbor_dist = np.zeros((n, k), np.float32)
    pair_i, pair_j, pair_d = [], [], []
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
        if progress:
            progress(stop - start)
    if isinstance(matrix, np.memmap):
        matrix.flush()
        os.replace(matrix.filename, matrix_path)
    elif matrix is not None and matrix_path is not None:
        from .report import replacing

        with replacing(matrix_path, "wb") as fh:
            np.save(fh, matrix)
    pairs = (np.stack([np.concatenate(pair_i), np.concatenate(pair_j)], 1) if pair_i
             else np.zeros((0, 2), np.int64))
    pair_dist = np.concatenate(pair_d).astype(np.float32) if pair_d else np.zeros(0, np.float32)
    order = np.argsort(pair_dist, kind="stable")
    return Comparison(neighbors, neighbor_dist, pairs[order], pair_dist[order], matrix)


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
