"""Front end of the speaker encoder (numpy only): log-magnitude STFT frames and an energy VAD.

Training (``training/speaker``) and the sender's classifier (``sender/speaker_classifier``) both
call these functions, so the encoder sees exactly the same features offline and at run time.

Frames: a 25 ms Hann window every 10 ms (frame ``i`` covers samples ``[160 i, 160 i + 400)``, no
centering or padding), a 512-point FFT and ``log(|X| + 1e-7)`` of the 257 bins, on audio in
[-1, 1].  Level normalisation (subtracting the segment's mean log magnitude) and per-bin
standardisation happen inside the encoder network, so the ONNX graph holds them too.

VAD: per-frame energy in dB (of the frame with its mean removed, so DC offsets do not count);
frames above a threshold set from the signal's own energy distribution are active.  Silence,
digital zero and stationary noise (too little energy dynamics to be speech) give no active frames.
"""
from __future__ import annotations

import numpy as np

from pnsc.shared.constants import SAMPLE_RATE

WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_BINS = N_FFT // 2 + 1  # 257
LOG_EPS = 1e-7  # far below int16 quantisation noise, so gain changes only shift the log spectrum
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100

# VAD parameters (energies in dB relative to full scale, 0 dB = a full-scale DC frame).
VAD_ABS_FLOOR_DB = -90.0  # nothing quieter than this is speech (low, so the VAD stays gain-invariant)
VAD_MIN_DYNAMICS_DB = 12.0  # top - noise floor; stationary signals fall below it
VAD_REL_POSITION = 0.3  # threshold = low + 0.3 * (top - low)

_WINDOW = np.hanning(WIN + 2)[1:-1].astype(np.float64)  # symmetric, no zero end points


def frontend_params() -> dict:
    """Parameters recorded next to the model so a reader can check they match."""
    return {
        "sample_rate": SAMPLE_RATE, "win": WIN, "hop": HOP, "n_fft": N_FFT, "n_bins": N_BINS,
        "log_eps": LOG_EPS, "window": "hann(402)[1:-1]",
        "vad_abs_floor_db": VAD_ABS_FLOOR_DB, "vad_min_dynamics_db": VAD_MIN_DYNAMICS_DB,
        "vad_rel_position": VAD_REL_POSITION,
    }


def as_float_pcm(pcm: np.ndarray) -> np.ndarray:
    """int16 -> float in [-1, 1]; float input is taken as already in [-1, 1]."""
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise ValueError(f"expected 1-D mono audio, got shape {pcm.shape}")
    if pcm.dtype == np.int16:
        return pcm.astype(np.float64) / 32768.0
    if not np.issubdtype(pcm.dtype, np.floating):
        raise ValueError(f"expected int16 or float samples, got {pcm.dtype}")
    x = pcm.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    return x


def num_frames(n_samples: int) -> int:
    return 0 if n_samples < WIN else 1 + (n_samples - WIN) // HOP


def frame_signal(pcm: np.ndarray) -> np.ndarray:
    """(n_frames, WIN) float64 view-copy of the overlapping frames."""
    x = as_float_pcm(pcm)
    n = num_frames(len(x))
    if n == 0:
        return np.zeros((0, WIN), dtype=np.float64)
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    return x[idx]


def log_spectrum_frames(frames: np.ndarray) -> np.ndarray:
    """(n, WIN) frames -> (n, 257) float32 log magnitudes."""
    if len(frames) == 0:
        return np.zeros((0, N_BINS), dtype=np.float32)
    spec = np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=1)
    return np.log(np.abs(spec) + LOG_EPS).astype(np.float32)


def frame_energy_db(frames: np.ndarray) -> np.ndarray:
    """Energy per frame in dB re full scale, DC removed."""
    if len(frames) == 0:
        return np.zeros(0, dtype=np.float64)
    centred = frames - frames.mean(axis=1, keepdims=True)
    return 10.0 * np.log10(np.mean(centred ** 2, axis=1) + 1e-12)


def log_spectrogram(pcm: np.ndarray) -> np.ndarray:
    """(n_frames, 257) float32 log-magnitude spectra of 16 kHz audio."""
    return log_spectrum_frames(frame_signal(pcm))


def vad_threshold(energy_db: np.ndarray) -> float:
    """Energy threshold (dB) for a block of frame energies; +inf when the block cannot be speech.

    ``top`` = 99th percentile of the frame energies (a little speech in a long silence still
    counts), ``low`` = 10th percentile (the noise floor).  A block whose top is less than
    ``VAD_MIN_DYNAMICS_DB`` above its noise floor is stationary (noise, hum, DC); a block whose top is
    below the absolute floor is silence.  Both percentiles move with the gain, so the decisions do
    not depend on the input level (unless the absolute floor is reached).
    """
    e = np.asarray(energy_db, dtype=np.float64)
    if e.size == 0:
        return float("inf")
    low, top = (float(v) for v in np.percentile(e, [10, 99]))
    if top < VAD_ABS_FLOOR_DB or top - low < VAD_MIN_DYNAMICS_DB:
        return float("inf")
    return float(max(VAD_ABS_FLOOR_DB, low + VAD_REL_POSITION * (top - low)))


def active_frames_from_energy(energy_db: np.ndarray, context_db: np.ndarray | None = None) -> np.ndarray:
    """Boolean activity per frame; the threshold comes from ``context_db`` (default: the frames)."""
    e = np.asarray(energy_db, dtype=np.float64)
    thr = vad_threshold(e if context_db is None else context_db)
    return e > thr


def active_frames(pcm: np.ndarray) -> np.ndarray:
    """Boolean voice activity for each frame of :func:`log_spectrogram` (same framing)."""
    return active_frames_from_energy(frame_energy_db(frame_signal(pcm)))


def active_features(pcm: np.ndarray) -> np.ndarray:
    """Log spectra of the active frames only, in time order: (n_active, 257) float32."""
    frames = frame_signal(pcm)
    mask = active_frames_from_energy(frame_energy_db(frames))
    return log_spectrum_frames(frames[mask])


def split_segments(feats: np.ndarray, seg_frames: int, min_frames: int) -> list[np.ndarray]:
    """Consecutive segments of ``seg_frames`` frames; a tail shorter than ``min_frames`` is merged
    into the previous segment (or dropped if it is the only one)."""
    n = len(feats)
    if n < min_frames:
        return []
    starts = list(range(0, n, seg_frames))
    segs = [feats[s:s + seg_frames] for s in starts]
    if len(segs) > 1 and len(segs[-1]) < min_frames:
        tail = segs.pop()
        segs[-1] = np.concatenate([segs[-1], tail])
    return segs
