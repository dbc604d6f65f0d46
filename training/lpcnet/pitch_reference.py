"""An independent pitch reference (YIN) and the scores that compare a pitch track against it.

Used by ``scripts/pitch_accuracy.py`` to check the codec's pitch features (``shared/pitch.py``). It works on
the clean waveform, not the LPC residual, and shares no code with the codec's tracker:

    ref_period, ref_voiced = yin_frames(audio, n_frames)      # periods in samples at 16 kHz
    scores = compare_tracks(period, voiced, ref_period, ref_voiced)

Frame ``i`` of the reference is centred on sample ``160 i``, the centre of the codec's 20 ms pitch window
for frame ``i`` (the window ends at the last sample of frame ``i``).
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

FS = 16_000
HOP = 160
WIN = 320  # integration window (20 ms)
TAU_MIN = 28  # 571 Hz
TAU_MAX = 290  # 55 Hz
THRESHOLD = 0.15  # YIN absolute threshold on the cumulative-mean-normalized difference
APERIODIC_MAX = 0.30  # a frame is voiced when the chosen dip is below this...
SILENCE_DB = -40.0  # ...and its energy is within this of the clip's loud frames (99th percentile)
GROSS = 0.2


def _frame_segments(x: np.ndarray, n_frames: int) -> np.ndarray:
    """``(n_frames, WIN + TAU_MAX)`` segments; segment ``i`` starts at ``160 i - WIN/2 - TAU_MAX/2``."""
    pad = WIN // 2 + TAU_MAX // 2
    total = pad + n_frames * HOP + WIN + TAU_MAX
    xp = np.zeros(total)
    seg = x[: total - pad]
    xp[pad : pad + len(seg)] = seg
    return np.lib.stride_tricks.sliding_window_view(xp, WIN + TAU_MAX)[: n_frames * HOP : HOP]


def cmndf(segments: np.ndarray) -> np.ndarray:
    """YIN's cumulative-mean-normalized difference ``(F, TAU_MAX + 1)`` of each segment's first WIN samples
    against the segment shifted by ``tau``."""
    seg = np.asarray(segments, np.float64)
    n = 1 << int(np.ceil(np.log2(seg.shape[1] + WIN)))
    spec = np.fft.rfft(seg, n) * np.conj(np.fft.rfft(seg[:, :WIN], n))
    r = np.fft.irfft(spec, n)[:, : TAU_MAX + 1]
    sq = np.concatenate([np.zeros((len(seg), 1)), np.cumsum(seg**2, axis=1)], axis=1)
    taus = np.arange(TAU_MAX + 1)
    e_tau = sq[:, taus + WIN] - sq[:, taus]
    d = np.maximum(e_tau[:, :1] + e_tau - 2.0 * r, 0.0)
    out = np.ones_like(d)
    cum = np.cumsum(d[:, 1:], axis=1)
    out[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    return out


def yin_frames(audio: np.ndarray, n_frames: int, fs: int = FS) -> tuple[np.ndarray, np.ndarray]:
    """Clean 16 kHz audio -> ``(period (F,) in samples, voiced (F,) bool)`` per 10 ms frame."""
    if fs != FS:
        raise ValueError(f"yin_frames needs {FS} Hz audio, got {fs}")
    x = np.asarray(audio, np.float64)
    x = sosfiltfilt(butter(4, 1000.0, fs=FS, output="sos"), x) if len(x) > 30 else x
    seg = _frame_segments(x, n_frames)
    d = cmndf(seg)
    period = np.zeros(n_frames)
    dip = np.ones(n_frames)
    for i, row in enumerate(d):
        below = np.flatnonzero(row[TAU_MIN : TAU_MAX + 1] < THRESHOLD)
        if below.size:
            t = TAU_MIN + below[0]
            while t < TAU_MAX and row[t + 1] < row[t]:
                t += 1
        else:
            t = TAU_MIN + int(np.argmin(row[TAU_MIN : TAU_MAX + 1]))
        off = 0.0
        if TAU_MIN < t < TAU_MAX:
            a, b, c = row[t - 1], row[t], row[t + 1]
            den = a - 2 * b + c
            off = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den > 0 else 0.0
        period[i], dip[i] = t + off, row[t]
    energy = np.sum(seg[:, :WIN] ** 2, axis=1) / WIN
    loud = np.percentile(energy, 99) if n_frames else 0.0
    voiced = (dip < APERIODIC_MAX) & (energy > loud * 10 ** (SILENCE_DB / 10)) & (energy > 0)
    return period, voiced


def compare_tracks(period: np.ndarray, voiced: np.ndarray, ref_period: np.ndarray,
                   ref_voiced: np.ndarray) -> dict:
    """Voicing precision/recall of ``voiced`` against ``ref_voiced``; on frames both call voiced: gross
    error rate (> 20 % off), octave errors (period x2 = f0 halved; x0.5 = f0 doubled) and fine error in cents."""
    period, ref_period = np.asarray(period, np.float64), np.asarray(ref_period, np.float64)
    voiced, ref_voiced = np.asarray(voiced, bool), np.asarray(ref_voiced, bool)
    both = voiced & ref_voiced
    ratio = period[both] / ref_period[both]
    gross = np.abs(ratio - 1.0) > GROSS
    cents = 1200.0 * np.log2(ratio[~gross]) if np.any(~gross) else np.zeros(0)
    nb = int(both.sum())
    return {
        "frames": int(len(voiced)),
        "ref_voiced": int(ref_voiced.sum()),
        "voiced": int(voiced.sum()),
        "both_voiced": nb,
        "voicing_precision": float(nb / max(voiced.sum(), 1)),
        "voicing_recall": float(nb / max(ref_voiced.sum(), 1)),
        "voicing_agreement": float(np.mean(voiced == ref_voiced)) if len(voiced) else 0.0,
        "gross_error_rate": float(gross.mean()) if nb else 0.0,
        "octave_x2_rate": float(np.mean(np.abs(ratio / 2.0 - 1.0) <= GROSS)) if nb else 0.0,
        "octave_x05_rate": float(np.mean(np.abs(ratio * 2.0 - 1.0) <= GROSS)) if nb else 0.0,
        "fine_abs_cents_median": float(np.median(np.abs(cents))) if cents.size else 0.0,
        "fine_abs_cents_mean": float(np.mean(np.abs(cents))) if cents.size else 0.0,
        "fine_abs_cents_p90": float(np.percentile(np.abs(cents), 90)) if cents.size else 0.0,
        "fine_bias_cents": float(np.mean(cents)) if cents.size else 0.0,
    }


def synthetic_voice(f0: np.ndarray, vowel: bool = True, seed: int = 0) -> np.ndarray:
    """A glottal-pulse train following the per-sample ``f0`` (Hz), optionally through three formant
    resonators (/a/-like, 700/1220/2600 Hz), at 16 kHz, peak 0.5."""
    from scipy.signal import lfilter

    f0 = np.asarray(f0, np.float64)
    phase = np.cumsum(f0) / FS
    pulses = np.diff(np.floor(phase), prepend=0.0)
    # glottal flow derivative: each pulse through a double real pole at 0.97, differentiated
    x = lfilter([1.0, -1.0], [1.0, -1.94, 0.9409], pulses)
    if vowel:
        for fc, bw in ((700.0, 130.0), (1220.0, 70.0), (2600.0, 160.0)):
            r = np.exp(-np.pi * bw / FS)
            x = lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * fc / FS), r * r], x)
    x += 1e-4 * np.random.default_rng(seed).standard_normal(len(x)) * np.max(np.abs(x))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)
