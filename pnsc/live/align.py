"""Time alignment of the played audio with the sent audio (for the figure and the received WAV)."""
from __future__ import annotations

import numpy as np

HOP = 160  # 10 ms envelope frames at 16 kHz


def envelope_db(x: np.ndarray, hop: int = HOP) -> np.ndarray:
    """Log energy (dB) per ``hop`` samples."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = len(x) // hop
    if n == 0:
        return np.zeros(0)
    e = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)
    return 10.0 * np.log10(e + 1e-10)


def estimate_delay(reference: np.ndarray, received: np.ndarray, max_delay_s: float = 3.0,
                   sample_rate: int = 16000) -> int:
    """Delay in samples (multiple of 10 ms, >= 0) of ``received`` behind ``reference``: the lag that
    best correlates their log-energy envelopes (floored at 50 dB below each signal's peak).

    A lag counts only where the two envelopes overlap over at least 3/4 of the shorter one: a normalised
    correlation over a few frames can beat the true lag by chance (a 1 s call, whose played audio ends in
    seconds of silence, was once aligned at 1.94 s and its received WAV came out empty)."""
    a, b = envelope_db(reference), envelope_db(received)
    if len(a) == 0 or len(b) == 0:
        return 0
    a = np.maximum(a, a.max() - 50.0)
    b = np.maximum(b, b.max() - 50.0)
    a, b = a - a.mean(), b - b.mean()
    max_lag = min(int(max_delay_s * sample_rate / HOP), max(0, len(b) - 1))
    min_overlap = max(10, (3 * min(len(a), len(b))) // 4)
    best, best_lag = -np.inf, 0
    for lag in range(max_lag + 1):
        n = min(len(a), len(b) - lag)
        if n < min_overlap:
            break
        x, y = a[:n], b[lag:lag + n]
        denom = np.sqrt(np.dot(x, x) * np.dot(y, y))
        score = np.dot(x, y) / denom if denom > 0 else -np.inf
        if score > best:
            best, best_lag = score, lag
    return best_lag * HOP


def aligned(received: np.ndarray, delay: int, length: int) -> np.ndarray:
    """``received`` advanced by ``delay`` samples, cut or zero-padded to ``length``."""
    out = np.asarray(received, dtype=np.float32)[delay:delay + length]
    return np.pad(out, (0, max(0, length - len(out))))
