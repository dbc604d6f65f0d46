"""The independent YIN pitch reference (training/lpcnet/pitch_reference.py) on signals of known f0."""
import numpy as np
import pytest

from pnsc.training.lpcnet.pitch_reference import FS, HOP, compare_tracks, synthetic_voice, yin_frames


@pytest.mark.parametrize("f0", [80.0, 113.0, 170.0, 247.0, 333.0, 400.0])
@pytest.mark.parametrize("vowel", [False, True])
def test_steady_f0_is_found_within_a_few_cents(f0, vowel):
    x = synthetic_voice(np.full(FS, f0), vowel=vowel)
    period, voiced = yin_frames(x, 100)
    inner = slice(4, 96)
    assert voiced[inner].all()
    cents = 1200 * np.log2(period[inner] * f0 / FS)
    assert np.max(np.abs(cents)) < 5.0


def test_sweep_follows_the_true_f0():
    n = 2 * FS
    f0 = 80.0 * 5.0 ** (np.arange(n) / n)  # 80 -> 400 Hz
    period, voiced = yin_frames(synthetic_voice(f0), n // HOP)
    truth = FS / f0[np.arange(n // HOP) * HOP]
    inner = slice(3, n // HOP - 3)
    assert voiced[inner].all()
    assert np.max(np.abs(1200 * np.log2(period[inner] / truth[inner]))) < 25.0


def test_noise_and_silence_are_unvoiced():
    noise = np.random.default_rng(0).standard_normal(FS).astype(np.float32) * 0.1
    assert yin_frames(noise, 100)[1].mean() < 0.05
    x = np.concatenate([np.zeros(FS // 2, np.float32), synthetic_voice(np.full(FS // 2, 150.0))])
    voiced = yin_frames(x, 100)[1]
    assert not voiced[:45].any() and voiced[55:96].all()


def test_compare_tracks_counts_octave_and_voicing_errors():
    ref = np.full(10, 100.0)
    ref_v = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    per = np.array([100.0, 101.0, 200.0, 50.0, 130.0, 100.0, 100.0, 100.0, 100.0, 100.0])
    v = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], bool)
    s = compare_tracks(per, v, ref, ref_v)
    assert s["both_voiced"] == 6 and s["voicing_precision"] == pytest.approx(6 / 7)
    assert s["voicing_recall"] == pytest.approx(6 / 8)
    assert s["gross_error_rate"] == pytest.approx(3 / 6)
    assert s["octave_x2_rate"] == pytest.approx(1 / 6) and s["octave_x05_rate"] == pytest.approx(1 / 6)
    assert s["fine_abs_cents_median"] == pytest.approx(0.0)
    assert s["fine_abs_cents_p90"] > 10.0  # the 1 % error: 17 cents


def test_wrong_rate_is_refused():
    with pytest.raises(ValueError, match="16000"):
        yin_frames(np.zeros(1000), 5, fs=8000)
