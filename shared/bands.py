"""Bark-like band energies and the cepstrum (DCT of log band energies), with precomputed tables."""
from __future__ import annotations

import numpy as np

from .constants import NB_BANDS, SAMPLE_RATE, WINDOW_SIZE

BAND_EDGES_HZ = np.array(
    [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2400, 2800, 3200, 4000, 4800, 5600, 6800, 8000],
    dtype=np.float64,
)
NB_BINS = WINDOW_SIZE // 2 + 1  # 161 rfft bins, 50 Hz apart
ENERGY_FLOOR = 1e-2
LOG_FLOOR_BELOW_MAX = 8.0  # log10 units: bands >80 dB below the loudest are floored
LOG_FOLLOW_SLOPE = 2.5  # log10 units per band: how fast the floor decays after a peak
C0_OFFSET = 4.0


def _triangular_weights() -> np.ndarray:
    """``(NB_BINS, NB_BANDS)``: bin k contributes (1-frac) to the band at its left edge, frac to the right."""
    freqs = np.arange(NB_BINS) * SAMPLE_RATE / WINDOW_SIZE
    w = np.zeros((NB_BINS, NB_BANDS))
    for i in range(NB_BANDS - 1):
        lo, hi = BAND_EDGES_HZ[i], BAND_EDGES_HZ[i + 1]
        inside = (freqs >= lo) & (freqs < hi)
        frac = (freqs[inside] - lo) / (hi - lo)
        w[inside, i] += 1.0 - frac
        w[inside, i + 1] += frac
    w[freqs >= BAND_EDGES_HZ[-1], NB_BANDS - 1] = 1.0
    # The outer bands are half-triangles: double them so every band has comparable weight.
    w[:, 0] *= 2.0
    w[:, -1] *= 2.0
    return w


def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II matrix ``(NB_BANDS, NB_BANDS)``: ``ceps = D @ log_energy``."""
    n = np.arange(NB_BANDS)
    d = np.cos(np.pi / NB_BANDS * (n[None, :] + 0.5) * n[:, None]) * np.sqrt(2.0 / NB_BANDS)
    d[0] /= np.sqrt(2.0)
    return d


BAND_WEIGHTS = _triangular_weights()
# Interpolation back from bands to bins: each bin mixes its two neighbouring band values.
BAND_INTERP = _triangular_weights()
BAND_INTERP[:, 0] /= 2.0
BAND_INTERP[:, -1] /= 2.0
DCT = _dct_matrix()
IDCT = DCT.T.copy()
WINDOW = np.sin(np.pi * (np.arange(WINDOW_SIZE) + 0.5) / WINDOW_SIZE)  # power-complementary at 50% hop


def band_energies(frames: np.ndarray) -> np.ndarray:
    """``(T, WINDOW_SIZE)`` windowable int16-scale frames -> ``(T, NB_BANDS)`` band energies."""
    spec = np.fft.rfft(frames * WINDOW, axis=-1) / WINDOW_SIZE
    power = spec.real**2 + spec.imag**2
    return power @ BAND_WEIGHTS


def log_bands_with_floor(energies: np.ndarray) -> np.ndarray:
    """log10 band energies with the spectral floors (relative to the running max and a decaying follower)."""
    ly = np.log10(ENERGY_FLOOR + energies)
    idx = np.arange(NB_BANDS) * LOG_FOLLOW_SLOPE
    follow = np.maximum.accumulate(ly + idx, axis=-1) - idx
    running_max = np.maximum.accumulate(ly, axis=-1)
    return np.maximum(ly, np.maximum(follow - LOG_FOLLOW_SLOPE, running_max - LOG_FLOOR_BELOW_MAX))


def cepstrum_from_energies(energies: np.ndarray) -> np.ndarray:
    """Band energies -> 18 cepstral coefficients (c0 offset so speech sits near zero)."""
    ceps = log_bands_with_floor(energies) @ DCT.T
    ceps[..., 0] -= C0_OFFSET
    return ceps


def log_bands_from_cepstrum(ceps: np.ndarray) -> np.ndarray:
    """Inverse of the DCT step: cepstrum -> log10 band energies."""
    c = np.array(ceps, dtype=np.float64, copy=True)
    c[..., 0] += C0_OFFSET
    return c @ IDCT.T


def power_spectrum_from_cepstrum(ceps: np.ndarray) -> np.ndarray:
    """Cepstrum -> ``(..., NB_BINS)`` power spectrum by triangular interpolation of band energies."""
    energies = np.maximum(10.0 ** log_bands_from_cepstrum(ceps) - ENERGY_FLOOR, 0.0)
    return energies @ BAND_INTERP.T
