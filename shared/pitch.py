"""Pitch period and correlation from the LPC residual: normalized cross-correlation over lags
32..256 per 10 ms frame, local-peak selection that avoids period multiples, and tracking."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import FRAME_SIZE, PITCH_MAX, PITCH_MIN, VOICED_CORR

PITCH_WINDOW = 2 * FRAME_SIZE  # 20 ms of residual is compared against its lagged copy
HISTORY = PITCH_WINDOW + PITCH_MAX  # residual samples needed per frame (576)
_FFT = 1024
LAGS = np.arange(PITCH_MIN, PITCH_MAX + 1)
_OFFSETS = PITCH_MAX - LAGS  # start of the lagged segment inside the HISTORY buffer
PEAK_RATIO = 0.85  # a shorter-lag peak within this ratio of the best wins (avoids period doubling)
TRACK_BONUS = 0.08  # preference for peaks within TRACK_TOLERANCE of the previous voiced period
TRACK_TOLERANCE = 0.12


@dataclass
class PitchTracker:
    """State carried between frames: the last voiced period (0 if none)."""

    last_period: float = 0.0

    def analyze(self, residual_blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(F, HISTORY)`` residual windows (one per frame, ending at the frame end) ->
        ``(period, corr)`` each ``(F,)``. Frames are tracked in order."""
        ncorr = normalized_xcorr(residual_blocks)
        periods = np.empty(len(ncorr), dtype=np.float32)
        corrs = np.empty(len(ncorr), dtype=np.float32)
        for i, row in enumerate(ncorr):
            periods[i], corrs[i] = self._pick(row)
        return periods, corrs

    def _pick(self, row: np.ndarray) -> tuple[float, float]:
        inner = row[1:-1]
        peaks = np.flatnonzero((inner > row[:-2]) & (inner >= row[2:]) & (inner > 0.0)) + 1
        if peaks.size == 0:
            return float(PITCH_MIN if self.last_period == 0 else self.last_period), 0.0
        scores = row[peaks].astype(np.float64)
        if self.last_period > 0:
            near = np.abs(LAGS[peaks] / self.last_period - 1.0) < TRACK_TOLERANCE
            scores = scores + TRACK_BONUS * near
        best = scores.max()
        chosen = peaks[np.flatnonzero(scores >= PEAK_RATIO * best)[0]]
        corr = float(np.clip(row[chosen], 0.0, 1.0))
        period = float(LAGS[chosen]) + _parabolic_offset(row, chosen)
        period = float(np.clip(period, PITCH_MIN, PITCH_MAX))
        self.last_period = period if corr >= VOICED_CORR else 0.0
        return period, corr


def _parabolic_offset(row: np.ndarray, i: int) -> float:
    if i <= 0 or i >= len(row) - 1:
        return 0.0
    a, b, c = float(row[i - 1]), float(row[i]), float(row[i + 1])
    denom = a - 2.0 * b + c
    return 0.0 if denom >= 0.0 else float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))


def normalized_xcorr(blocks: np.ndarray) -> np.ndarray:
    """``(F, HISTORY)`` -> ``(F, len(LAGS))`` normalized correlation of the last PITCH_WINDOW samples
    with the segment LAG samples earlier."""
    blocks = np.asarray(blocks, dtype=np.float64)
    target = blocks[:, -PITCH_WINDOW:]
    spec = np.fft.rfft(blocks, _FFT, axis=-1) * np.conj(np.fft.rfft(target, _FFT, axis=-1))
    xcorr = np.fft.irfft(spec, _FFT, axis=-1)[:, _OFFSETS]
    sq = np.concatenate([np.zeros((len(blocks), 1)), np.cumsum(blocks**2, axis=-1)], axis=-1)
    lag_energy = sq[:, _OFFSETS + PITCH_WINDOW] - sq[:, _OFFSETS]
    target_energy = sq[:, -1] - sq[:, -1 - PITCH_WINDOW]
    denom = np.sqrt(lag_energy * target_energy[:, None]) + 1e-3 * PITCH_WINDOW + 1e-9 * target_energy[:, None]
    return xcorr / denom
