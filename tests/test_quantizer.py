import numpy as np
import pytest

from pnsc.shared.constants import CORR_INDEX, PACKET_BYTES, PERIOD_INDEX, PITCH_MIN
from pnsc.shared.features import extract_features
from pnsc.shared.quantizer import (
    CodebookError,
    PacketDecoder,
    PacketEncoder,
    load_codebooks,
    periods_from_code,
    pitch_code,
    quantize_features,
)
from tests.conftest import SR, harmonic_vowel


@pytest.fixture(scope="module")
def cb():
    return load_codebooks()


@pytest.mark.parametrize("n", [0, 1, 640, 641, 5 * SR + 17])
def test_eight_bytes_per_40_ms(cb, n):
    x = np.random.default_rng(n).normal(0, 0.05, n).astype(np.float32)
    packets = PacketEncoder(cb).encode(extract_features(x))
    assert packets.shape == (-(-n // 640), PACKET_BYTES)
    assert packets.dtype == np.uint8


def test_decoding_is_deterministic_and_streamable(cb, speech_clip):
    feats = extract_features(speech_clip)
    packets, deq = quantize_features(feats, cb)
    again = PacketDecoder(cb).decode(packets)
    np.testing.assert_array_equal(deq, again)
    dec = PacketDecoder(cb)
    pieces = [dec.decode(packets[i : i + 3]) for i in range(0, len(packets), 3)]
    np.testing.assert_array_equal(np.concatenate(pieces), deq)
    enc = PacketEncoder(cb)
    streamed = np.concatenate([enc.encode(feats[i : i + 8]) for i in range(0, len(feats), 8)])
    np.testing.assert_array_equal(streamed, packets)


def test_quantized_cepstrum_is_close(cb, speech_clip):
    feats = extract_features(speech_clip)
    _, deq = quantize_features(feats, cb)
    active = feats[:, 0] > np.percentile(feats[:, 0], 30)
    # RMS log-band distortion in dB (orthonormal DCT: cepstral and band-log errors are equal).
    dist = 10.0 * np.sqrt(np.mean((feats[active, :18] - deq[active, :18]) ** 2, axis=1))
    assert np.mean(dist) < 4.0
    spread = 10.0 * np.sqrt(np.mean((feats[active, :18] - feats[active, :18].mean(0)) ** 2, axis=1))
    assert np.mean(dist) < 0.5 * np.mean(spread)


def test_voiced_pitch_survives_quantization(cb):
    f0 = 150.0
    feats = extract_features(harmonic_vowel(f0, seconds=2.0))
    _, deq = quantize_features(feats, cb)
    period = deq[8:-4, PERIOD_INDEX]
    assert np.median(np.abs(period / (SR / f0) - 1.0)) < 0.03  # 21 steps/octave: <= 1.7% rounding
    assert np.all(deq[8:-4, CORR_INDEX] >= cb.corr_levels[1])


def test_unvoiced_is_pitch_code_zero(cb):
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32)
    _, deq = quantize_features(extract_features(noise), cb)
    assert np.mean(deq[8:, PERIOD_INDEX] == PITCH_MIN) > 0.9
    assert np.all(periods_from_code(0, 5) == PITCH_MIN)


def test_rejects_bad_shapes(cb):
    with pytest.raises(ValueError, match="4k"):
        PacketEncoder(cb).encode(np.zeros((5, 20)))
    with pytest.raises(ValueError):
        PacketEncoder(cb).encode(np.zeros((4, 19)))


def test_missing_or_wrong_codebook_file(tmp_path):
    with pytest.raises(CodebookError, match="not found"):
        load_codebooks(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, version=np.int32(99))
    with pytest.raises(CodebookError, match="version"):
        load_codebooks(bad)


def test_pitch_code_ignores_unvoiced_frames_of_a_voiced_superframe(cb, monkeypatch):
    # a voicing onset: three voiced frames at period 100, one unvoiced frame whose "period" is PITCH_MIN
    feats = np.zeros((4, 20), np.float32)
    feats[:, PERIOD_INDEX] = [PITCH_MIN, 100.0, 100.0, 100.0]
    feats[:, CORR_INDEX] = [0.05, 0.8, 0.8, 0.8]
    pitch, mod = pitch_code(feats[:, PERIOD_INDEX], feats[:, CORR_INDEX], voiced_only=True)
    assert pitch != 0
    assert np.all(np.abs(periods_from_code(pitch, mod)[1:] / 100.0 - 1.0) < 0.02)
    # the shipped rule (all four frames, what the decoders adapted to) is pulled off towards PITCH_MIN
    old = periods_from_code(*pitch_code(feats[:, PERIOD_INDEX], feats[:, CORR_INDEX], voiced_only=False))
    assert np.all(old[1:] < 90.0)
    import pnsc.shared.quantizer as q
    assert q.PITCH_LINE_VOICED_ONLY is True
    _, deq = quantize_features(feats, cb)  # the packet encoder follows the module's switch
    assert np.all(np.abs(deq[1:, PERIOD_INDEX] / 100.0 - 1.0) < 0.02)
    monkeypatch.setattr(q, "PITCH_LINE_VOICED_ONLY", False)
    _, deq = quantize_features(feats, cb)
    assert np.all(deq[1:, PERIOD_INDEX] < 90.0)


def test_pitch_code_of_fully_voiced_superframe_is_the_plain_line_fit():
    periods = np.array([97.0, 99.0, 101.5, 103.0])
    pitch, mod = pitch_code(periods, np.full(4, 0.9))
    log_p = np.log2(periods)
    pos = np.arange(4) - 1.5
    assert pitch == int(np.rint(21 * (log_p.mean() - np.log2(PITCH_MIN))))
    assert mod == int(np.rint((pos @ log_p / (pos @ pos)) / 0.015) + 3)
    assert pitch_code(periods, np.full(4, 0.2)) == (0, 3)  # mean correlation below VOICED_CORR: unvoiced
