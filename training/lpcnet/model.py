"""LPCNet (Valin & Skoglund) in PyTorch: frame-rate network + sample-rate network.

Layout (facts.md, paper sec. 2.4):
- frame-rate net: pitch embedding (256 x 64) of the integer pitch period, concatenated with the
  20 features -> conv1d(k=3, 128, tanh) -> conv1d(k=3, 128, tanh) (both 'valid': T+4 frames in,
  T out) -> FC 128 tanh -> FC 128 tanh = conditioning vector f per 10 ms frame.
- sample-rate net: one shared 256 x 128 mu-law embedding applied to previous sample s[n-1],
  LPC prediction u[n] and previous excitation e[n-1]; GRU-A (N units) on [3 x 128 embeddings, f];
  GRU-B (16 units) on [GRU-A out, f]; dual FC (2 x tanh(Wh+b) weighted by per-output factors)
  giving 256 logits over the mu-law excitation e[n].

Parameter counts: N=384 -> 1,232,992 (paper: 1.234M); N=256 -> 783,712 (paper: 0.784M).

Long-term (pitch) prediction inputs, ``ltp_taps`` > 0 (an extension of LPCNet, off in the paper's models):
GRU-A also sees the embeddings of ``ltp_taps`` past excitations one pitch period back,
e[n - lag + d] for d in ``tap_offsets(ltp_taps)`` (centred: -2..2 for 5 taps), with lag the frame's
pitch period ``ltp_lag`` (round(p) clamped to 32..255 samples); excitations before the start are
mu-law zero (128). GRU-A's input is then [E[sig], E[pred], E[exc], E[tap_0], ..., f]: the taps'
columns sit between the sample embeddings and the conditioning, so a model without taps widens into
one with them by zero columns (:func:`widen_for_ltp`), computing the same function.
Voicing gate, ``ltp_gate`` > 0: a frame whose raw pitch-correlation feature (column 19 of the row that gives
the lag) is below ``ltp_gate`` sees mu-law zero (128) on every tap instead of the lagged excitations
(:func:`ltp_gated`; in unvoiced frames the lag of a meaningless pitch points at unrelated excitation).
The excitation history is unchanged: gated frames still record their draws. 0 (the default): no gate.

Feature normalisation is inside the model (so exported graphs take raw features):
cepstrum as is; pitch period p (samples) -> (p - 100) / 50 and embedding index round(p) in 0..255;
pitch correlation c -> c - 0.5.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from pnsc.shared.constants import LTP_MAX_LAG, LTP_MAX_TAPS, LTP_MIN_LAG, PDF_FLOOR

from .ema import deployed_weights
from .fold import folded_gru_a
from .fused import compute_dtype, dual_fc_loss, frame_concat
from .gru_scan import gru_b_forward

FEATURE_DIM = 20
PERIOD_INDEX = 18
CORR_INDEX = 19
MU_LEVELS = 256
FRAME_SIZE = 160
LPC_ORDER = 16


def check_ltp_taps(taps: int) -> None:
    """ValueError unless ``taps`` is 0 or odd in 1..LTP_MAX_TAPS (odd: the taps centre on the lag)."""
    if not (taps == 0 or (taps % 2 == 1 and 1 <= taps <= LTP_MAX_TAPS)):
        raise ValueError(f"ltp_taps must be 0 or odd in 1..{LTP_MAX_TAPS}, got {taps}")


def check_ltp_gate(gate: float, taps: int) -> None:
    """ValueError unless ``gate`` is a pitch-correlation threshold in [0, 1), and 0 for a model without taps."""
    if not (0.0 <= gate < 1.0):  # NaN fails too
        raise ValueError(f"ltp_gate must be in [0, 1) (a pitch-correlation threshold), got {gate}")
    if gate and not taps:
        raise ValueError(f"ltp_gate {gate} needs LTP taps (ltp_taps > 0)")


@dataclass(frozen=True)
class LPCNetConfig:
    gru_a: int = 384
    gru_b: int = 16
    embed: int = 128  # mu-law embedding size
    cond: int = 128  # frame-rate network width / conditioning size
    pitch_embed: int = 64
    ltp_taps: int = 0  # lagged-excitation inputs of GRU-A (0: LPCNet as published)
    ltp_gate: float = 0.0  # taps read 128 in frames with pitch correlation < ltp_gate (0: no gate)

    def __post_init__(self):
        check_ltp_taps(self.ltp_taps)
        check_ltp_gate(self.ltp_gate, self.ltp_taps)

    @property
    def sample_inputs(self) -> int:
        """Embedded sample-rate inputs of GRU-A: sig, pred, exc and the LTP taps."""
        return 3 + self.ltp_taps

    def to_dict(self) -> dict:
        return asdict(self)


SIZES = {
    "L": LPCNetConfig(gru_a=384),
    "S": LPCNetConfig(gru_a=256),
    # CI / CPU tests only.
    "tiny": LPCNetConfig(gru_a=24, gru_b=8, embed=8, cond=16, pitch_embed=4),
}


def config_for(size: str, ltp_taps: int = 0, ltp_gate: float = 0.0) -> LPCNetConfig:
    try:
        cfg = SIZES[size]
    except KeyError:
        raise ValueError(f"unknown model size {size!r} (one of {sorted(SIZES)})") from None
    return replace(cfg, ltp_taps=ltp_taps, ltp_gate=float(ltp_gate))  # checked by LPCNetConfig


def ltp_gated(corr: torch.Tensor, gate: float) -> torch.Tensor:
    """Raw pitch-correlation features -> bool, True where the voicing gate silences the LTP taps
    (corr < gate, compared in float32 as the exported graph and the run-time decoder do; all False for gate 0)."""
    corr = corr.to(torch.float32)
    if not gate:
        return torch.zeros_like(corr, dtype=torch.bool)
    return corr < torch.tensor(gate, dtype=torch.float32, device=corr.device)


def tap_offsets(taps: int) -> list[int]:
    """Offsets d of the LTP taps e[n - lag + d], centred on the lag: 5 -> [-2, -1, 0, 1, 2]."""
    return [k - taps // 2 for k in range(taps)]


def ltp_lag(period: torch.Tensor) -> torch.Tensor:
    """Frame pitch period feature (samples, float) -> integer lag, clamp(round(p), 32, 255), int64."""
    return torch.clamp(torch.floor(period.to(torch.float32) + 0.5), LTP_MIN_LAG, LTP_MAX_LAG).to(torch.long)


def step_taps(past: torch.Tensor, t: int, lags: torch.Tensor, offs: torch.Tensor, gated: torch.Tensor) -> torch.Tensor:
    """The LTP taps of sample ``t`` while decoding: ``past`` (B, >= t) the excitations drawn so far, ``lags`` (B,)
    and ``gated`` (B,) of the sample's frame, ``offs`` the tap offsets -> (B, taps) mu-law indices (128 before
    the start and in gated frames)."""
    j = t - lags[:, None] + offs  # always < t: lag >= 32 > the largest offset
    return torch.where((j >= 0) & ~gated[:, None], past.gather(1, j.clamp(min=0)), 128)


def widen_for_ltp(state: dict, cfg: LPCNetConfig) -> dict:
    """A state dict of a model with fewer LTP taps -> one for ``cfg``: zero input columns for the new
    taps in GRU-A (inserted before the conditioning columns), so the widened model computes the same
    function until training moves them."""
    key = "gru_a.weight_ih_l0"
    w = state[key]
    want = cfg.sample_inputs * cfg.embed + cfg.cond
    have = w.shape[1]
    if have == want:
        return state
    n_old = (have - cfg.cond) // cfg.embed
    if (have - cfg.cond) % cfg.embed or not 3 <= n_old < cfg.sample_inputs:
        raise ValueError(f"{key} has {have} input columns: not a narrower model of this configuration")
    zeros = w.new_zeros(w.shape[0], want - have)
    out = dict(state)
    out[key] = torch.cat([w[:, : n_old * cfg.embed], zeros, w[:, n_old * cfg.embed:]], dim=1)
    return out


# ---------------------------------------------------------------- mu-law (torch, matches shared.mulaw)
_LOG256 = math.log(256.0)


def lin2ulaw(x: torch.Tensor) -> torch.Tensor:
    """int16-scale linear -> continuous mu-law in [0, 255] (not rounded)."""
    s = torch.sign(x)
    u = 128.0 + s * 128.0 * torch.log1p(255.0 * torch.abs(x) / 32768.0) / _LOG256
    return torch.clamp(u, 0.0, 255.0)


def ulaw2lin(u: torch.Tensor) -> torch.Tensor:
    """mu-law value (float or int) in [0, 255] -> int16-scale linear."""
    u = u.to(torch.float32) - 128.0
    s = torch.sign(u)
    return s * (32768.0 / 255.0) * (torch.exp(torch.abs(u) / 128.0 * _LOG256) - 1.0)


def ulaw_index(x: torch.Tensor) -> torch.Tensor:
    """int16-scale linear -> integer mu-law index (round to nearest, 0..255), int64."""
    return torch.clamp(torch.floor(lin2ulaw(x) + 0.5), 0, 255).to(torch.long)


def sampling_boost(corr: torch.Tensor | float) -> torch.Tensor | float:
    """LPCNet's temperature: logits are multiplied by 1 + max(0, 1.5 * pitch_corr - 0.5)."""
    if isinstance(corr, torch.Tensor):
        return 1.0 + torch.clamp(1.5 * corr - 0.5, min=0.0)
    return 1.0 + max(0.0, 1.5 * float(corr) - 0.5)


# ---------------------------------------------------------------- model
class FrameRateNet(nn.Module):
    def __init__(self, cfg: LPCNetConfig):
        super().__init__()
        self.pitch_embedding = nn.Embedding(256, cfg.pitch_embed)
        self.conv1 = nn.Conv1d(FEATURE_DIM + cfg.pitch_embed, cfg.cond, 3)
        self.conv2 = nn.Conv1d(cfg.cond, cfg.cond, 3)
        self.fc1 = nn.Linear(cfg.cond, cfg.cond)
        self.fc2 = nn.Linear(cfg.cond, cfg.cond)
        # feature normalisation (x - offset) * scale, kept as constants
        offset = torch.zeros(FEATURE_DIM)
        scale = torch.ones(FEATURE_DIM)
        offset[PERIOD_INDEX], scale[PERIOD_INDEX] = 100.0, 1.0 / 50.0
        offset[CORR_INDEX] = 0.5
        self.register_buffer("feat_offset", offset, persistent=False)
        self.register_buffer("feat_scale", scale, persistent=False)

    @staticmethod
    def pitch_index(features: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.floor(features[..., PERIOD_INDEX] + 0.5), 0, 255).to(torch.long)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, T+4, 20) raw -> conditioning (B, T, cond)."""
        features = features.to(torch.float32)
        pe = self.pitch_embedding(self.pitch_index(features))
        x = torch.cat([(features - self.feat_offset) * self.feat_scale, pe], dim=-1)
        x = x.transpose(1, 2)
        x = torch.tanh(self.conv1(x))
        x = torch.tanh(self.conv2(x))
        x = x.transpose(1, 2)
        x = torch.tanh(self.fc1(x))
        return torch.tanh(self.fc2(x))


class DualFC(nn.Module):
    """LPCNet's MDense with two channels: sum_c factor_c * tanh(W_c h + b_c) -> logits."""

    def __init__(self, n_in: int, n_out: int = MU_LEVELS):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(2, n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(2, n_out))
        self.factor = nn.Parameter(torch.ones(2, n_out))
        bound = 1.0 / math.sqrt(n_in)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return dual_fc_logits(h, self.weight, self.bias, self.factor)


def dual_fc_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """sum_c factor_c * tanh(W_c h + b_c): h (..., n_in), weight (2, 256, n_in) -> logits (..., 256)."""
    y = torch.einsum("...i,coi->...co", h, weight) + bias
    return (torch.tanh(y) * factor).sum(dim=-2)


IMPLS = ("fast", "old", "fold")


def default_impl() -> str:
    """Training-path implementation: env ``PNSC_LPCNET_IMPL`` (``fast``, the default, ``old`` or ``fold``)."""
    impl = os.environ.get("PNSC_LPCNET_IMPL", "fast")
    if impl not in IMPLS:
        raise ValueError(f"PNSC_LPCNET_IMPL must be one of {IMPLS}, got {impl!r}")
    return impl


def compile_cells() -> bool:
    """``PNSC_LPCNET_COMPILE=1``: the ``fold`` path's GRU cells through torch.compile (optional; costs
    compile time at the first step and at each new batch size)."""
    return os.environ.get("PNSC_LPCNET_COMPILE", "0") == "1"


class LPCNet(nn.Module):
    """``impl`` picks how the teacher-forced training pass is evaluated; all three compute the same function
    with the same parameters (``fast``: lean GRU inputs and the fused chunked dual-FC loss of
    :mod:`.fused`; ``fold``: as ``fast`` but GRU-A with the embeddings folded into its input matrix
    and a recompute-in-backward recurrence, :mod:`.fold`; ``old``: the first implementation)."""

    def __init__(self, cfg: LPCNetConfig | None = None, impl: str | None = None):
        super().__init__()
        self.impl = impl or default_impl()
        if self.impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {self.impl!r}")
        self.cfg = cfg or LPCNetConfig()
        c = self.cfg
        self.frame_net = FrameRateNet(c)
        self.embed = nn.Embedding(MU_LEVELS, c.embed)  # shared by sig / pred / exc
        self.gru_a = nn.GRU(c.sample_inputs * c.embed + c.cond, c.gru_a, batch_first=True)
        self.gru_b = nn.GRU(c.gru_a + c.cond, c.gru_b, batch_first=True)
        self.dual_fc = DualFC(c.gru_b)

    # -- frame-rate part
    def frame_rate(self, features: torch.Tensor) -> torch.Tensor:
        return self.frame_net(features)

    # -- teacher-forced sample-rate part
    def sample_rate(self, cond: torch.Tensor, sig: torch.Tensor, pred: torch.Tensor, exc: torch.Tensor,
                    ltp: torch.Tensor | None = None) -> torch.Tensor:
        """cond (B, T, C); sig/pred/exc int64 (B, T*160) mu-law indices; ltp (B, T*160, ltp_taps) int64
        (models with LTP taps) -> logits (B, T*160, 256)."""
        return self.dual_fc(self.hidden(cond, sig, pred, exc, ltp))

    def sample_indices(self, sig, pred, exc, ltp=None) -> torch.Tensor:
        """GRU-A's embedded inputs stacked: (..., 3 + ltp_taps) mu-law indices."""
        taps = self.cfg.ltp_taps
        if taps == 0:
            if ltp is not None and ltp.shape[-1] != 0:
                raise ValueError("this model has no LTP taps, but LTP inputs were given")
            return torch.stack([sig, pred, exc], dim=-1)
        if ltp is None or ltp.shape[-1] != taps:
            raise ValueError(f"this model needs ltp inputs with {taps} taps (got {None if ltp is None else ltp.shape[-1]})")
        return torch.cat([torch.stack([sig, pred, exc], dim=-1), ltp], dim=-1)

    def hidden(self, cond: torch.Tensor, sig, pred, exc, ltp=None) -> torch.Tensor:
        """GRU-B output (B, T*160, gru_b) for teacher-forced inputs."""
        idx = self.sample_indices(sig, pred, exc, ltp)
        if self.impl == "old":
            return self._hidden_old(cond, idx)
        # embeddings gathered straight in the compute dtype; conditioning broadcast per frame
        dt = compute_dtype(sig.device.type)
        if self.impl == "fold":
            a = folded_gru_a(self.embed, self.gru_a, cond, idx, FRAME_SIZE, dt, compiled=compile_cells())
        else:
            emb = F.embedding(idx, self.embed.weight.to(dt)).flatten(-2)
            a, _ = self.gru_a(frame_concat(emb, cond, FRAME_SIZE))
        return gru_b_forward(self.gru_b, frame_concat(a, cond, FRAME_SIZE))

    def _hidden_old(self, cond: torch.Tensor, idx) -> torch.Tensor:
        cond_s = cond.repeat_interleave(FRAME_SIZE, dim=1)
        emb = self.embed(idx).flatten(-2)
        if torch.is_autocast_enabled(emb.device.type):  # halve the activation memory before the GRU
            emb = emb.to(torch.get_autocast_dtype(emb.device.type))
        a, _ = self.gru_a(torch.cat([emb, cond_s.to(emb.dtype)], dim=-1))
        b, _ = self.gru_b(torch.cat([a, cond_s.to(a.dtype)], dim=-1))
        return b

    def forward(self, features, sig, pred, exc, target=None, ltp=None, teacher=None, alpha: float = 0.0):
        """Logits (B, T*160, 256); with ``target`` the mean cross-entropy instead, computed without
        keeping any B x T*160 x 256 activation (fused chunked loss; ``old``: recomputed in backward).
        ``ltp``: the LTP taps (B, T*160, ltp_taps) of a model that has them (:mod:`.ltp`).
        ``teacher`` (from :func:`teacher_head`) and ``alpha``: distillation, the loss against the mixture of
        ``target`` (1 - alpha) and the teacher's distribution (alpha)."""
        if target is None:
            return self.sample_rate(self.frame_rate(features), sig, pred, exc, ltp)
        h = self.hidden(self.frame_rate(features), sig, pred, exc, ltp)
        if self.impl != "old":
            d = self.dual_fc
            return dual_fc_loss(h, d.weight, d.bias, d.factor, target, teacher=teacher, alpha=alpha)
        return torch.utils.checkpoint.checkpoint(self._head_loss, h, target, teacher, alpha, use_reentrant=False)

    def _head_loss(self, h, target, teacher=None, alpha: float = 0.0):
        logits = self.dual_fc(h).float().reshape(-1, MU_LEVELS)
        hard = F.cross_entropy(logits, target.reshape(-1))
        if teacher is None:
            return hard
        with torch.no_grad():
            pt = torch.softmax(dual_fc_logits(*(x.float() for x in teacher)).reshape(-1, MU_LEVELS), dim=-1)
        soft = -(pt * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        return (1.0 - alpha) * hard + alpha * soft

    # -- single step (for export tests and the torch reference synthesis)
    def step(self, cond: torch.Tensor, sig: torch.Tensor, pred: torch.Tensor, exc: torch.Tensor,
             ha: torch.Tensor, hb: torch.Tensor, ltp: torch.Tensor | None = None):
        """cond (B, C); sig/pred/exc (B,) int64; ha (B, N); hb (B, 16); ltp (B, ltp_taps) int64 when the
        model has taps -> (logits (B,256), ha, hb)."""
        emb = self.embed(self.sample_indices(sig, pred, exc, ltp)).flatten(-2)
        ha = _gru_cell(self.gru_a, torch.cat([emb, cond], dim=-1), ha)
        hb = _gru_cell(self.gru_b, torch.cat([ha, cond], dim=-1), hb)
        return self.dual_fc(hb), ha, hb

    def sample_net_parameters(self):
        for name, p in self.named_parameters():
            if not name.startswith("frame_net."):
                yield p


def _gru_cell(gru: nn.GRU, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    gi = F.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)
    gh = F.linear(h, gru.weight_hh_l0, gru.bias_hh_l0)
    ir, iz, inn = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(ir + hr)
    z = torch.sigmoid(iz + hz)
    n = torch.tanh(inn + r * hn)
    return (1.0 - z) * n + z * h


def sample_from_logits(logits: torch.Tensor, boost: float, uniform: float) -> int:
    """LPCNet sampling: softmax(boost * logits), floor PDF_FLOOR subtracted, inverse CDF with `uniform`."""
    p = torch.softmax(logits.float() * boost, dim=-1)
    p = torch.clamp(p - PDF_FLOOR, min=0.0)
    c = torch.cumsum(p, dim=-1)
    return int(min(255, int((c < uniform * c[-1]).sum())))


@torch.no_grad()
def synthesize(model: LPCNet, features: torch.Tensor, lpc: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Slow torch reference of the decoder loop (pre-emphasized int16-scale output, no de-emphasis).

    features (T+4, 20) (two frames of context each side), lpc (T, 16), uniforms (T*160,) in [0, 1).
    Mirrors receiver.reference_decoder's ONNX frame loop step by step.
    """
    model.eval()
    cond = model.frame_rate(features[None])[0]
    T = cond.shape[0]
    N, NB = model.cfg.gru_a, model.cfg.gru_b
    ha, hb = torch.zeros(1, N), torch.zeros(1, NB)
    hist = torch.zeros(LPC_ORDER)  # hist[m-1] = x[n-m]
    exc = torch.tensor([128])
    out = torch.zeros(T * FRAME_SIZE)
    corr = features[2:2 + T, CORR_INDEX]
    taps = model.cfg.ltp_taps
    lags = ltp_lag(features[2:2 + T, PERIOD_INDEX])
    gated = ltp_gated(corr, model.cfg.ltp_gate)
    offs = torch.tensor(tap_offsets(taps), dtype=torch.long)
    past = torch.full((1, T * FRAME_SIZE), 128, dtype=torch.long)  # the excitations drawn so far
    for f in range(T):
        boost = sampling_boost(float(corr[f]))
        for n in range(FRAME_SIZE):
            t = f * FRAME_SIZE + n
            u = float((lpc[f] * hist).sum())
            sig = ulaw_index(hist[:1])
            pred = ulaw_index(torch.tensor([u]))
            ltp = step_taps(past, t, lags[f:f + 1], offs, gated[f:f + 1]) if taps else None
            logits, ha, hb = model.step(cond[f:f + 1], sig, pred, exc, ha, hb, ltp)
            idx = sample_from_logits(logits[0], boost, float(uniforms[t]))
            x = min(32767.0, max(-32768.0, u + float(ulaw2lin(torch.tensor(float(idx))))))
            hist = torch.cat([torch.tensor([x]), hist[:-1]])
            exc = torch.tensor([idx])
            past[0, t] = idx
            out[t] = x
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def teacher_head(teacher: LPCNet, features, sig, pred, exc) -> tuple[torch.Tensor, ...]:
    """What distillation needs of a teacher for a teacher-forced batch: its GRU-B output over the batch's
    samples and its dual FC's parameters, ``(h, weight, bias, factor)``, without gradients (the student's
    ``forward(..., teacher=...)`` evaluates the teacher's logits a chunk at a time). A teacher with LTP taps
    fails in :meth:`LPCNet.sample_indices` (it would need its own taps)."""
    with torch.no_grad():
        h = teacher.hidden(teacher.frame_rate(features), sig, pred, exc)
    d = teacher.dual_fc
    return h, d.weight.detach(), d.bias.detach(), d.factor.detach()


def load_checkpoint(path) -> tuple[LPCNet, dict]:
    """A train.py checkpoint as a model in eval mode (the weights it ships: averaged ones when it has them)."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = LPCNet(LPCNetConfig(**ck["config"]))
    model.load_state_dict(deployed_weights(ck))  # a run trained with --ema-decay ships its averaged weights
    model.eval()
    return model, ck
