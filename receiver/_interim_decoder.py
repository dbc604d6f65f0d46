"""INTERIM stand-in for ``pnsc.receiver.runtime.StreamingDecoder`` over the reference decoder's ONNX
sessions (slow). Deleted once the real-time runtime lands; same interface."""
from __future__ import annotations

import numpy as np

from pnsc.receiver.reference_decoder import CONTEXT, ReferenceDecoder
from pnsc.shared.lpc import lpc_from_cepstrum


class StreamingDecoder:
    lookahead_frames = CONTEXT

    def __init__(self, family, group=None, *, precision="fp32", seed=0, models_dir=None, kernel=None):
        self.seed, self.models_dir, self.kernel = seed, models_dir, "onnx-reference"
        self._cache: dict = {}
        self.switch(family, group)
        self.reset()

    def switch(self, family, group) -> None:
        key = (family, group if family.startswith("plpcnet") else None)
        if key not in self._cache:
            self._cache[key] = ReferenceDecoder.from_manifest(key[0], key[1], self.models_dir, seed=self.seed)
        self._dec = self._cache[key]
        self.family, self.group, self.name = key[0], key[1], self._dec.entry.name

    def reset(self) -> None:
        d = self._dec
        self._win: list[np.ndarray] = []
        self._n = 0
        self._rng = np.random.default_rng(self.seed)
        self._state = {"ha": np.zeros((1, d.n_a), np.float32), "hb": np.zeros((1, d.n_b), np.float32),
                       "hist": np.zeros(16, np.float32), "exc": np.array([128], np.int64)}
        self._mem = 0.0

    def _synth(self) -> np.ndarray:
        win = np.stack(self._win[-(2 * CONTEXT + 1):])
        cond = self._dec.frame.run(["cond"], {"features": win[None]})[0][0]
        f = win[CONTEXT]
        lpc = lpc_from_cepstrum(f[None, :18])[0].astype(np.float32)
        pcm, ha, hb, hist, exc = self._dec.sample.run(None, {
            "cond": cond[:1], "lpc": lpc, "corr": f[19:20], "uniforms": self._rng.random(160, dtype=np.float32),
            **self._state})
        self._state = {"ha": ha, "hb": hb, "hist": hist, "exc": exc}
        y = np.nan_to_num(pcm.astype(np.float64), nan=0.0, posinf=32767.0, neginf=-32768.0)
        out = np.empty(160)
        m = self._mem
        for i, v in enumerate(y):
            m = v + 0.85 * m
            out[i] = m
        self._mem = m
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)

    def push(self, frame) -> np.ndarray:
        f = np.asarray(frame, np.float32).reshape(20)
        if self._n == 0:
            self._win = [f] * (CONTEXT + 1)
        else:
            self._win.append(f)
            del self._win[:-(2 * CONTEXT + 1)]
        self._n += 1
        if len(self._win) < 2 * CONTEXT + 1:
            return np.zeros(0, np.int16)
        return self._synth()

    def flush(self) -> np.ndarray:
        if self._n == 0:
            return np.zeros(0, np.int16)
        out = []
        last = self._win[-1]
        for _ in range(min(CONTEXT, self._n)):
            self._win.append(last)
            del self._win[:-(2 * CONTEXT + 1)]
            if len(self._win) >= 2 * CONTEXT + 1:
                out.append(self._synth())
        self._n = 0
        return np.concatenate(out) if out else np.zeros(0, np.int16)
