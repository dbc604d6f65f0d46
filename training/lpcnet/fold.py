"""GRU-A with the sample embeddings folded into its input matrix (LPCNet's inference trick, in training).

GRU-A's input is [E[sig], E[pred], E[exc], (E[tap_k] ...), f] (f: the frame's conditioning; the LTP
taps of models that have them), so its input gates are

    gi = T_sig[sig] + T_pred[pred] + T_exc[exc] + ... + (W_f f + b_ih),   T_k = E @ W_k^T  (256 x 3N)

with W_k the embedding's column block of ``gru_a.weight_ih_l0``.  The tables are rebuilt from E and
W_ih in every forward pass (cheap), so gradients reach both.  The recurrence is a hand-written
autograd function that keeps only GRU-A's outputs (its own hidden states) and recomputes the gates in
the backward pass: no B x T*160 x (3*128+128) input, no per-step activations.  The table and
conditioning gate sums are float32; h @ W_hh runs in the autocast dtype and the state is kept in it,
as cuDNN does.  Same function and parameters as ``nn.GRU`` on the concatenated input.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def folded_inputs(embed: nn.Embedding, gru: nn.GRU, cond: torch.Tensor, idx: torch.Tensor):
    """idx (B, L, K) mu-law indices of GRU-A's K embedded inputs -> (tables (K*256, 3N) f32, cond gates
    (B, T, 3N) f32, indices (B, L, K) into the stacked tables)."""
    e = embed.weight.shape[1]
    K = idx.shape[-1]
    w = gru.weight_ih_l0.float()
    with torch.autocast(cond.device.type, enabled=False):
        emb = embed.weight.float()
        tables = torch.cat([emb @ w[:, k * e:(k + 1) * e].t() for k in range(K)], dim=0)
        gates = F.linear(cond.float(), w[:, K * e:], gru.bias_ih_l0.float())
    n = embed.weight.shape[0]
    offs = torch.arange(K, device=idx.device) * n
    return tables, gates, idx + offs


def _frame_input_gates(tables, gates, idx, s: int, e: int, frame: int) -> torch.Tensor:
    """Input gates (B, e - s, 3N) float32 of steps s..e-1 (all in frame s // frame)."""
    B = idx.shape[0]
    gi = F.embedding_bag(idx[:, s:e].reshape(-1, idx.shape[-1]), tables, mode="sum")
    return gi.view(B, e - s, -1).add_(gates[:, s // frame, None])


def _table_grad(grad: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Sum of ``grad`` rows per index (n, D): sort-based on CUDA, no atomics on the few hot rows."""
    return torch.ops.aten.embedding_dense_backward(grad, idx, n, -1, False)


def _cell_fwd(gi: torch.Tensor, gh_mm: torch.Tensor, b_hh: torch.Tensor, h: torch.Tensor):
    """One GRU step from input gates gi (B, 3N) f32, h @ W_hh^T (B, 3N, compute dtype), state h (B, N)
    -> new state in h's dtype and in float32."""
    H = h.shape[1]
    gh = gh_mm.float() + b_hh
    rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
    r, z = rz[:, :H], rz[:, H:]
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    h_new = torch.lerp(n, h.float(), z)  # (1 - z) n + z h
    return h_new.to(h.dtype)


def _cell_bwd(gi, gh_mm, b_hh, hp, dh_z, dh_mm, g):
    """Backward of one step.  dh = dh_z + dh_mm + g is d loss / d h_t (dh_z, dh_mm: the parts from
    step t + 1; g: the output gradient).  -> (d gi, d gh (both f32), dh * z, d gh in hp's dtype)."""
    H = hp.shape[1]
    dh = dh_z + dh_mm.float() + g.float()
    gh = gh_mm.float() + b_hh
    hpf = hp.float()
    rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
    r, z = rz[:, :H], rz[:, H:]
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    dan = dh * (1.0 - z) * (1.0 - n * n)
    daz = dh * (hpf - n) * z * (1.0 - z)
    dar = dan * gh[:, 2 * H:] * r * (1.0 - r)
    dgi = torch.cat([dar, daz, dan], dim=1)
    dgh = torch.cat([dar, daz, dan * r], dim=1)
    return dgi, dgh, dh * z, dgh.to(hp.dtype)


_COMPILED: dict = {}


def _cells(compiled: bool):
    """(forward cell, backward cell), optionally through torch.compile (one fused kernel each)."""
    if not compiled:
        return _cell_fwd, _cell_bwd
    if not _COMPILED:
        _COMPILED["f"] = torch.compile(_cell_fwd, dynamic=False, fullgraph=True)
        _COMPILED["b"] = torch.compile(_cell_bwd, dynamic=False, fullgraph=True)
    return _COMPILED["f"], _COMPILED["b"]


class _FoldedGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tables, gates, idx, w_hh, b_hh, frame: int, dtype: torch.dtype, compiled: bool):
        B, L, _ = idx.shape
        H = w_hh.shape[1]
        dev = idx.device
        fwd, _ = _cells(compiled)
        with torch.autocast(dev.type, enabled=False):
            w_t = w_hh.to(dtype).t()
            b = b_hh.float()
            out = torch.empty(B, L, H, dtype=dtype, device=dev)
            h = torch.zeros(B, H, dtype=dtype, device=dev)
            for s in range(0, L, frame):
                gi_f = _frame_input_gates(tables, gates, idx, s, min(L, s + frame), frame)
                steps = []
                for j in range(gi_f.shape[1]):
                    h = fwd(gi_f[:, j], h @ w_t, b, h)
                    steps.append(h)
                out[:, s:s + len(steps)] = torch.stack(steps, 1)
        ctx.save_for_backward(tables, gates, idx, w_hh, b_hh, out)
        ctx.frame, ctx.compiled = frame, compiled
        return out

    @staticmethod
    def backward(ctx, grad_out):
        tables, gates, idx, w_hh, b_hh, out = ctx.saved_tensors
        frame = ctx.frame
        _, bwd = _cells(ctx.compiled)
        B, L, _ = idx.shape
        H = w_hh.shape[1]
        dev, dtype = idx.device, out.dtype
        with torch.autocast(dev.type, enabled=False):
            w_t, w_mm = w_hh.to(dtype).t(), w_hh.to(dtype)
            b = b_hh.float()
            d_tables = torch.zeros_like(tables)
            d_gates = torch.zeros_like(gates)
            d_w = torch.zeros(3 * H, H, dtype=torch.float32, device=dev)
            d_b = torch.zeros(3 * H, dtype=torch.float32, device=dev)
            dh_z = torch.zeros(B, H, dtype=torch.float32, device=dev)
            dh_mm = torch.zeros(B, H, dtype=dtype, device=dev)
            zero = torch.zeros(B, H, dtype=dtype, device=dev)
            nk = tables.shape[0] // idx.shape[-1]
            for f0 in range(((L - 1) // frame) * frame, -1, -frame):
                n_t = min(frame, L - f0)
                gi_f = _frame_input_gates(tables, gates, idx, f0, f0 + n_t, frame)
                dgis, dghs = [None] * n_t, [None] * n_t
                for j in range(n_t - 1, -1, -1):
                    t = f0 + j
                    hp = out[:, t - 1] if t > 0 else zero
                    dgi, dgh, dh_z, dgh_mm = bwd(gi_f[:, j], hp @ w_t, b, hp, dh_z, dh_mm, grad_out[:, t])
                    dh_mm = dgh_mm @ w_mm
                    dgis[j], dghs[j] = dgi, dgh
                # per frame: table, conditioning, W_hh and b_hh gradients of its n_t steps
                dgi_f, dgh_f = torch.stack(dgis, 1), torch.stack(dghs, 1)
                d_gates[:, f0 // frame] += dgi_f.sum(1)
                flat = dgi_f.reshape(B * n_t, 3 * H)
                for k in range(idx.shape[-1]):
                    d_tables[k * nk:(k + 1) * nk] += _table_grad(flat, idx[:, f0:f0 + n_t, k].reshape(-1) - k * nk, nk)
                hp_f = torch.cat([zero[:, None], out[:, :n_t - 1]], 1) if f0 == 0 else out[:, f0 - 1:f0 + n_t - 1]
                g2 = dgh_f.reshape(B * n_t, 3 * H)
                d_w += (g2.to(dtype).t() @ hp_f.reshape(B * n_t, H)).float()
                d_b += g2.sum(0)
        return d_tables, d_gates, None, d_w.to(w_hh.dtype), d_b.to(b_hh.dtype), None, None, None


def folded_gru_a(embed: nn.Embedding, gru: nn.GRU, cond: torch.Tensor, idx: torch.Tensor, frame: int,
                 dtype: torch.dtype, compiled: bool = False) -> torch.Tensor:
    """GRU-A outputs (B, T*frame, N) in ``dtype`` for teacher-forced inputs idx (B, T*frame, K) (sig,
    pred, exc and any LTP taps) and cond (B, T, C); equal to
    ``gru(cat([embed(idx[..., 0]), ..., embed(idx[..., K-1]), cond per sample]))[0]``.
    ``compiled``: the per-step cells through torch.compile (first call compiles, ~10-30 s)."""
    tables, gates, idx = folded_inputs(embed, gru, cond, idx)
    return _FoldedGRU.apply(tables, gates, idx, gru.weight_hh_l0, gru.bias_hh_l0, frame, dtype, compiled)
