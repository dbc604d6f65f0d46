"""Linear prediction: LPC from the cepstrum (so both ends agree), Levinson-Durbin, residual filtering."""
from __future__ import annotations

import numpy as np

from .bands import power_spectrum_from_cepstrum
from .constants import LPC_ORDER, WINDOW_SIZE

LAG_WINDOW = 1.0 - 6e-5 * np.arange(LPC_ORDER + 1) ** 2  # slight bandwidth expansion
WHITE_NOISE_CORRECTION = 1e-4  # +40 dB floor relative to the frame energy
ABSOLUTE_NOISE_FLOOR = 1e-3


def levinson(ac: np.ndarray, order: int = LPC_ORDER) -> np.ndarray:
    """Autocorrelation ``(..., order+1)`` -> predictor ``a`` ``(..., order)`` with ``x[n] ~ sum a[m-1] x[n-m]``."""
    ac = np.asarray(ac, dtype=np.float64)
    shape = ac.shape[:-1]
    a = np.zeros(shape + (order,))
    err = ac[..., 0].copy()
    for i in range(order):
        acc = ac[..., i + 1] - np.einsum("...j,...j->...", a[..., :i], ac[..., i:0:-1]) if i else ac[..., 1].copy()
        k = acc / np.maximum(err, 1e-9)
        k = np.clip(k, -0.9999, 0.9999)
        prev = a[..., :i].copy()
        a[..., i] = k
        if i:
            a[..., :i] = prev - k[..., None] * prev[..., ::-1]
        err = err * (1.0 - k * k)
    return a


def lpc_from_power_spectrum(power: np.ndarray, order: int = LPC_ORDER) -> np.ndarray:
    """``(..., NB_BINS)`` power spectrum -> LPC via its autocorrelation."""
    ac = np.fft.irfft(power, n=WINDOW_SIZE, axis=-1)[..., : order + 1]
    ac = ac * LAG_WINDOW[: order + 1]
    ac[..., 0] = ac[..., 0] * (1.0 + WHITE_NOISE_CORRECTION) + ABSOLUTE_NOISE_FLOOR
    return levinson(ac, order)


def lpc_from_cepstrum(ceps: np.ndarray) -> np.ndarray:
    """``(..., 18)`` cepstrum -> ``(..., 16)`` float32 predictor for the pre-emphasized signal."""
    return lpc_from_power_spectrum(power_spectrum_from_cepstrum(ceps)).astype(np.float32)


def lpc_residual(x: np.ndarray, history: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Prediction error of one block ``x`` given the ``LPC_ORDER`` samples before it and predictor ``a``."""
    ext = np.concatenate([history[-LPC_ORDER:], x]).astype(np.float64)
    # window[n] = ext[n : n+ORDER] holds x[n-ORDER .. n-1]; reversed against a[0] = weight of x[n-1].
    window = np.lib.stride_tricks.sliding_window_view(ext[:-1], LPC_ORDER)
    return (x - window @ a[::-1]).astype(np.float32)
