"""Batched LPCNet synthesis with the torch model (GPU-friendly), for evaluating trained decoders.

The run-time decoder is the ONNX/C path in ``receiver``; this module decodes many utterances at
once on a GPU so that every trained decoder can be scored (PESQ, STOI) within a short lease.
It follows :func:`training.lpcnet.model.synthesize` step for step, vectorised over the batch.
"""
from __future__ import annotations

import numpy as np
import torch

from pnsc.shared.constants import CORR_INDEX, FRAME_SIZE, LPC_ORDER, NB_CEPS
from pnsc.shared.dsp import deemphasize
from pnsc.shared.lpc import lpc_from_cepstrum

from .model import (PDF_FLOOR, PERIOD_INDEX, LPCNet, ltp_gated, ltp_lag, sampling_boost, step_taps, tap_offsets,
                    ulaw2lin, ulaw_index)


def sample_excitation(logits: torch.Tensor, boost: torch.Tensor, uniforms: torch.Tensor,
                      floor: float = PDF_FLOOR) -> torch.Tensor:
    """The runtime's draw for every row at once: softmax(boost * logits), ``floor`` subtracted (clamped at 0),
    inverse CDF at ``uniform * total`` (= ``model.sample_from_logits`` / the C kernel's rule) -> int64 (N,)."""
    p = torch.softmax(logits.float() * boost.float()[:, None], dim=-1)
    p = torch.clamp(p - floor, min=0.0)
    c = torch.cumsum(p, dim=-1)
    idx = (c < uniforms.float()[:, None] * c[:, -1:]).sum(-1)
    return torch.clamp(idx, max=255)


@torch.no_grad()
def synthesize_batch(model: LPCNet, features: list[np.ndarray], seed: int = 0,
                     device: str | torch.device = "cpu") -> list[np.ndarray]:
    """Decode quantized feature sequences ``(T_i, 20)`` (whole utterances, multiples of 4 frames)
    to float32 audio in [-1, 1] (de-emphasized), one array of ``T_i * 160`` samples each."""
    device = torch.device(device)
    model = model.to(device).eval()
    lengths = [len(f) for f in features]
    T = max(lengths)
    B = len(features)
    feats = np.zeros((B, T + 4, features[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(features):
        # Two frames of context each side: repeat the edge frames (as the streaming decoder does).
        padded = np.concatenate([f[:1], f[:1], f, f[-1:], f[-1:]])
        feats[i, : len(padded)] = padded
        feats[i, len(padded):] = padded[-1]
    lpc = torch.from_numpy(lpc_from_cepstrum(feats[:, 2 : T + 2, :NB_CEPS])).to(device)
    corr = torch.from_numpy(feats[:, 2 : T + 2, CORR_INDEX]).to(device)
    cond = model.frame_rate(torch.from_numpy(feats).to(device))  # (B, T, C)

    gen = torch.Generator(device="cpu").manual_seed(seed)
    uniforms = torch.rand(T * FRAME_SIZE, B, generator=gen).to(device)
    ha = torch.zeros(B, model.cfg.gru_a, device=device)
    hb = torch.zeros(B, model.cfg.gru_b, device=device)
    hist = torch.zeros(B, LPC_ORDER, device=device)  # hist[:, m-1] = x[n-m]
    exc = torch.full((B,), 128, dtype=torch.long, device=device)
    out = torch.zeros(B, T * FRAME_SIZE, device=device)
    taps = model.cfg.ltp_taps
    lags = ltp_lag(torch.from_numpy(feats[:, 2 : T + 2, PERIOD_INDEX])).to(device)  # (B, T)
    offs = torch.tensor(tap_offsets(taps), dtype=torch.long, device=device)
    gated = ltp_gated(corr, model.cfg.ltp_gate)  # (B, T): frames whose taps the voicing gate silences
    past = torch.full((B, T * FRAME_SIZE), 128, dtype=torch.long, device=device)  # excitations drawn
    for f in range(T):
        boost = sampling_boost(corr[:, f])
        cond_f = cond[:, f]
        lpc_f = lpc[:, f]
        for n in range(FRAME_SIZE):
            t = f * FRAME_SIZE + n
            u = (lpc_f * hist).sum(dim=-1)
            ltp = step_taps(past, t, lags[:, f], offs, gated[:, f]) if taps else None
            logits, ha, hb = model.step(cond_f, ulaw_index(hist[:, 0]), ulaw_index(u), exc, ha, hb, ltp)
            exc = sample_excitation(logits, boost, uniforms[t])
            if taps:
                past[:, t] = exc
            x = torch.clamp(u + ulaw2lin(exc), -32768.0, 32767.0)
            hist = torch.cat([x[:, None], hist[:, :-1]], dim=1)
            out[:, t] = x
    pcm = out.cpu().numpy()
    result = []
    for i, n in enumerate(lengths):
        y, _ = deemphasize(pcm[i, : n * FRAME_SIZE])
        result.append(np.clip(y / 32768.0, -1.0, 1.0).astype(np.float32))
    return result
