"""Per-frame signal helpers of the stream in C: LPC from the cepstrum and de-emphasis to int16.

``lpc_from_cepstrum`` computes what ``shared.lpc.lpc_from_cepstrum`` does (same float64 math: band
energies, then the lag-windowed autocorrelation as one precomputed 17 x 18 matrix instead of an inverse
FFT, then Levinson-Durbin) about 100 times faster for a single frame.
"""
from __future__ import annotations

import numpy as np

from pnsc.shared import bands, lpc
from pnsc.shared.constants import LPC_ORDER, PREEMPHASIS, WINDOW_SIZE

from .ckernel import extension


def _ac_matrix() -> np.ndarray:
    """Band energies (18) -> the autocorrelation ``shared.lpc.lpc_from_power_spectrum`` feeds Levinson."""
    irfft = np.fft.irfft(np.eye(bands.NB_BINS), n=WINDOW_SIZE, axis=-1)[:, : LPC_ORDER + 1].T  # (17, 161)
    m = (irfft @ bands.BAND_INTERP) * lpc.LAG_WINDOW[: LPC_ORDER + 1, None]
    m[0] *= 1.0 + lpc.WHITE_NOISE_CORRECTION
    return np.ascontiguousarray(m, np.float64)


_IDCT = np.ascontiguousarray(bands.IDCT, np.float64)
_AC = _ac_matrix()
assert lpc.ABSOLUTE_NOISE_FLOOR == 1e-3 and bands.ENERGY_FLOOR == 1e-2  # constants the C code holds


def lpc_from_cepstrum(ceps: np.ndarray) -> np.ndarray:
    """(18,) cepstrum of one frame -> (16,) float32 predictor."""
    out = np.empty(LPC_ORDER, np.float32)
    extension().lpc(np.ascontiguousarray(ceps[:18], np.float32), _IDCT, _AC, float(bands.C0_OFFSET), out)
    return out


def deemphasize_int16(y: np.ndarray, mem: float) -> tuple[np.ndarray, float]:
    """Pre-emphasized float32 samples -> int16 (rounded, clipped), float64 filter memory carried."""
    out = np.empty(y.shape[0], np.int16)
    mem = extension().deemphasis(np.ascontiguousarray(y, np.float32), out, float(mem), PREEMPHASIS)
    return out, mem
