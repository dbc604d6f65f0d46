"""The scorer reads integer PCM (a decoder's int16 output) as int16 scale: DNSMOS, which clips its input to
[-1, 1], then sees the same signal as from float input (it used to see a clipped square wave)."""
from __future__ import annotations

import numpy as np
import pytest

from pnsc.evaluation.metrics import Scorer, check_signal
from tests.conftest import SAMPLES


def test_int16_is_scaled_to_unit_range():
    x = (np.sin(np.arange(32000) / 10.0) * 12000).astype(np.int16)
    assert np.allclose(check_signal(x), x / 32768.0)
    assert np.array_equal(check_signal(x / 32768.0), x / 32768.0)


def test_dnsmos_of_int16_equals_float():
    pytest.importorskip("speechmos")
    from pnsc.shared.audio import load_audio

    pcm = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)[:48000]
    i16 = np.clip(np.round(pcm * 32768.0), -32768, 32767).astype(np.int16)
    sc = Scorer(metrics=("stoi", "dnsmos_ovrl"))
    a, b = sc.score(pcm, i16 / 32768.0), sc.score(pcm, i16)
    assert b["dnsmos_ovrl"] == pytest.approx(a["dnsmos_ovrl"], abs=1e-6)
    assert b["stoi"] == pytest.approx(a["stoi"], abs=1e-9)
