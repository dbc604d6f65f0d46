"""First-order pre-emphasis / de-emphasis filters with explicit state (for streaming)."""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from .constants import PREEMPHASIS


def preemphasize(x: np.ndarray, mem: float = 0.0, coef: float = PREEMPHASIS) -> tuple[np.ndarray, float]:
    """``y[n] = x[n] - coef * x[n-1]``; ``mem`` is the last input sample of the previous block."""
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        return x.copy(), mem
    y = np.empty_like(x)
    y[0] = x[0] - coef * mem
    y[1:] = x[1:] - coef * x[:-1]
    return y, float(x[-1])


def deemphasize(y: np.ndarray, mem: float = 0.0, coef: float = PREEMPHASIS) -> tuple[np.ndarray, float]:
    """Inverse of :func:`preemphasize`: ``x[n] = y[n] + coef * x[n-1]``; ``mem`` is the last output."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return y.astype(np.float32), mem
    x, _ = lfilter([1.0], [1.0, -coef], y, zi=np.array([coef * mem]))
    return x.astype(np.float32), float(x[-1])
