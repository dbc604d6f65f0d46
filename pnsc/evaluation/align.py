"""Delay compensation: find the lag of a decoded signal against its reference and line them up.

The lag is found in two steps, so that codecs which do not preserve the waveform (parametric and
neural vocoders) are aligned as well as waveform coders: a coarse lag from the cross-correlation of
the smoothed amplitude envelopes (1 ms resolution), then a fine lag from the waveform
cross-correlation within +-2 ms of it, used when the waveforms correlate clearly there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

ENV_DECIMATE = 16  # 1 ms at 16 kHz
FINE_RADIUS = 32  # samples around the coarse lag searched on the waveform
FINE_MIN_CORR = 0.2  # normalized waveform correlation needed to trust the fine lag


@dataclass(frozen=True)
class Alignment:
    lag: int  # samples by which ``deg`` lags ``ref`` (positive = deg is late)
    corr: float  # normalized correlation at the chosen lag (waveform if fine, else envelope)
    fine: bool  # whether the waveform refined the lag


def _xcorr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full cross-correlation c[k] = sum_n b[n + k] a[n], index k + len(a) - 1."""
    return fftconvolve(b, a[::-1], mode="full")


def _envelope(x: np.ndarray) -> np.ndarray:
    n = len(x) // ENV_DECIMATE
    env = np.sqrt(np.mean(x[: n * ENV_DECIMATE].reshape(n, ENV_DECIMATE) ** 2, axis=1))
    env = np.log(env + 1e-4)
    return env - env.mean()


def estimate_lag(ref: np.ndarray, deg: np.ndarray, max_lag: int = 8000) -> Alignment:
    """Lag of ``deg`` against ``ref`` in samples, searched within ``+-max_lag``."""
    ref = np.asarray(ref, np.float64)
    deg = np.asarray(deg, np.float64)
    er, ed = _envelope(ref), _envelope(deg)
    c = _xcorr(er, ed)
    zero = len(er) - 1
    m = max_lag // ENV_DECIMATE
    lo, hi = max(0, zero - m), min(len(c), zero + m + 1)
    k = int(np.argmax(c[lo:hi])) + lo
    coarse = (k - zero) * ENV_DECIMATE
    env_corr = float(c[k] / (np.linalg.norm(er) * np.linalg.norm(ed) + 1e-12))
    w = _xcorr(ref, deg)
    zero_w = len(ref) - 1
    lo = max(0, zero_w + coarse - FINE_RADIUS)
    hi = min(len(w), zero_w + coarse + FINE_RADIUS + ENV_DECIMATE + 1)
    j = int(np.argmax(w[lo:hi])) + lo
    lag = j - zero_w
    a, b = _overlap(ref, deg, lag)
    corr = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    if corr >= FINE_MIN_CORR:
        return Alignment(lag, corr, True)
    return Alignment(coarse, env_corr, False)


def _overlap(ref: np.ndarray, deg: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    if lag >= 0:
        d = deg[lag:]
        r = ref
    else:
        d = deg
        r = ref[-lag:]
    n = min(len(r), len(d))
    return r[:n], d[:n]


def align(ref: np.ndarray, deg: np.ndarray, max_lag: int = 8000) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """``(ref_part, deg_part, alignment)``: both cut to the span where they overlap after the shift."""
    a = estimate_lag(ref, deg, max_lag)
    r, d = _overlap(np.asarray(ref), np.asarray(deg), a.lag)
    return r, d, a
