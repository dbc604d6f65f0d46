"""Teacher-forced decoding of whole utterances: what the sample network outputs when it sees the TRUE past.

    tf = teacher_forced_pass(model, qfeatures, audio)   # one batched forward pass, no noise injection
    idx = sample_excitation(tf.logits, tf.boost, uniforms)   # the runtime's sampling rule, vectorised
    pcm = excitation_to_pcm(tf.pred, idx)                     # s = p + e, de-emphasised, float in [-1, 1]

Alignment follows the training data (``training/corpus/examples.py``): frame ``f`` covers samples
``[160 f, 160 (f+1))`` of the zero-padded input; the signal is the 0.85 pre-emphasised int16-scale audio
(rounded), with one frame of zero history before frame 0; the LPC of frame ``f`` is
``lpc_from_cepstrum(qfeatures[f, :18])``; the frame-rate network sees the features edge-padded by two
frames each side, as the streaming decoder pads a file.  The GRU states start at zero at sample 0, as in
the runtime.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pnsc.shared.constants import FRAME_CONTEXT

from .model import CORR_INDEX, FRAME_SIZE, LPCNet, sampling_boost, ulaw2lin
from .batch_synth import sample_excitation  # noqa: F401  (the runtime's draw, vectorised; re-exported here)
from .ltp import excitation_history, ltp_inputs
from .noise import inputs_from, predict



@dataclass
class TeacherForced:
    logits: torch.Tensor  # (N, 256) float32, N = frames * 160
    pred: torch.Tensor  # (N,) LPC prediction p_t from the true past (pre-emphasised int16 scale)
    target: torch.Tensor  # (N,) int64 mu-law index of the true excitation s_t - p_t
    signal: torch.Tensor  # (N,) true pre-emphasised signal s_t (int16 scale)
    boost: torch.Tensor  # (N,) sampling boost of each sample's frame (from its pitch correlation)


def clip_signal(audio: np.ndarray, frames: int) -> np.ndarray:
    """Float audio in [-1, 1] -> (frames + 1) * 160 pre-emphasised int16-scale samples (one zero frame first)."""
    from pnsc.shared.dsp import preemphasize

    x = np.zeros(frames * FRAME_SIZE, np.float32)
    n = min(len(audio), len(x))
    x[:n] = np.asarray(audio[:n], np.float32) * 32768.0
    pre, _ = preemphasize(x, 0.0)
    pre = np.clip(np.round(pre), -32768, 32767).astype(np.float32)
    return np.concatenate([np.zeros(FRAME_SIZE, np.float32), pre])


@torch.no_grad()
def teacher_forced_pass(model: LPCNet, qfeatures: np.ndarray, audio: np.ndarray) -> TeacherForced:
    """The training forward pass (no noise) over a whole utterance -> logits for every sample."""
    from pnsc.shared.lpc import lpc_from_cepstrum

    qf = np.asarray(qfeatures, np.float32)
    T = len(qf)
    if T * FRAME_SIZE < len(audio):
        raise ValueError(f"{T} feature frames do not cover {len(audio)} samples")
    lpc = torch.from_numpy(np.asarray(lpc_from_cepstrum(qf[:, :18]), np.float32))[None]
    sig = torch.from_numpy(clip_signal(audio, T))[None]
    padded = np.concatenate([qf[:1].repeat(FRAME_CONTEXT, 0), qf, qf[-1:].repeat(FRAME_CONTEXT, 0)])
    s_in, p_in, e_in, target = inputs_from(sig, sig, lpc)
    feats = torch.from_numpy(padded)[None]
    ltp = None
    if model.cfg.ltp_taps:
        ltp = ltp_inputs(excitation_history(sig, lpc), feats, model.cfg.ltp_taps, model.cfg.ltp_gate)
    model.eval()
    logits = model(feats, s_in, p_in, e_in, ltp=ltp)[0].float()
    u = predict(sig, lpc, FRAME_SIZE - 1)[0, 1:]
    boost = sampling_boost(torch.from_numpy(qf[:, CORR_INDEX])).repeat_interleave(FRAME_SIZE)
    return TeacherForced(logits, u, target[0], sig[0, FRAME_SIZE:], boost.float())


def expected_excitation(logits: torch.Tensor) -> torch.Tensor:
    """E[e_t] in linear (int16-scale) units under the model's own distribution (no boost, no floor)."""
    levels = ulaw2lin(torch.arange(256, dtype=torch.float32))
    return torch.softmax(logits.float(), dim=-1) @ levels


def cross_entropy_stats(tf: TeacherForced) -> dict[str, float]:
    """Mean per-sample cross-entropy of the true excitation (nats; the training loss without noise) and
    the mean entropy of the model's distribution (what the cross-entropy would be if it were calibrated)."""
    logp = torch.log_softmax(tf.logits, dim=-1)
    ce = F.nll_loss(logp, tf.target)
    ent = -(logp.exp() * logp).sum(-1).mean()
    return {"cross_entropy": float(ce), "entropy": float(ent)}


def voicing_stats(tf: TeacherForced) -> dict[str, float]:
    """:func:`cross_entropy_stats` plus the cross-entropy and :func:`prediction_gain_db` over voiced and over
    unvoiced samples (frames with pitch correlation above / below 0.5, the sampling boost's knee), the voiced
    share, and the prediction gain over all samples."""
    st = cross_entropy_stats(tf)
    voiced = tf.boost > 1.25  # boost = 1 + max(0, 1.5 c - 0.5): c > 0.5
    logp = torch.log_softmax(tf.logits, dim=-1).gather(1, tf.target[:, None])[:, 0]
    st["cross_entropy_voiced"] = float(-logp[voiced].mean()) if voiced.any() else float("nan")
    st["cross_entropy_unvoiced"] = float(-logp[~voiced].mean()) if (~voiced).any() else float("nan")
    st["voiced_fraction"] = float(voiced.float().mean())
    st["pred_gain_db"] = prediction_gain_db(tf)
    st["pred_gain_db_voiced"] = prediction_gain_db(tf, voiced)  # nan for an empty mask
    st["pred_gain_db_unvoiced"] = prediction_gain_db(tf, ~voiced)
    return st


def excitation_to_pcm(pred: torch.Tensor, exc: torch.Tensor, *, linear: bool = False) -> np.ndarray:
    """s_t = p_t + e_t (``exc`` mu-law indices, or int16-scale values with ``linear``), clipped to int16,
    de-emphasised -> float32 in [-1, 1]."""
    from pnsc.shared.dsp import deemphasize

    e = exc.float() if linear else ulaw2lin(exc)
    s = torch.clamp(pred.float() + e, -32768.0, 32767.0).numpy()
    x, _ = deemphasize(s, 0.0)
    return (np.clip(np.round(x), -32768, 32767) / 32768.0).astype(np.float32)


def prediction_gain_db(tf: TeacherForced, mask: torch.Tensor | None = None) -> float:
    """How much of the true excitation the model's expected value explains, in dB:
    10 log10(sum e^2 / sum (e - E[e])^2) over the samples of ``mask`` (all if None); 0 dB = nothing."""
    e = tf.signal - tf.pred
    err = e - expected_excitation(tf.logits)
    if mask is not None:
        e, err = e[mask], err[mask]
    num, den = float((e.double() ** 2).sum()), float((err.double() ** 2).sum())
    return float("nan") if num <= 0.0 or den <= 0.0 else 10.0 * np.log10(num / den)
