"""Sample-loop engines behind one interface: the compiled C kernel (default) and the onnxruntime Loop
graph of the exported model (the reference path, about real time on one core).

An engine is stateless; a stream's recurrent state lives in :class:`SynthState` and is passed in, so
many streams (and a decoder switch) can share one loaded model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from .model import FRAME_SIZE, LPC_ORDER, ModelFileError

PRECISIONS = ("fp32", "int8")
KERNEL_CHOICES = ("avx512", "avx2", "generic", "onnx")  # what PNSC_KERNEL / kernel= accept


class KernelUnavailable(Exception):
    """The requested kernel path cannot run here (extension not built, or the CPU lacks the instructions)."""


@dataclass
class SynthState:
    """Recurrent state of one stream: GRU states, the last 16 output samples (most recent first, the LPC
    history, pre-emphasized int16 scale) and the previous excitation's mu-law index."""

    ha: np.ndarray
    hb: np.ndarray
    hist: np.ndarray = field(default_factory=lambda: np.zeros(LPC_ORDER, np.float32))
    exc: np.ndarray = field(default_factory=lambda: np.array([128], np.int32))

    @classmethod
    def zeros(cls, n_a: int, n_b: int) -> "SynthState":
        return cls(np.zeros(n_a, np.float32), np.zeros(n_b, np.float32))

    def copy(self) -> "SynthState":
        return SynthState(self.ha.copy(), self.hb.copy(), self.hist.copy(), self.exc.copy())


def sampling_boost(corr: float) -> np.float32:
    """LPCNet's temperature factor from the pitch correlation, in float32 as the exported graph computes it."""
    c = np.float32(corr) * np.float32(1.5) - np.float32(0.5)
    return np.float32(1.0) + max(np.float32(0.0), c)


class OnnxLoopBackend:
    """The exported 160-sample ONNX Loop graph run by onnxruntime (float32 arithmetic, fp16-stored weights)."""

    kernel = "onnx"
    precision = "fp32"

    def __init__(self, model):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(model.files.sample), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelFileError(f"{model.files.sample}: corrupt ONNX file ({str(exc).splitlines()[0][:200]})") from None
        self.n_a, self.n_b = model.size

    def run_frame(self, cond: np.ndarray, lpc: np.ndarray, corr: float, uniforms: np.ndarray,
                  st: SynthState) -> np.ndarray:
        pcm, ha, hb, hist, exc = self.session.run(None, {
            "cond": np.asarray(cond, np.float32)[None], "lpc": np.asarray(lpc, np.float32),
            "corr": np.array([corr], np.float32), "uniforms": np.asarray(uniforms, np.float32),
            "ha": st.ha[None], "hb": st.hb[None], "hist": st.hist, "exc": st.exc.astype(np.int64)})
        st.ha[:] = ha[0]
        st.hb[:] = hb[0]
        st.hist[:] = hist
        st.exc[:] = exc
        return pcm


def requested_kernel(kernel: str | None) -> str | None:
    """``kernel`` argument, else ``$PNSC_KERNEL``, validated; None = best available."""
    k = kernel if kernel is not None else (os.environ.get("PNSC_KERNEL") or None)
    if k is not None and k not in KERNEL_CHOICES:
        raise ValueError(f"unknown kernel {k!r} (PNSC_KERNEL / kernel= takes one of {', '.join(KERNEL_CHOICES)})")
    return k


def make_backend(model, precision: str, kernel: str | None):
    """Engine for a loaded model; ``kernel`` None/avx512/avx2/generic = compiled C, onnx = ORT reference."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (one of {', '.join(PRECISIONS)})")
    kernel = requested_kernel(kernel)
    if kernel == "onnx":
        return OnnxLoopBackend(model)
    from .ckernel import CBackend

    try:
        return CBackend(model, precision, kernel)
    except KernelUnavailable as exc:
        if kernel is not None:
            raise
        import sys

        print(f"pnsc: warning: {exc}; using the slow onnxruntime sample loop", file=sys.stderr)
        return OnnxLoopBackend(model)
