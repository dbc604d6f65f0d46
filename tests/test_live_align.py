"""pnsc.live.align: the delay of the played audio behind the sent audio."""
from __future__ import annotations

import numpy as np
import pytest

from pnsc.live.align import aligned, estimate_delay


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts with a syllable-rate envelope (distinct energy contour, like speech)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    env = np.repeat(rng.uniform(0.0, 1.0, n // 1600 + 1) ** 3, 1600)[:n]
    return (0.3 * env * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("seconds,delay_ms,tail_s", [(1.0, 180, 3.0), (1.0, 400, 0.5), (6.0, 250, 2.0)])
def test_delay_found_even_with_a_long_silent_tail(seconds, delay_ms, tail_s):
    ref = _speechlike(seconds, seed=int(delay_ms))
    delay = delay_ms * 16
    played = np.concatenate([np.zeros(delay, np.float32), ref, np.zeros(int(tail_s * 16000), np.float32)])
    played += 1e-4 * np.random.default_rng(1).standard_normal(len(played)).astype(np.float32)  # room noise
    got = estimate_delay(ref, played)
    assert got == delay
    assert np.allclose(aligned(played, got, len(ref)), ref, atol=1e-3)


def test_empty_inputs_give_zero_delay():
    assert estimate_delay(np.zeros(0), np.ones(1600)) == 0
    assert estimate_delay(np.ones(1600), np.zeros(0)) == 0
