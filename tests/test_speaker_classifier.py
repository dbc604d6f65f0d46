"""Sender-side classification with the shipped encoder and groups: determinism, errors, CLI."""
import json

import numpy as np
import pytest
import soundfile as sf

from pnsc.cli import main as pnsc_main
from pnsc.sender.speaker_classifier import (DECIDE_SECONDS, Classification, SpeakerClassificationError,
                                            SpeakerClassifier, load_groups)
from pnsc.shared.audio import AudioError, load_audio
from tests.conftest import LIBRISPEECH, shared_files



@pytest.fixture(scope="module")
def clf():
    return SpeakerClassifier()


@pytest.fixture(scope="module")
def speech():
    files = shared_files(LIBRISPEECH, "test-other/2033/*/*.flac")
    return np.concatenate([load_audio(f, quiet=True) for f in files[:2]])


def test_shipped_groups_file_is_complete():
    g = load_groups()
    assert g["default_groups"] == 4
    assert sorted(int(c) for c in g["groupings"]) == [2, 3, 4, 5, 6]
    for c, grouping in g["groupings"].items():
        cents = np.asarray(grouping["centroids"])
        assert cents.shape == (int(c), 32)
        assign = grouping["assignment"]
        assert len(assign) == 251  # every LibriSpeech train-clean-100 speaker
        assert set(assign.values()) == set(range(int(c)))
        assert sum(grouping["train_sizes"]) + sum(grouping["validation_sizes"]) == 251


def test_classification_is_deterministic(clf, speech):
    a = clf.classify(speech)
    b = clf.classify(speech.copy())
    c = SpeakerClassifier().classify(speech)
    assert isinstance(a, Classification)
    assert a == b == c
    assert 0 <= a.group < 4 and len(a.distances) == 4
    assert a.distances[a.group] == min(a.distances)
    assert 0.0 <= a.confidence <= 1.0
    assert 1.5 <= a.active_seconds <= 6.0


def test_gain_and_int16_barely_move_the_embedding(clf, speech):
    z = clf.embed_pcm(speech, 6.0)
    cents = clf.centroids
    spacing = min(np.linalg.norm(a - b) for i, a in enumerate(cents) for b in cents[i + 1:])
    for variant in (0.25 * speech, np.round(np.clip(speech, -1, 1) * 32767).astype(np.int16)):
        assert np.linalg.norm(clf.embed_pcm(variant, 6.0) - z) < 0.05 * spacing


def test_bad_audio_gets_clear_errors(clf, speech):
    rng = np.random.default_rng(0)
    with pytest.raises(SpeakerClassificationError, match="no speech"):
        clf.classify(np.zeros(16000 * 5, dtype=np.float32))
    with pytest.raises(SpeakerClassificationError, match="no speech"):
        clf.classify((0.05 * rng.standard_normal(16000 * 5)).astype(np.float32))
    with pytest.raises(SpeakerClassificationError, match="too little active speech"):
        clf.classify_features(clf.active_speech(speech[16000:16000 + 8000], None))  # the tracker's rule
    with pytest.raises(SpeakerClassificationError, match="too short"):
        clf.classify(np.zeros(100, dtype=np.float32))
    with pytest.raises(SpeakerClassificationError, match="NaN"):
        clf.classify(np.full(16000, np.nan, dtype=np.float32))
    assert issubclass(SpeakerClassificationError, AudioError)


def test_short_speech_is_classified_with_its_seconds(clf, speech):
    short = np.concatenate([np.zeros(16000 * 3), speech[16000:16000 + 8000], np.zeros(16000 * 3)])
    c = clf.classify(short)
    assert 0 < c.active_seconds <= 0.55 and c.segments == 1  # at most the 0.5 s of speech (+ window overlap)
    assert 0 <= c.group < 4 and 0.0 <= c.confidence <= 1.0
    full = clf.classify(speech)
    assert full.active_seconds > DECIDE_SECONDS  # long speech: the first 6 s, unchanged rule
    assert c == clf.classify(short.copy())


def test_cli_classify_short_speech_warns(tmp_path, speech, capsys):
    wav = tmp_path / "short.wav"
    sf.write(wav, speech[16000:16000 + 32000], 16000)
    assert pnsc_main(["classify", str(wav), "--json"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert 0 < out["active_seconds"] < DECIDE_SECONDS
    assert f"only {out['active_seconds']:.2f} s of active speech" in cap.err and "less reliable" in cap.err


def test_cli_classify(tmp_path, speech, capsys):
    good = tmp_path / "talker.wav"
    sf.write(good, speech, 16000)
    assert pnsc_main(["classify", str(good), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["groups"] == 4 and out["group"] == SpeakerClassifier().classify(speech).group
    assert pnsc_main(["classify", str(good), "--groups", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == 2
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000 * 4, dtype=np.float32), 16000)
    assert pnsc_main(["classify", str(silent)]) == 2
    assert "no speech" in capsys.readouterr().err
    assert pnsc_main(["classify", str(good), "--groups", "9"]) == 2
    assert "C=9" in capsys.readouterr().err
