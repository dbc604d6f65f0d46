"""Long-term (pitch) prediction taps for teacher forcing: GRU-A's lagged-excitation inputs.

For a model with ``ltp_taps`` taps (:class:`.model.LPCNetConfig`), the network predicting global sample
i of a training sequence (alignment as in :mod:`.noise`: ``signal`` starts 160 samples before the
first predicted frame) also sees e[i - lag + d] for d in ``tap_offsets(taps)``, where e is the (noisy)
excitation the network itself sees as its past, mu(x~[j] - u~[j]), and lag is the pitch lag of the
frame of sample i (``ltp_lag`` of its feature row).  The excitation is known from sample 16 on (the
context frame is predicted with the first frame's LPC, as :func:`.noise.predict` does for sample 159);
earlier taps are mu-law zero (128), as at the start of a decode.  With a voicing gate (``ltp_gate`` > 0),
every tap of a frame whose pitch correlation (column 19 of the same feature row) is below the gate is 128.
"""
from __future__ import annotations

import torch

from pnsc.shared.constants import FRAME_CONTEXT

from .model import CORR_INDEX, FRAME_SIZE, LPC_ORDER, PERIOD_INDEX, ltp_gated, ltp_lag, tap_offsets, ulaw_index

ZERO = 128  # mu-law index of 0


def excitation_history(xn: torch.Tensor, lpc: torch.Tensor) -> torch.Tensor:
    """Mu-law excitation indices (B, L) of the signal ``xn`` (B, L) as the network sees it; 128 for the
    first 16 samples (no LPC history)."""
    from .noise import predict

    x = xn.to(torch.float32)
    u = predict(x, lpc.to(torch.float32), LPC_ORDER)
    e = ulaw_index(x[:, LPC_ORDER:] - u)
    return torch.cat([torch.full_like(e[:, :LPC_ORDER], ZERO), e], dim=1)


def frame_lags(features: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, frames + 4, 20) feature rows -> (B, frames) integer pitch lags of the predicted frames."""
    return ltp_lag(features[:, FRAME_CONTEXT:FRAME_CONTEXT + frames, PERIOD_INDEX])


def frame_gates(features: torch.Tensor, frames: int, gate: float) -> torch.Tensor:
    """(B, frames + 4, 20) feature rows -> (B, frames) bool: True where the voicing gate silences the taps."""
    return ltp_gated(features[:, FRAME_CONTEXT:FRAME_CONTEXT + frames, CORR_INDEX], gate)


def ltp_inputs(e_hist: torch.Tensor, features: torch.Tensor, taps: int, gate: float = 0.0) -> torch.Tensor:
    """Excitation history (B, (T+1)*160) and feature rows (B, T+4, 20) -> taps (B, T*160, taps) int64:
    entry [b, k, t] = e_hist[b, 160 + k - lag + d_t] (128 before the sequence, and in every frame the
    voicing gate ``gate`` silences)."""
    B, L = e_hist.shape
    T = L // FRAME_SIZE - 1
    lag = frame_lags(features, T).repeat_interleave(FRAME_SIZE, dim=1)  # (B, T*160)
    i = torch.arange(FRAME_SIZE, L, device=e_hist.device)
    offs = torch.tensor(tap_offsets(taps), device=e_hist.device)
    j = i[None, :, None] - lag[..., None] + offs  # (B, T*160, taps)
    v = torch.gather(e_hist, 1, j.clamp(min=0).reshape(B, -1)).view(B, T * FRAME_SIZE, taps)
    keep = j >= 0
    if gate:
        keep = keep & ~frame_gates(features, T, gate).repeat_interleave(FRAME_SIZE, dim=1)[..., None]
    return torch.where(keep, v, torch.full_like(v, ZERO))
