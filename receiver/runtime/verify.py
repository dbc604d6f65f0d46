"""Deterministic check of the C kernel against the exported ONNX loop graph (the reference decoder).

Both get the same conditioning, LPC and uniform random numbers.  The reference (the Loop graph that
ReferenceDecoder runs, in onnxruntime) runs freely; the C
kernel is teacher-forced along the reference's samples, and at every step we compare the sample it
would have chosen with the reference's.  Compared this way a rare near-tie (a uniform draw within
float rounding of a CDF step) costs one sample instead of derailing the rest of the stream.
"""
from __future__ import annotations

import numpy as np

from pnsc.shared.constants import PDF_FLOOR
from pnsc.shared.lpc import lpc_from_cepstrum

from .backends import SynthState
from .model import CONTEXT, CORR_INDEX, FRAME_SIZE, LoadedModel

CHOICE_TOL = 1.0  # int16 units; neighbouring mu-law levels are >= 5.6 apart


def compare_with_reference(model: LoadedModel, features: np.ndarray, *, precision: str = "fp32",
                           kernel: str | None = None, seed: int = 0, pdf_floor: float = PDF_FLOOR) -> dict:
    """-> {'samples', 'choice_match' (fraction), 'max_abs_err' (matched samples, int16 scale),
    'max_state_err' (GRU-A state after the last frame), 'kernel', 'choices' (this backend's own sample at
    every step, each step fed the reference's history)}."""
    features = np.asarray(features, np.float32)
    lpc = lpc_from_cepstrum(features[:, :18])
    padded = np.concatenate([np.repeat(features[:1], CONTEXT, 0), features, np.repeat(features[-1:], CONTEXT, 0)])
    cond = model.frame_net.run_sequence(padded)
    backend = model.backend(precision, kernel)
    reference = model.backend("fp32", "onnx")
    rng = np.random.default_rng(seed)
    st, st_ref = SynthState.zeros(*model.size), SynthState.zeros(*model.size)
    T = features.shape[0]
    out = np.empty(T * FRAME_SIZE, np.float32)
    y_ref = np.empty(T * FRAME_SIZE, np.float32)
    for t in range(T):
        sl = slice(t * FRAME_SIZE, (t + 1) * FRAME_SIZE)
        uni = rng.random(FRAME_SIZE, dtype=np.float32)
        corr = float(features[t, CORR_INDEX])
        y_ref[sl] = reference.run_frame(cond[t], lpc[t], corr, uni, st_ref, pdf_floor=pdf_floor)
        out[sl] = backend.run_frame(cond[t], lpc[t], corr, uni, st, force=y_ref[sl], pdf_floor=pdf_floor)
    ok = np.abs(out - y_ref) <= CHOICE_TOL
    return {"samples": int(out.size), "choice_match": float(ok.mean()) if out.size else 1.0,
            "max_abs_err": float(np.abs(out - y_ref)[ok].max()) if ok.any() else 0.0,
            "max_state_err": float(np.abs(st.ha - st_ref.ha).max()), "kernel": backend.kernel, "choices": out}
