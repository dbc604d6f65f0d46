"""Shared fixtures: real LibriSpeech clips bundled with the project, and synthetic voiced signals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SR = 16000


def harmonic_vowel(f0: float, seconds: float = 1.0, formants=((700, 130), (1220, 70), (2600, 160))) -> np.ndarray:
    """Band-limited glottal-like harmonic source (1/k roll-off) through a cascade of formant resonators."""
    t = np.arange(int(SR * seconds)) / SR
    src = sum(np.cos(2 * np.pi * k * f0 * t) / k for k in range(1, int(7000 / f0) + 1))
    y = src
    for freq, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        y = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], y)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="session")
def speech_clip() -> np.ndarray:
    """A few seconds of real speech from the bundled samples."""
    from pnsc.shared.audio import load_audio

    clips = sorted(SAMPLES.glob("*.flac"))
    if not clips:
        pytest.fail(f"no bundled speech under {SAMPLES}")
    return load_audio(clips[0], quiet=True)[: 4 * SR]
