"""Deterministic check of the C kernel against the exported ONNX loop graph (the reference decoder).

Both get the same conditioning, LPC and uniform random numbers.  The reference (the Loop graph that
ReferenceDecoder runs, in onnxruntime) runs freely; the C
kernel is teacher-forced along the reference's samples, and at every step we compare the sample it
would have chosen with the reference's.  Compared this way a rare near-tie (a uniform draw within
float rounding of a CDF step) costs one sample instead of derailing the rest of the stream.
A near-tie in the *inputs* (the LPC prediction within float rounding of a mu-law rounding boundary: the
kernel sums the 16 products in another order than onnxruntime) gives the GRU another embedding and moves its
state; with ``resync`` every frame starts from the reference's state, so such an event disturbs one frame
instead of the rest of the sequence (it happens a few times in 10^5 samples, at random).
"""
from __future__ import annotations

import numpy as np

from pnsc.shared.constants import PDF_FLOOR
from pnsc.shared.lpc import lpc_from_cepstrum

from .backends import SynthState
from .model import CONTEXT, CORR_INDEX, FRAME_SIZE, PERIOD_INDEX, LoadedModel

CHOICE_TOL = 1.0  # int16 units; neighbouring mu-law levels are >= 5.6 apart


def compare_with_reference(model: LoadedModel, features: np.ndarray, *, precision: str = "fp32",
                           kernel: str | None = None, seed: int = 0, pdf_floor: float = PDF_FLOOR,
                           resync: bool = False) -> dict:
    """-> {'samples', 'choice_match' (fraction), 'max_abs_err' (matched samples, int16 scale),
    'max_state_err' (GRU-A state after the last frame; with ``resync`` the largest after any frame),
    'median_state_err' (with ``resync``: the median over frames, untouched by a rare near-tie frame), 'kernel',
    'choices' (this backend's own sample at every step, each step fed the reference's history)}."""
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
    state_errs = []
    for t in range(T):
        sl = slice(t * FRAME_SIZE, (t + 1) * FRAME_SIZE)
        uni = rng.random(FRAME_SIZE, dtype=np.float32)
        corr, period = float(features[t, CORR_INDEX]), float(features[t, PERIOD_INDEX])
        if resync:
            st = st_ref.copy()
        y_ref[sl] = reference.run_frame(cond[t], lpc[t], corr, uni, st_ref, pdf_floor=pdf_floor, period=period)
        out[sl] = backend.run_frame(cond[t], lpc[t], corr, uni, st, force=y_ref[sl], pdf_floor=pdf_floor,
                                    period=period)
        if resync:
            state_errs.append(float(np.abs(st.ha - st_ref.ha).max()))
    ok = np.abs(out - y_ref) <= CHOICE_TOL
    return {"samples": int(out.size), "choice_match": float(ok.mean()) if out.size else 1.0,
            "max_abs_err": float(np.abs(out - y_ref)[ok].max()) if ok.any() else 0.0,
            "max_state_err": max(state_errs, default=0.0) if resync else float(np.abs(st.ha - st_ref.ha).max()),
            "median_state_err": float(np.median(state_errs)) if state_errs else None,
            "kernel": backend.kernel, "choices": out}
