"""Noise domain ``self``: teacher-forcing inputs whose noisy past carries the model's OWN one-step error.

    sig, pred, exc, target, *ltp = self_inputs(model, signal, lpc, features, generator=gen, mix=1.0)

Per batch: the model runs once teacher-forced on the CLEAN inputs without gradients (:func:`model_draws`),
one excitation index per sample is drawn from its distribution with the runtime's rule
(:func:`.batch_synth.sample_excitation`: softmax of the logits times LPCNet's pitch-dependent boost, the
probability floor subtracted, inverse CDF), and the noisy past is x~ = u_clean + ulaw2lin(draw)
(:func:`.noise.self_noisy_signal`); the inputs then come from x~ as in the other domains, the target stays
mu(s - u~).  A sure model (one-hot at the true excitation) reproduces the true past; an unsure one injects
an error as wide as its free-running draws, which is what the network sees at synthesis time.

Memory: the (rows, 256) logits exist only for ``chunk`` rows at a time (the GRU outputs of the whole
batch, (B, T*160, gru_b), are kept: 16 values per sample).  The generator is consumed in a fixed order,
independent of ``chunk``: the uniforms of every sample (B, T*160), then with ``mix`` < 1 one uniform per
sequence; so a chunked draw equals an unchunked one wherever the logits agree.
"""
from __future__ import annotations

import torch

from pnsc.shared.constants import FRAME_CONTEXT

from .batch_synth import sample_excitation
from .model import CORR_INDEX, FRAME_SIZE, LPCNet, sampling_boost
from .noise import inputs_for_past, make_inputs, self_noisy_signal

SAMPLE_CHUNK = 1 << 16  # rows of logits at a time: 64 MiB per float32 (rows, 256) tensor


def sample_boost(features: torch.Tensor) -> torch.Tensor:
    """Feature rows (B, T+4, 20) -> the sampling boost of every predicted sample (B, T*160), float32."""
    T = features.shape[1] - 2 * FRAME_CONTEXT
    corr = features[:, FRAME_CONTEXT:FRAME_CONTEXT + T, CORR_INDEX].float()
    return sampling_boost(corr).repeat_interleave(FRAME_SIZE, dim=1)


@torch.no_grad()
def model_draws(model: LPCNet, features: torch.Tensor, sig: torch.Tensor, pred: torch.Tensor, exc: torch.Tensor,
                ltp: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
                chunk: int = SAMPLE_CHUNK) -> torch.Tensor:
    """One excitation draw (int64 (B, T*160) mu-law indices) per sample from the model's teacher-forced
    distribution for these inputs, ``chunk`` rows of logits at a time (the recurrent part under the caller's
    autocast, the dual FC and the draw in float32).
    ``model`` must be the plain module (not a DDP wrapper: no hooks, no gradient bookkeeping)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    B, N = sig.shape
    if features.shape[1] - 2 * FRAME_CONTEXT != N // FRAME_SIZE:
        raise ValueError(f"features {tuple(features.shape)} do not match {N} samples per sequence")
    uniforms = torch.rand((B, N), generator=generator, device=sig.device).reshape(-1)
    boost = sample_boost(features).reshape(-1)
    h = model.hidden(model.frame_rate(features), sig, pred, exc, ltp)
    h = h.reshape(B * N, h.shape[-1])
    out = torch.empty(B * N, dtype=torch.long, device=sig.device)
    with torch.autocast(sig.device.type, enabled=False):  # the logits in float32, as the runtime's
        for s in range(0, B * N, chunk):
            logits = model.dual_fc(h[s:s + chunk].float())
            out[s:s + chunk] = sample_excitation(logits, boost[s:s + chunk], uniforms[s:s + chunk])
    return out.reshape(B, N)


def self_inputs(model: LPCNet, signal: torch.Tensor, lpc: torch.Tensor, features: torch.Tensor, *,
                generator: torch.Generator | None = None, mix: float = 1.0, chunk: int = SAMPLE_CHUNK,
                amp_dtype: torch.dtype | None = None, return_draws: bool = False):
    """Teacher-forcing inputs (sig, pred, exc, target[, ltp]) of noise domain ``self`` (see the module doc).

    ``mix`` in [0, 1]: the fraction of sequences that take the model's draws (each sequence independently,
    one uniform each from ``generator``); the others keep the clean past.  ``amp_dtype``: the model pass
    under this autocast dtype (the training step's).  With ``return_draws`` the result is
    ``(inputs, draws, x~)`` (for tests and measurements)."""
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    cfg = model.cfg
    sig, pred, exc, _, *ltp = make_inputs(signal, lpc, noise=False, features=features, ltp_taps=cfg.ltp_taps,
                                          ltp_gate=cfg.ltp_gate)
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(signal.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            draws = model_draws(model, features, sig, pred, exc, ltp[0] if ltp else None, generator=generator,
                                chunk=chunk)
    finally:
        model.train(was_training)
    keep = None
    if mix < 1.0:
        keep = torch.rand((signal.shape[0],), generator=generator, device=signal.device) < mix
    xn = self_noisy_signal(signal, lpc, draws, keep)
    inputs = inputs_for_past(signal, xn, lpc, features=features, ltp_taps=cfg.ltp_taps, ltp_gate=cfg.ltp_gate)
    return (inputs, draws, xn) if return_draws else inputs
