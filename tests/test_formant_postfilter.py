"""Short-term (formant) postfilter: streaming = offline, a direct-form reference, identity, valley noise, errors."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SR, harmonic_vowel

from pnsc.receiver.postfilter import FormantPostfilter, formant_postfilter, lpcs_from_features
from pnsc.shared.constants import FRAME_SIZE
from pnsc.shared.features import extract_features
from pnsc.shared.quantizer import quantize_features


@pytest.fixture(scope="module")
def speech_and_lpcs(speech_clip):
    x = speech_clip[: 2 * SR].astype(np.float64) * 32768.0
    lpcs = lpcs_from_features(quantize_features(extract_features(speech_clip[: 2 * SR]))[1])
    assert len(lpcs) * FRAME_SIZE >= x.size
    return x, lpcs


def test_streaming_in_chunks_equals_one_shot(speech_and_lpcs):
    x, lpcs = speech_and_lpcs
    ref = formant_postfilter(x, lpcs, 0.6, 0.8, 0.2)
    pf = FormantPostfilter(0.6, 0.8, 0.2)
    out, t, sizes = [], 0, [1, 3, 2, 7, 1, 5]
    n = x.size // FRAME_SIZE
    i = 0
    while t < n:
        k = min(sizes[i % len(sizes)], n - t)
        out.append(pf.process(x[t * FRAME_SIZE:(t + k) * FRAME_SIZE], lpcs[t:t + k]))
        t, i = t + k, i + 1
    np.testing.assert_allclose(np.concatenate(out), ref[:n * FRAME_SIZE], rtol=0, atol=1e-9)
    # the filter actually did something, and float32 in gives float32 out with the same result
    assert np.max(np.abs(ref - x)) > 100.0
    r32 = formant_postfilter(x.astype(np.float32), lpcs, 0.6, 0.8, 0.2)
    assert r32.dtype == np.float32
    np.testing.assert_allclose(r32, ref, rtol=0, atol=0.05)


def _direct_form_reference(x, lpcs, g_n, g_d, mu, alpha):
    """Sample-by-sample: y[n] = sum b_k x[n-k] - sum d_k y[n-k] with each frame's (b, d), gain per frame."""
    k = np.arange(1, 17)
    y, out, gain = np.zeros(x.size), np.zeros(x.size), 1.0
    for t in range(x.size // FRAME_SIZE):
        num = np.r_[1.0, -lpcs[t] * g_n ** k]
        b = np.r_[num, 0.0] - mu * np.r_[0.0, num]
        d = np.r_[1.0, -lpcs[t] * g_d ** k]
        s = t * FRAME_SIZE
        for n in range(s, s + FRAME_SIZE):
            acc = sum(b[j] * x[n - j] for j in range(len(b)) if n - j >= 0)
            y[n] = acc - sum(d[j] * y[n - j] for j in range(1, len(d)) if n - j >= 0)
        seg, ys = x[s:s + FRAME_SIZE], y[s:s + FRAME_SIZE]
        target = np.sqrt((seg @ seg + 1e-9 * FRAME_SIZE) / (ys @ ys + 1e-9 * FRAME_SIZE))
        for n in range(s, s + FRAME_SIZE):
            gain = alpha * gain + (1 - alpha) * target
            out[n] = y[n] * gain
    return out


def test_matches_direct_form_reference_across_coefficient_changes(speech_and_lpcs):
    x, lpcs = speech_and_lpcs
    s = 40 * FRAME_SIZE  # voiced speech, LPCs changing every frame
    seg, lp = x[s:s + 4 * FRAME_SIZE], lpcs[40:44]
    assert np.max(np.abs(np.diff(lp, axis=0))) > 0.05
    got = formant_postfilter(seg, lp, 0.55, 0.8, 0.3, gain_alpha=0.9)
    np.testing.assert_allclose(got, _direct_form_reference(seg, lp, 0.55, 0.8, 0.3, 0.9), rtol=0, atol=1e-6)


@pytest.mark.parametrize("g", [0.5, 0.9, 1.0])
def test_equal_g_and_no_tilt_is_identity(speech_and_lpcs, g):
    x, lpcs = speech_and_lpcs
    np.testing.assert_allclose(formant_postfilter(x, lpcs, g, g, 0.0), x, rtol=0, atol=1e-6)


def _valley_nsr_and_level(noisy, out, f0):
    """Noise (inter-harmonic bins) in the valleys between formants over all harmonic power, in dB; level in dB."""
    w = np.hanning(out.size)
    spec = np.abs(np.fft.rfft(out * w)) ** 2
    freqs = np.fft.rfftfreq(out.size, 1 / SR)
    dist = np.abs(freqs / f0 - np.round(freqs / f0)) * f0  # Hz to the nearest harmonic
    harm, inter = dist < 8.0, dist > 25.0
    valley = (freqs > 1650) & (freqs < 3000)  # between F2 (1220 Hz) and F3, where the LPC envelope dips
    nsr = 10 * np.log10(spec[valley & inter].sum() / spec[harm & (freqs > 60)].sum())
    return nsr, 20 * np.log10(np.std(out) / np.std(noisy))


def test_vowel_in_noise_deepens_valleys_keeps_level():
    f0 = 125.0
    clean = harmonic_vowel(f0, seconds=1.0).astype(np.float64)
    noise = np.random.default_rng(3).standard_normal(clean.size) * np.std(clean) * 10 ** (-25 / 20)
    noisy = clean + noise
    lpcs = lpcs_from_features(extract_features(noisy.astype(np.float32)))
    out = formant_postfilter(noisy, lpcs, 0.6, 0.8, 0.2)
    sl = slice(2 * FRAME_SIZE, None)  # after the gain has settled
    nsr_in, _ = _valley_nsr_and_level(noisy[sl], noisy[sl], f0)
    nsr_out, level = _valley_nsr_and_level(noisy[sl], out[sl], f0)
    assert nsr_out < nsr_in - 2.0, (nsr_in, nsr_out)  # measured: 3.4 dB deeper
    assert abs(level) < 1.0, level


@pytest.mark.parametrize("kw, msg", [
    (dict(g_n=0.0), "g_n must be in"), (dict(g_n=1.2, g_d=1.2), "g_n must be in"),
    (dict(g_d=1.5), "g_d must be in"), (dict(g_n=0.9, g_d=0.8), "g_n <= g_d"),
    (dict(mu=1.0), "mu must be in"), (dict(mu=-0.1), "mu must be in"),
    (dict(gain_alpha=1.0), "gain_alpha must be in"), (dict(g_n=float("nan")), "must be finite"),
])
def test_bad_parameters_raise(kw, msg):
    with pytest.raises(ValueError, match=msg):
        FormantPostfilter(**kw)


def test_bad_inputs_raise(speech_and_lpcs):
    x, lpcs = speech_and_lpcs
    pf = FormantPostfilter()
    with pytest.raises(ValueError, match="one predictor per 160-sample frame"):
        pf.process(x[:5 * FRAME_SIZE], lpcs[:4])
    with pytest.raises(ValueError, match=r"\(16,\) predictor"):
        pf.process(x[:FRAME_SIZE], lpcs[0, :10])
    with pytest.raises(ValueError, match="non-finite"):
        pf.process(np.full(FRAME_SIZE, np.nan), lpcs[0])
    with pytest.raises(ValueError, match="1-D"):
        pf.process(x[:FRAME_SIZE].reshape(2, -1), lpcs[0])


@pytest.fixture(scope="module")
def coded_speech(speech_clip):
    return quantize_features(extract_features(speech_clip[8000:24000]))[1]


def test_decoder_default_unchanged_and_option_applies_the_postfilter(coded_speech):
    from pnsc.receiver.runtime import StreamingDecoder

    feats = coded_speech
    plain = StreamingDecoder("lpcnet-bl-s", seed=4).decode(feats)
    assert np.array_equal(StreamingDecoder("lpcnet-bl-s", seed=4, postfilter=None).decode(feats), plain)
    dec = StreamingDecoder("lpcnet-bl-s", seed=4, postfilter=FormantPostfilter(0.7, 0.85, 0.0))
    filtered = dec.decode(feats)
    assert filtered.dtype == np.int16 and filtered.shape == plain.shape
    assert np.mean(filtered != plain) > 0.5
    # exactly the offline filter on the plain output, frame t with frame t's predictor
    offline = formant_postfilter(plain.astype(np.float64), lpcs_from_features(feats), 0.7, 0.85, 0.0)
    assert np.max(np.abs(filtered.astype(np.int32) - np.clip(np.round(offline), -32768, 32767))) <= 1
    dec.reset()  # reset restarts the postfilter too: a second pass is identical
    assert np.array_equal(dec.decode(feats), filtered)


def test_parse_postfilter_spec():
    from pnsc.receiver.postfilter import parse_postfilter

    assert parse_postfilter("off") is None and parse_postfilter("none") is None
    assert parse_postfilter("0.7,0.85,0") == (0.7, 0.85, 0.0)
    with pytest.raises(ValueError, match="G_N,G_D,MU"):
        parse_postfilter("0.7,0.85")
    with pytest.raises(ValueError, match="g_n <= g_d"):
        parse_postfilter("0.9,0.5,0")
