"""Block sparsity of GRU-A's recurrent matrix (16x1 blocks, as in LPCNet) for the compiled sample loop.

A decoder trained with LPCNet's sparsification has a recurrent matrix W_hh (3N x N) whose 16x1 blocks
(16 consecutive output rows of one input column) are either all zero or kept.  At load the runtime measures
the fraction of non-zero blocks (:func:`block_density`); at or below :data:`SPARSE_MAX_DENSITY` it packs the
kept blocks (:func:`pack_block_sparse`) and the C loop runs a block-sparse product (per 16-row output block,
16 weights times ``h[col]`` for each kept column), else the dense product.  Both accumulate every row over
its columns in the same order with the same multiply-add, so on the same weights they give the same GRU-A
output bit for bit (a skipped block only ever added exact zeros).

:func:`prune_gru_a` makes such a matrix from a shipped dense decoder, keeping the largest-magnitude 16x1
blocks of each gate matrix and its diagonal: a SPEED TEST on artificially pruned weights (what a sparse
decoder would cost), never a decoder to listen to (``pnsc bench decoder --prune-gru-a DENSITY``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

SPARSE_BLOCK = 16  # rows per block (the C kernel's SPB)
# At or below this fraction of non-zero 16x1 blocks the block-sparse product is used.  Measured on one AVX-512 core
# (fp32, whole decoder, cpu RTF sparse / dense on the same pruned weights): S 0.30: 0.75, 0.40: 0.87, 0.45: 0.92,
# 0.50: 0.97; L 0.30: 0.64, 0.40: 0.84, 0.45: 0.91, 0.50: 1.05 (the dense loop reads float16 weights, the sparse
# one float32 plus an index).  0.4 keeps a clear win on both sizes; trained sparse decoders sit at 0.1-0.2.
SPARSE_MAX_DENSITY = 0.4
GRU_A_LAYOUTS = ("auto", "dense", "sparse")


def _check(w_hh: np.ndarray) -> tuple[int, int]:
    w_hh = np.asarray(w_hh)
    if w_hh.ndim != 2 or w_hh.shape[0] != 3 * w_hh.shape[1]:
        raise ValueError(f"GRU-A recurrent matrix must be (3N, N), got {w_hh.shape}")
    n = w_hh.shape[1]
    if n % SPARSE_BLOCK:
        raise ValueError(f"16x1 block sparsity needs a GRU-A size divisible by {SPARSE_BLOCK}, got {n}")
    return 3 * n // SPARSE_BLOCK, n


def block_mask(w_hh: np.ndarray) -> np.ndarray:
    """(3N/16, N) bool: which 16x1 blocks of W_hh hold a non-zero value."""
    blocks, n = _check(w_hh)
    return np.asarray(w_hh).reshape(blocks, SPARSE_BLOCK, n).any(axis=1)


def block_density(w_hh: np.ndarray) -> float:
    """Fraction of W_hh's 16x1 blocks that hold a non-zero value (1.0 for a dense matrix)."""
    return float(block_mask(w_hh).mean())


def pack_block_sparse(w_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W_hh (3N, N) -> (idx int32, w float32) for the C kernel: per 16-row output block in order, ``idx`` holds
    the count of its kept columns and then those columns (ascending); ``w`` their 16 weights each, in order."""
    blocks, n = _check(w_hh)
    w = np.asarray(w_hh, np.float32).reshape(blocks, SPARSE_BLOCK, n)
    mask = block_mask(w_hh)
    idx: list[np.ndarray] = []
    for b in range(blocks):
        cols = np.flatnonzero(mask[b]).astype(np.int32)
        idx += [np.array([cols.size], np.int32), cols]
    b_of, c_of = np.nonzero(mask)  # row-major: output block, then ascending column
    weights = w[b_of, :, c_of]  # (kept, 16)
    return np.concatenate(idx), np.ascontiguousarray(weights, np.float32).reshape(-1)


def check_density(density: float, n: int) -> float:
    """``density`` as a float in [the diagonal's share 16/N, 1] (ValueError with the range otherwise)."""
    lo = SPARSE_BLOCK / n
    try:
        d = float(density)
    except (TypeError, ValueError):
        raise ValueError(f"GRU-A block density must be a number, got {density!r}") from None
    if not (lo <= d <= 1.0):
        raise ValueError(f"GRU-A block density must be in [{lo:g}, 1] for GRU-A size {n} (the diagonal blocks, "
                         f"16/{n} of each gate matrix, are always kept), got {density!r}")
    return d


def prune_gru_a(w_hh: np.ndarray, density: float) -> np.ndarray:
    """A copy of W_hh (3N, N) with all but round(density * N * N / 16) 16x1 blocks of each N x N gate matrix
    zeroed: its N diagonal blocks (output block b, columns 16b..16b+15) and the largest others by L2 norm.
    For speed tests of the block-sparse kernel only: the pruned decoder is not retrained."""
    _, n = _check(w_hh)
    d = check_density(density, n)
    out = np.array(w_hh, np.float32, copy=True)
    per = n // SPARSE_BLOCK  # output blocks per gate matrix
    keep = int(round(d * per * n))
    diag = np.zeros((per, n), bool)
    for b in range(per):
        diag[b, b * SPARSE_BLOCK:(b + 1) * SPARSE_BLOCK] = True
    for g in range(3):
        m = out[g * n:(g + 1) * n].reshape(per, SPARSE_BLOCK, n)
        score = np.sqrt((m.astype(np.float64) ** 2).sum(axis=1))
        score[diag] = np.inf  # always kept
        order = np.argsort(-score, axis=None, kind="stable")
        kept = np.zeros(per * n, bool)
        kept[order[:keep]] = True
        m *= kept.reshape(per, 1, n)  # in place: out's rows of gate g
    return out


def pruned_weights(weights, density: float):
    """``SampleWeights`` with GRU-A's recurrent matrix pruned by :func:`prune_gru_a` (a new object)."""
    return dataclasses.replace(weights, wa_hh=prune_gru_a(weights.wa_hh, density))
