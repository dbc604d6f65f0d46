"""Front end and VAD of the speaker encoder on real and synthetic audio."""

import numpy as np
import pytest

from pnsc.sender import speaker_frontend as fe
from pnsc.shared.audio import load_audio
from tests.conftest import LIBRISPEECH, shared_files



@pytest.fixture(scope="module")
def speech():
    return load_audio(shared_files(LIBRISPEECH, "test-other/1998/*/*.flac")[0], quiet=True)


def test_framing_matches_spectrogram(speech):
    spec = fe.log_spectrogram(speech)
    assert spec.shape == (fe.num_frames(len(speech)), fe.N_BINS)
    assert len(fe.active_frames(speech)) == len(spec)
    assert fe.num_frames(399) == 0 and fe.num_frames(400) == 1 and fe.num_frames(560) == 2


def test_vad_finds_speech_and_rejects_silence_noise_dc(speech):
    act = fe.active_frames(speech)
    assert 0.4 < act.mean() < 0.95
    rng = np.random.default_rng(0)
    assert not fe.active_frames(np.zeros(48000)).any()
    assert not fe.active_frames(np.full(48000, 0.3) + 1e-5 * rng.standard_normal(48000)).any()  # DC
    assert not fe.active_frames(0.1 * rng.standard_normal(48000)).any()  # stationary noise
    # speech with a DC offset: same decisions as without it
    assert np.array_equal(fe.active_frames(speech + 0.2), act)


def test_int16_and_float_inputs_agree(speech):
    pcm16 = np.round(speech * 32767).astype(np.int16)
    a = fe.log_spectrogram(pcm16)
    b = fe.log_spectrogram(pcm16.astype(np.float32) / 32768.0)
    assert np.allclose(a, b, atol=1e-5)


def test_split_segments_merges_short_tail():
    x = np.zeros((700, 3))
    assert [len(s) for s in fe.split_segments(x, 300, 150)] == [300, 400]
    assert [len(s) for s in fe.split_segments(x[:460], 300, 150)] == [300, 160]
    assert fe.split_segments(x[:100], 300, 150) == []
