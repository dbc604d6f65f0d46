"""k-means training of the quantizer codebooks (plain and sign-symmetric), chunked to bound memory."""
from __future__ import annotations

import numpy as np

from pnsc.shared.constants import CORR_INDEX, FRAMES_PER_PACKET, NB_CEPS
from pnsc.shared.quantizer import Codebooks

_CHUNK = 16384


def _assign(x: np.ndarray, c: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Nearest codeword (and sign, for signed codebooks) of every row; returns idx, sign, mean error."""
    cn = np.sum(c * c, axis=1)
    idx = np.empty(len(x), dtype=np.int64)
    sign = np.ones(len(x))
    total = 0.0
    for s in range(0, len(x), _CHUNK):
        xs = x[s : s + _CHUNK]
        dots = xs @ c.T
        err = cn - 2.0 * (np.abs(dots) if signed else dots)
        best = np.argmin(err, axis=1)
        idx[s : s + _CHUNK] = best
        if signed:
            sign[s : s + _CHUNK] = np.where(dots[np.arange(len(xs)), best] < 0, -1.0, 1.0)
        total += float(np.sum(err[np.arange(len(xs)), best]) + np.sum(xs * xs))
    return idx, sign, total / len(x)


def kmeans(x: np.ndarray, k: int, iters: int = 20, seed: int = 0, signed: bool = False,
           progress=None) -> np.ndarray:
    """Lloyd's k-means (``signed``: each row may match ``+c`` or ``-c``). Empty cells are re-seeded
    with the rows that are currently worst represented."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)
    c = x[rng.choice(len(x), size=k, replace=len(x) < k)].astype(np.float32)
    for _ in range(iters):
        idx, sign, err = _assign(x, c, signed)
        xs = x * sign[:, None].astype(np.float32)
        sums = np.zeros_like(c)
        np.add.at(sums, idx, xs)
        counts = np.bincount(idx, minlength=k)
        empty = np.flatnonzero(counts == 0)
        c = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
        if empty.size:
            c[empty] = x[rng.choice(len(x), size=empty.size, replace=False)]
        if progress:
            progress(err)
    return c


def train_codebooks(features: list[np.ndarray], seed: int = 0, iters: int = 20, progress=None) -> Codebooks:
    """Train every table of the 1.6 kb/s quantizer from unquantized per-utterance features."""
    allf = np.concatenate(features)
    ceps = allf[:, :NB_CEPS].astype(np.float32)

    lo, hi = np.percentile(ceps[:, 0], [0.05, 99.95])
    c0_step = (hi - lo) / 127.0

    vq = []
    residual = ceps[:, 1:].copy()
    for stage in range(3):
        cb = kmeans(residual, 1024, iters=iters, seed=seed + stage, progress=progress)
        idx, _, _ = _assign(residual, cb, signed=False)
        residual -= cb[idx]
        vq.append(cb)

    # Middle-frame target: a frame against the average of the frames two before and two after it.
    mids = []
    for f in features:
        c = f[:, :NB_CEPS]
        if len(c) >= 5:
            mids.append(c[2:-2] - 0.5 * (c[:-4] + c[4:]))
    mid = kmeans(np.concatenate(mids), 4096, iters=iters, seed=seed + 10, signed=True, progress=progress)

    sf_corr = np.concatenate([
        f[: len(f) // FRAMES_PER_PACKET * FRAMES_PER_PACKET, CORR_INDEX].reshape(-1, FRAMES_PER_PACKET).mean(1)
        for f in features
    ])
    levels = np.sort(kmeans(sf_corr[:, None], 4, iters=50, seed=seed + 20)[:, 0])

    return Codebooks(
        c0_min=float(lo), c0_step=float(c0_step), vq=np.stack(vq), mid=mid, corr_levels=levels,
        info={"frames": int(len(allf)), "utterances": len(features), "seed": seed, "iters": iters},
    )
