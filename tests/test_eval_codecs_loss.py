"""Peer codecs through the Debian tools, Opus concealment under loss, loss patterns."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from pnsc.evaluation.loss import LossCondition, expand_mask, loss_mask

SR = 16000
needs_codec2 = pytest.mark.skipif(shutil.which("c2enc") is None, reason="Debian package codec2 not installed")
needs_opus = pytest.mark.skipif(shutil.which("opusenc") is None, reason="Debian package opus-tools not installed")


@needs_codec2
@pytest.mark.parametrize("name,bps,max_lag", [("codec2-1600", 1600, 800), ("codec2-700C", 700, 800)])
def test_codec2_round_trip(speech_clip, name, bps, max_lag):
    from pnsc.evaluation.align import estimate_lag
    from pnsc.evaluation.peers import PEERS

    y, rate = PEERS[name].run(speech_clip)
    assert rate == bps
    assert abs(len(y) - len(speech_clip)) <= 640  # whole 40 ms frames
    a = estimate_lag(speech_clip, y)
    assert 0 <= a.lag <= max_lag
    # 8 kHz codec: nothing above 4 kHz comes back
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert spec[f > 4200].sum() < 1e-3 * spec.sum()


@needs_opus
@pytest.mark.parametrize("name,nominal", [("opus-6k", 6000), ("opus-9k", 9000)])
def test_opus_round_trip_measures_payload_bitrate(speech_clip, name, nominal):
    from pnsc.evaluation.align import estimate_lag
    from pnsc.evaluation.peers import PEERS

    y, rate = PEERS[name].run(speech_clip)
    assert 0.6 * nominal < rate < 1.2 * nominal
    assert len(y) == len(speech_clip)
    a = estimate_lag(speech_clip, y)
    assert abs(a.lag) <= 2 and a.corr > 0.7


@needs_opus
def test_opus_loss_uses_libopus_concealment(speech_clip):
    from pnsc.evaluation.peers import PEERS

    p = PEERS["opus-9k"]
    clean, _ = p.run(speech_clip)
    none = p.run_with_loss(speech_clip, lambda n: np.zeros(n, bool))
    # libopus at 16 kHz vs opusdec (which resamples its own way): same length, same timing, close waveform
    assert len(none) == len(clean)
    assert np.corrcoef(none, clean)[0, 1] > 0.9
    half = p.run_with_loss(speech_clip, lambda n: np.arange(n) % 2 == 0)
    assert len(half) == len(clean)
    assert 0.05 < np.mean((half - clean) ** 2) / np.mean(clean ** 2) < 2.0
    with pytest.raises(Exception, match="only available for Opus"):
        PEERS["codec2-1600"].run_with_loss(speech_clip, lambda n: np.zeros(n, bool))


@pytest.mark.parametrize("rate,burst", [(0.1, 1.0), (0.2, 1.0), (0.1, 3.0), (0.3, 4.0)])
def test_loss_mask_rate_and_burst_length(rate, burst):
    m = loss_mask(200_000, LossCondition(rate, burst, seed=1))
    assert m.mean() == pytest.approx(rate, abs=0.01)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], m.astype(int), [0]])))
    runs = edges[1::2] - edges[0::2]
    expected = 1 / (1 - rate) if burst <= 1 else burst  # geometric runs for independent loss
    assert runs.mean() == pytest.approx(expected, rel=0.05)
    np.testing.assert_array_equal(m, loss_mask(200_000, LossCondition(rate, burst, seed=1)))
    assert not loss_mask(100, LossCondition(0.0, burst)).any()


def test_expand_mask_maps_40ms_slots_to_20ms_packets():
    m = np.array([True, False, True])
    np.testing.assert_array_equal(expand_mask(m, 6, 0.02), [True, True, False, False, True, True])
