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

from pnsc.receiver.sampling import GraphFloorError, check_pdf_floor, loop_graph_floor, loop_graph_with_floor
from pnsc.shared.constants import LTP_HISTORY, PDF_FLOOR

from .model import FRAME_SIZE, LPC_ORDER, ModelFileError

PRECISIONS = ("fp32", "int8")
KERNEL_CHOICES = ("avx512", "avx2", "generic", "onnx")  # what PNSC_KERNEL / kernel= accept


class KernelUnavailable(Exception):
    """The requested kernel path cannot run here (extension not built, or the CPU lacks the instructions)."""


@dataclass
class SynthState:
    """Recurrent state of one stream: GRU states, the last 16 output samples (most recent first, the LPC
    history, pre-emphasized int16 scale), the previous excitation's mu-law index and the last
    ``LTP_HISTORY`` excitations drawn (oldest first; 128 before the start), which decoders with LTP taps
    read one pitch lag back (the others leave it as it is)."""

    ha: np.ndarray
    hb: np.ndarray
    hist: np.ndarray = field(default_factory=lambda: np.zeros(LPC_ORDER, np.float32))
    exc: np.ndarray = field(default_factory=lambda: np.array([128], np.int32))
    past: np.ndarray = field(default_factory=lambda: np.full(LTP_HISTORY, 128, np.int32))

    @classmethod
    def zeros(cls, n_a: int, n_b: int) -> "SynthState":
        return cls(np.zeros(n_a, np.float32), np.zeros(n_b, np.float32))

    def copy(self) -> "SynthState":
        return SynthState(self.ha.copy(), self.hb.copy(), self.hist.copy(), self.exc.copy(), self.past.copy())


def require_period(period: float | None) -> float:
    """The frame's pitch period, which a decoder with LTP taps needs for its lag (ValueError without it)."""
    if period is None:
        raise ValueError("this decoder has LTP taps: run_frame needs the frame's pitch period (period=)")
    return period


def sampling_boost(corr: float) -> np.float32:
    """LPCNet's temperature factor from the pitch correlation, in float32 as the exported graph computes it."""
    c = np.float32(corr) * np.float32(1.5) - np.float32(0.5)
    return np.float32(1.0) + max(np.float32(0.0), c)


class OnnxLoopBackend:
    """The exported 160-sample ONNX Loop graph run by onnxruntime (float32 arithmetic, fp16-stored weights).

    The graph carries its probability floor as a constant; another ``pdf_floor`` runs a copy of the graph
    with that constant rewritten (``pnsc.receiver.sampling.loop_graph_with_floor``), one session per floor."""

    kernel = "onnx"
    precision = "fp32"

    def __init__(self, model):
        self.path = model.files.sample
        session = self._open(str(self.path))  # a corrupt file fails here, with onnxruntime's reason
        try:
            self.graph_floor: float | None = loop_graph_floor(self.path)
        except GraphFloorError:
            self.graph_floor = None  # an export without the floor pattern: no pdf_floor can be set
        self._by_floor: dict[np.float32, ort.InferenceSession] = {}
        if self.graph_floor is not None and np.float32(self.graph_floor) == np.float32(PDF_FLOOR):
            self._by_floor[np.float32(PDF_FLOOR)] = session  # else dropped: the default floor needs a rewrite
        self.n_a, self.n_b = model.size
        self.ltp_taps = model.ltp_taps
        names = {i.name for i in session.get_inputs()}
        if ({"period", "past"} <= names) != bool(self.ltp_taps):
            raise ModelFileError(f"{self.path}: its loop graph {'lacks' if self.ltp_taps else 'has'} the LTP inputs "
                                 f"period/past, but its weights have {self.ltp_taps} LTP taps: re-export the decoder")

    def _open(self, src) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelFileError(f"{self.path}: corrupt ONNX file ({str(exc).splitlines()[0][:200]})") from None

    def session_for(self, pdf_floor: float) -> ort.InferenceSession:
        """The session whose graph samples with ``pdf_floor``."""
        f = np.float32(check_pdf_floor(pdf_floor))
        if f not in self._by_floor:
            try:
                self._by_floor[f] = self._open(loop_graph_with_floor(self.path, float(f)))
            except GraphFloorError as exc:
                raise ModelFileError(f"{exc}; it cannot sample with pdf_floor {float(f):g}") from None
        return self._by_floor[f]

    def run_frame(self, cond: np.ndarray, lpc: np.ndarray, corr: float, uniforms: np.ndarray,
                  st: SynthState, pdf_floor: float = PDF_FLOOR, period: float | None = None) -> np.ndarray:
        """One frame; ``period``: the frame's pitch period feature (needed by LTP decoders)."""
        feeds = {"cond": np.asarray(cond, np.float32)[None], "lpc": np.asarray(lpc, np.float32),
                 "corr": np.array([corr], np.float32), "uniforms": np.asarray(uniforms, np.float32),
                 "ha": st.ha[None], "hb": st.hb[None], "hist": st.hist, "exc": st.exc.astype(np.int64)}
        if self.ltp_taps:
            feeds.update(period=np.array([require_period(period)], np.float32), past=st.past.astype(np.int64))
        pcm, ha, hb, hist, exc, *past = self.session_for(pdf_floor).run(None, feeds)
        st.ha[:] = ha[0]
        st.hb[:] = hb[0]
        st.hist[:] = hist
        st.exc[:] = exc
        if past:
            st.past[:] = past[0]
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
