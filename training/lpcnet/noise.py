"""Teacher-forcing inputs with LPCNet-style noise injection, computed on the fly on the batch's device.

Alignment (data contract): ``signal`` (B, (T+1)*160) starts 160 samples before frame f0, ``lpc``
(B, T, 16) holds frame f0..f0+T-1.  Global sample i >= 160 belongs to frame (i-160)//160 and uses that
frame's LPC; u[i] = sum_{m=1..16} lpc[m-1] * x[i-m].  For the one context sample i = 159 (needed for
the previous excitation of the first sample) frame 0's LPC is used.

For each predicted sample i (160 <= i < (T+1)*160) the network gets
  sig  = mu(x~[i-1])            previous (noisy) sample
  pred = mu(u~[i])              prediction from the noisy past
  exc  = mu(x~[i-1] - u~[i-1])  previous (noisy) excitation
and the target is mu(s[i] - u~[i]): the clean sample against the noisy prediction (LPCNet).

Noise (fresh each batch): integer Laplacian noise in the mu-law domain, one standard deviation per
sequence drawn as ``scale * U^2`` (U uniform; LPCNet's dump_data draws ``10 * U^2`` for its recursive
excitation noise).  ``domain='exc'`` (default) perturbs the mu-law of the clean excitation, so the
signal error has the size of the decoder's own sampling errors (a one-step, parallel version of
LPCNet's recursive injection); ``domain='sig'`` perturbs the mu-law of the signal itself.

``domain='self'`` (:mod:`.self_noise`) replaces the synthetic noise by the model's OWN error: the model runs
once teacher-forced on the clean inputs (no gradients), one excitation index is drawn per sample from its
distribution with the runtime's rule (:func:`.batch_synth.sample_excitation`: pitch-dependent boost,
probability floor), and the noisy past is x~[i] = u[i] + ulaw2lin(drawn e[i]) with u the prediction from
the CLEAN past (:func:`self_noisy_signal`): the same one-step, parallel construction as ``exc``, so the
error the network learns to absorb is as wide as its own draws in free-running synthesis.
"""
from __future__ import annotations

import torch

from .model import FRAME_SIZE, LPC_ORDER, lin2ulaw, ulaw2lin, ulaw_index

DEFAULT_NOISE_SCALE = {"exc": 6.0, "sig": 1.5}


def _per_sample_lpc(lpc: torch.Tensor, first: int) -> torch.Tensor:
    """(B, T, 16) -> LPC for global samples first..(T+1)*160-1, flipped so it dots with unfold windows."""
    B, T, _ = lpc.shape
    lpc_s = lpc.flip(-1).repeat_interleave(FRAME_SIZE, dim=1)  # samples 160..(T+1)*160-1
    n_before = FRAME_SIZE - first
    if n_before > 0:
        lpc_s = torch.cat([lpc_s[:, :1].expand(B, n_before, LPC_ORDER), lpc_s], dim=1)
    return lpc_s


def predict(x: torch.Tensor, lpc: torch.Tensor, first: int = FRAME_SIZE - 1) -> torch.Tensor:
    """LPC prediction u[i] for i in first..L-1 (x: (B, L) float32, lpc (B, T, 16))."""
    L = x.shape[1]
    win = x.unfold(1, LPC_ORDER, 1)  # win[:, j] = x[j .. j+15]; u[i] uses win[:, i-16] (flipped lpc)
    win = win[:, first - LPC_ORDER:L - LPC_ORDER]
    return (win * _per_sample_lpc(lpc, first)).sum(-1)


def laplace_int(shape, std: torch.Tensor, generator: torch.Generator | None, device) -> torch.Tensor:
    u1 = torch.rand(shape, generator=generator, device=device).clamp_min(1e-7)
    u2 = torch.rand(shape, generator=generator, device=device).clamp_min(1e-7)
    return torch.floor(0.5 + std * 0.707 * (torch.log(u1) - torch.log(u2)))


def noisy_signal(signal: torch.Tensor, lpc: torch.Tensor, *, domain: str = "exc", scale: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The noisy version x~ of the (B, L) signal that the network sees as its past output."""
    x = signal.to(torch.float32)
    lpc = lpc.to(torch.float32)
    B, L = x.shape
    first = FRAME_SIZE - 1
    if domain not in DEFAULT_NOISE_SCALE:
        raise ValueError(f"unknown noise domain {domain!r}" + (" (needs the model: self_noise.self_inputs)"
                                                               if domain == "self" else ""))
    if scale is None:
        scale = DEFAULT_NOISE_SCALE[domain]
    std = scale * torch.rand((B, 1), generator=generator, device=x.device) ** 2
    n = laplace_int((B, L), std, generator, x.device)
    if domain == "sig":
        return ulaw2lin(torch.clamp(lin2ulaw(x) + n, 0.0, 255.0))
    if domain == "exc":
        u_clean = predict(x, lpc, first)
        e = x[:, first:] - u_clean
        e_noisy = ulaw2lin(torch.clamp(lin2ulaw(e) + n[:, first:], 0.0, 255.0))
        return torch.cat([x[:, :first], u_clean + e_noisy], dim=1)
    raise ValueError(f"unknown noise domain {domain!r}")


def self_noisy_signal(signal: torch.Tensor, lpc: torch.Tensor, draws: torch.Tensor,
                      keep: torch.Tensor | None = None) -> torch.Tensor:
    """The noisy past of domain ``self``: x~[i] = clamp(u[i] + ulaw2lin(draws[:, i - 160])) for the predicted
    samples i >= 160 (u: the LPC prediction from the clean past), the clean signal before them.

    ``draws`` (B, T*160) mu-law indices drawn for the excitation of every predicted sample (a draw at the true
    excitation's index gives x~ = s up to the mu-law quantisation of the excitation); ``keep`` (B,) bool, if
    given: sequences where it is False keep the clean signal (a mixing fraction)."""
    x = signal.to(torch.float32)
    first = FRAME_SIZE - 1
    if draws.shape != (x.shape[0], x.shape[1] - FRAME_SIZE):
        raise ValueError(f"draws {tuple(draws.shape)} do not match the predicted samples of signal {tuple(x.shape)}")
    u = predict(x, lpc.to(torch.float32), first)[:, 1:]  # global samples 160..L-1
    tail = torch.clamp(u + ulaw2lin(draws), -32768.0, 32767.0)
    if keep is not None:
        tail = torch.where(keep[:, None], tail, x[:, FRAME_SIZE:])
    return torch.cat([x[:, :FRAME_SIZE], tail], dim=1)


def inputs_from(signal: torch.Tensor, xn: torch.Tensor, lpc: torch.Tensor):
    """Clean signal + noisy signal -> (sig, pred, exc, target), each int64 (B, T*160)."""
    x = signal.to(torch.float32)
    L = x.shape[1]
    first = FRAME_SIZE - 1
    u = predict(xn, lpc.to(torch.float32), first)  # u[k] is global sample first + k
    prev = xn[:, first:L - 1]
    sig = ulaw_index(prev)
    pred = ulaw_index(u[:, 1:])
    exc = ulaw_index(prev - u[:, :-1])
    target = ulaw_index(x[:, first + 1:] - u[:, 1:])
    return sig, pred, exc, target


def make_inputs(signal: torch.Tensor, lpc: torch.Tensor, *, noise: bool = True, domain: str = "exc",
                scale: float | None = None, generator: torch.Generator | None = None,
                features: torch.Tensor | None = None, ltp_taps: int = 0, ltp_gate: float = 0.0):
    """-> (sig, pred, exc, target), each int64 (B, T*160); with ``ltp_taps`` > 0 (needs the batch's
    feature rows ``features``) a fifth item, the LTP taps (B, T*160, ltp_taps) of :mod:`.ltp`, drawn
    from the same noisy past (128 in frames the voicing gate ``ltp_gate`` silences)."""
    if noise and domain == "self":
        raise ValueError("noise domain 'self' needs the model: use self_noise.self_inputs")
    xn = noisy_signal(signal, lpc, domain=domain, scale=scale, generator=generator) if noise \
        else signal.to(torch.float32)
    return inputs_for_past(signal, xn, lpc, features=features, ltp_taps=ltp_taps, ltp_gate=ltp_gate)


def inputs_for_past(signal: torch.Tensor, xn: torch.Tensor, lpc: torch.Tensor, *,
                    features: torch.Tensor | None = None, ltp_taps: int = 0, ltp_gate: float = 0.0):
    """:func:`inputs_from` plus, with ``ltp_taps`` > 0, the LTP taps drawn from the same noisy past ``xn``."""
    out = inputs_from(signal, xn, lpc)
    if ltp_taps == 0:
        return out
    if features is None:
        raise ValueError("LTP taps need the feature rows (their pitch period gives the lag)")
    from .ltp import excitation_history, ltp_inputs

    return (*out, ltp_inputs(excitation_history(xn, lpc), features, ltp_taps, ltp_gate))
