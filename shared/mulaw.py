"""8-bit mu-law companding on int16-scale signals, as LPCNet (256 levels, centre 128)."""
from __future__ import annotations

import numpy as np

_SCALE = 255.0 / 32768.0
_LOG256 = np.log(256.0)


def lin2ulaw(x: np.ndarray | float) -> np.ndarray:
    """int16-scale sample(s) -> continuous mu-law value in [0, 255] (round it for the 256 classes)."""
    x = np.asarray(x, dtype=np.float32)
    u = np.sign(x) * (128.0 * np.log1p(_SCALE * np.abs(x)) / _LOG256)
    return np.clip(128.0 + u, 0.0, 255.0).astype(np.float32)


def ulaw2lin(u: np.ndarray | float) -> np.ndarray:
    """mu-law value(s) in [0, 255] -> int16-scale sample(s)."""
    u = np.asarray(u, dtype=np.float32) - 128.0
    return (np.sign(u) * np.expm1(np.abs(u) * _LOG256 / 128.0) / _SCALE).astype(np.float32)
