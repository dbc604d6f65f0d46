"""scripts/tune_postfilter.py: the pitch postfilter leaves what it should alone and cleans what it should."""
from __future__ import annotations

import importlib.util

import numpy as np

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("tune_postfilter", REPO / "scripts" / "tune_postfilter.py")
tp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tp)


def _frames(n: int, period: float, corr: float) -> np.ndarray:
    qf = np.zeros((n, 20), np.float32)
    qf[:, 18], qf[:, 19] = period, corr
    return qf


def _lag_corr(x: np.ndarray, lag: int) -> float:
    a, b = x[lag:], x[:-lag]
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_no_strength_or_unvoiced_frames_give_the_input_back():
    x = np.random.default_rng(0).normal(0, 3000, 20 * 160)
    for cutoff in (2000.0, 8000.0):
        assert np.allclose(tp.pitch_postfilter(x, _frames(20, 100, 0.9), 0.0, cutoff, 0.3), x)
        assert np.allclose(tp.pitch_postfilter(x, _frames(20, 100, 0.2), 0.8, cutoff, 0.3), x)  # c < c0


def test_voiced_noise_is_cut_between_the_harmonics_below_the_cutoff_only():
    rng = np.random.default_rng(1)
    n, period = 40 * 160, 100
    t = np.arange(n)
    pulse = sum(np.cos(2 * np.pi * k * t / period) for k in range(1, 6)) * 2000  # harmonics of 160 Hz, < 1 kHz
    noise = rng.normal(0, 1500, n)
    x = pulse + noise
    y = tp.pitch_postfilter(x, _frames(40, period, 0.9), 0.8, 2000.0, 0.3)
    assert _lag_corr(y[2000:], period) > _lag_corr(x[2000:], period) + 0.02
    from scipy.signal import butter, sosfiltfilt

    lp = butter(6, 1500, "lowpass", fs=16000, output="sos")
    err = [np.std(sosfiltfilt(lp, z - pulse)[2000:]) for z in (x, y)]
    assert err[1] < 0.8 * err[0]  # b = 0.8 averages two noise draws: std x 0.71 in theory
    hp = butter(6, 4000, "highpass", fs=16000, output="sos")
    assert np.allclose(sosfiltfilt(hp, y)[2000:-2000], sosfiltfilt(hp, x)[2000:-2000], atol=40.0)  # 4-8 kHz kept
