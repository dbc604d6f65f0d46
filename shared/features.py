"""LPCNet-style analysis: 16 kHz speech -> per-10 ms features (18 cepstra, pitch period, correlation).

Processing always happens in blocks of one superframe (4 frames, 40 ms), so feeding a stream in
arbitrary chunks gives bit-identical features to analysing the whole file at once. Each frame's
20 ms window ends at the frame's last sample: the analysis needs no lookahead.
"""
from __future__ import annotations

import numpy as np

from .audio import to_int16_scale
from .bands import band_energies, cepstrum_from_energies
from .constants import (
    CORR_INDEX,
    FEATURE_DIM,
    FRAME_SIZE,
    FRAMES_PER_PACKET,
    LPC_ORDER,
    NB_CEPS,
    PACKET_SAMPLES,
    PERIOD_INDEX,
    PREEMPHASIS,
    WINDOW_SIZE,
)
from .lpc import lpc_from_cepstrum
from .pitch import HISTORY, PitchTracker

_X_HISTORY = WINDOW_SIZE - FRAME_SIZE  # 160 pre-emphasized samples carried between blocks
_R_HISTORY = HISTORY - FRAME_SIZE  # 416 residual samples carried between blocks


def num_frames(num_samples: int) -> int:
    """Frames produced for ``num_samples`` of input: padded up to whole 40 ms superframes."""
    return -(-num_samples // PACKET_SAMPLES) * FRAMES_PER_PACKET


class FeatureExtractor:
    """Streaming analysis. ``push`` returns features of every superframe completed so far."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._pre_mem = 0.0
        self._x_hist = np.zeros(_X_HISTORY, dtype=np.float64)
        self._r_hist = np.zeros(_R_HISTORY, dtype=np.float64)
        self._tracker = PitchTracker()

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Add samples (int16, or float in [-1, 1]); return ``(4k, 20)`` features for k new superframes."""
        pcm = to_int16_scale(np.ravel(pcm))
        self._pending = np.concatenate([self._pending, pcm])
        n_blocks = len(self._pending) // PACKET_SAMPLES
        out = np.empty((n_blocks * FRAMES_PER_PACKET, FEATURE_DIM), dtype=np.float32)
        for b in range(n_blocks):
            block = self._pending[b * PACKET_SAMPLES : (b + 1) * PACKET_SAMPLES]
            out[b * FRAMES_PER_PACKET : (b + 1) * FRAMES_PER_PACKET] = self._analyze_block(block)
        self._pending = self._pending[n_blocks * PACKET_SAMPLES :]
        return out

    def flush(self) -> np.ndarray:
        """Zero-pad the pending partial superframe (if any) and return its features."""
        if len(self._pending) == 0:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        pad = np.zeros(PACKET_SAMPLES - len(self._pending), dtype=np.float32)
        return self.push(pad)

    def _analyze_block(self, block: np.ndarray) -> np.ndarray:
        x = np.empty(PACKET_SAMPLES, dtype=np.float64)
        x[0] = block[0] - PREEMPHASIS * self._pre_mem
        x[1:] = block[1:] - PREEMPHASIS * block[:-1]
        self._pre_mem = float(block[-1])

        ext = np.concatenate([self._x_hist, x])
        frames = np.lib.stride_tricks.sliding_window_view(ext, WINDOW_SIZE)[::FRAME_SIZE]
        ceps = cepstrum_from_energies(band_energies(frames))
        a = lpc_from_cepstrum(ceps).astype(np.float64)

        # Residual of each frame with that frame's own predictor.
        past = np.lib.stride_tricks.sliding_window_view(ext[:-1], LPC_ORDER)[_X_HISTORY - LPC_ORDER :]
        past = past.reshape(FRAMES_PER_PACKET, FRAME_SIZE, LPC_ORDER)
        pred = np.einsum("fis,fs->fi", past, a[:, ::-1])
        residual = x.reshape(FRAMES_PER_PACKET, FRAME_SIZE) - pred

        r_ext = np.concatenate([self._r_hist, residual.ravel()])
        windows = np.lib.stride_tricks.sliding_window_view(r_ext, HISTORY)[::FRAME_SIZE]
        period, corr = self._tracker.analyze(windows)

        self._x_hist = ext[-_X_HISTORY:]
        self._r_hist = r_ext[-_R_HISTORY:]
        feats = np.empty((FRAMES_PER_PACKET, FEATURE_DIM), dtype=np.float32)
        feats[:, :NB_CEPS] = ceps
        feats[:, PERIOD_INDEX] = period
        feats[:, CORR_INDEX] = corr
        return feats


def extract_features(pcm: np.ndarray) -> np.ndarray:
    """Whole-signal analysis: ``(num_frames(len(pcm)), 20)`` float32 features."""
    extractor = FeatureExtractor()
    return np.concatenate([extractor.push(pcm), extractor.flush()])
