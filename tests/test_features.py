import numpy as np
import pytest

from pnsc.shared.constants import CORR_INDEX, FEATURE_DIM, PACKET_SAMPLES, PERIOD_INDEX
from pnsc.shared.features import FeatureExtractor, extract_features, num_frames
from pnsc.shared.lpc import lpc_from_cepstrum, lpc_residual
from tests.conftest import SR, harmonic_vowel


@pytest.mark.parametrize("f0", [70.0, 110.0, 175.0, 240.0, 330.0])
def test_pitch_of_synthetic_vowels_within_2_percent(f0):
    feats = extract_features(harmonic_vowel(f0))
    period = feats[8:-4, PERIOD_INDEX]  # skip the start-up frames and the zero-padded tail
    assert np.median(np.abs(period / (SR / f0) - 1.0)) < 0.02
    assert np.mean(np.abs(period / (SR / f0) - 1.0) < 0.02) > 0.95
    assert np.median(feats[8:-4, CORR_INDEX]) > 0.8


@pytest.mark.parametrize("f0", [100.0, 200.0])
def test_pitch_of_pulse_train(f0):
    x = np.zeros(SR, dtype=np.float32)
    x[np.arange(0, SR, SR / f0).astype(int)] = 0.5
    period = extract_features(x)[8:-4, PERIOD_INDEX]
    assert np.median(np.abs(period / (SR / f0) - 1.0)) < 0.02


@pytest.mark.parametrize("n", [0, 1, 159, 160, 639, 640, 641, 16000])
def test_frame_count_padding_rule(n):
    feats = extract_features(np.zeros(n, dtype=np.float32))
    assert feats.shape == (num_frames(n), FEATURE_DIM)
    assert len(feats) == 4 * -(-n // PACKET_SAMPLES)


def test_streaming_is_identical_to_whole_file(speech_clip):
    whole = extract_features(speech_clip)
    rng = np.random.default_rng(1)
    ext = FeatureExtractor()
    parts, pos = [], 0
    while pos < len(speech_clip):
        step = int(rng.integers(1, 1500))
        parts.append(ext.push(speech_clip[pos : pos + step]))
        pos += step
    parts.append(ext.flush())
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize(
    "name,signal",
    [
        ("silence", np.zeros(SR, dtype=np.float32)),
        ("dc", np.full(SR, 0.3, dtype=np.float32)),
        ("clipped", np.clip(harmonic_vowel(150.0) * 8.0, -1.0, 1.0)),
        ("white noise", np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32)),
        ("full scale square", np.sign(np.sin(2 * np.pi * 100 * np.arange(SR) / SR)).astype(np.float32)),
        ("int16", (harmonic_vowel(120.0) * 32767).astype(np.int16)),
    ],
)
def test_edge_signals_give_finite_sane_features(name, signal):
    feats = extract_features(signal)
    assert np.all(np.isfinite(feats)), name
    assert np.all((feats[:, PERIOD_INDEX] >= 32) & (feats[:, PERIOD_INDEX] <= 256))
    assert np.all((feats[:, CORR_INDEX] >= 0) & (feats[:, CORR_INDEX] <= 1))


def test_white_noise_is_unvoiced_and_silence_has_low_energy():
    noise = extract_features(np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32))
    assert np.median(noise[8:, CORR_INDEX]) < 0.35
    silence = extract_features(np.zeros(SR, dtype=np.float32))
    speech = extract_features(harmonic_vowel(120.0))
    assert silence[:, 0].max() < speech[8:, 0].min() - 3.0


def test_lpc_from_cepstrum_predicts_speech(speech_clip):
    """The LPC derived from the cepstrum must whiten the pre-emphasized signal substantially."""
    from pnsc.shared.dsp import preemphasize

    feats = extract_features(speech_clip)
    a = lpc_from_cepstrum(feats[:, :18])
    x, _ = preemphasize(speech_clip * 32768.0)
    gains = []
    for t in range(20, len(x) // 160 - 1):
        seg = x[t * 160 : (t + 1) * 160]
        if np.mean(seg**2) < 1e4:
            continue
        res = lpc_residual(seg, x[t * 160 - 16 : t * 160], a[t].astype(np.float64))
        gains.append(10 * np.log10(np.mean(seg**2) / np.mean(res**2)))
    assert len(gains) > 50
    assert np.median(gains) > 6.0
