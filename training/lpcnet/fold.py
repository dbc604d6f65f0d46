"""GRU-A with the sample embeddings folded into its input matrix (LPCNet's inference trick, in training).

GRU-A's input is [E[sig], E[pred], E[exc], f] (f: the frame's conditioning), so its input gates are

    gi = T_sig[sig] + T_pred[pred] + T_exc[exc] + (W_f f + b_ih),   T_k = E @ W_k^T  (256 x 3N)

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


def folded_inputs(embed: nn.Embedding, gru: nn.GRU, cond: torch.Tensor, sig, pred, exc):
    """-> (tables (3*256, 3N) f32, cond gates (B, T, 3N) f32, indices (B, L, 3) into the stacked tables)."""
    e = embed.weight.shape[1]
    w = gru.weight_ih_l0.float()
    with torch.autocast(cond.device.type, enabled=False):
        emb = embed.weight.float()
        tables = torch.cat([emb @ w[:, k * e:(k + 1) * e].t() for k in range(3)], dim=0)
        gates = F.linear(cond.float(), w[:, 3 * e:], gru.bias_ih_l0.float())
    n = embed.weight.shape[0]
    offs = torch.arange(3, device=sig.device) * n
    idx = torch.stack([sig, pred, exc], dim=-1) + offs
    return tables, gates, idx


def _gates(gi: torch.Tensor, gh: torch.Tensor, H: int):
    rz = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
    r, z = rz[:, :H], rz[:, H:]
    n = torch.tanh(torch.addcmul(gi[:, 2 * H:], r, gh[:, 2 * H:]))
    return r, z, n


class _FoldedGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tables, gates, idx, w_hh, b_hh, frame: int, dtype: torch.dtype):
        B, L, _ = idx.shape
        H = w_hh.shape[1]
        dev = idx.device
        with torch.autocast(dev.type, enabled=False):
            w_t = w_hh.to(dtype).t()
            b = b_hh.float()
            out = torch.empty(B, L, H, dtype=dtype, device=dev)
            h = torch.zeros(B, H, dtype=torch.float32, device=dev)
            h_mm = h.to(dtype)
            for t in range(L):
                gi = F.embedding_bag(idx[:, t], tables, mode="sum").add_(gates[:, t // frame])
                gh = (h_mm @ w_t).float().add_(b)
                r, z, n = _gates(gi, gh, H)
                out[:, t] = torch.lerp(n, h, z)  # (1 - z) n + z h
                h_mm = out[:, t]
                h = h_mm.float()
        ctx.save_for_backward(tables, gates, idx, w_hh, b_hh, out)
        ctx.frame = frame
        return out

    @staticmethod
    def backward(ctx, grad_out):
        tables, gates, idx, w_hh, b_hh, out = ctx.saved_tensors
        frame = ctx.frame
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
            dh = torch.zeros(B, H, dtype=torch.float32, device=dev)
            zero = torch.zeros(B, H, dtype=dtype, device=dev)
            gi_buf = torch.empty(B, frame, 3 * H, dtype=torch.float32, device=dev)
            gh_buf = torch.empty(B, frame, 3 * H, dtype=torch.float32, device=dev)
            for f0 in range(((L - 1) // frame) * frame, -1, -frame):
                n_t = min(frame, L - f0)
                for j in range(n_t - 1, -1, -1):
                    t = f0 + j
                    hp_mm = out[:, t - 1] if t > 0 else zero
                    hp = hp_mm.float()
                    gi = F.embedding_bag(idx[:, t], tables, mode="sum").add_(gates[:, t // frame])
                    gh = (hp_mm @ w_t).float().add_(b)
                    r, z, n = _gates(gi, gh, H)
                    dh += grad_out[:, t].float()
                    dan = (dh * (1.0 - z)).mul_(1.0 - n * n)  # through n = tanh(a_n)
                    daz = (dh * (hp - n)).mul_(z * (1.0 - z))
                    dar = (dan * gh[:, 2 * H:]).mul_(r * (1.0 - r))
                    dgi, dgh = gi_buf[:, j], gh_buf[:, j]
                    dgi[:, :H], dgi[:, H:2 * H], dgi[:, 2 * H:] = dar, daz, dan
                    dgh[:, :2 * H] = dgi[:, :2 * H]
                    torch.mul(dan, r, out=dgh[:, 2 * H:])
                    dh = (dh * z).add_((dgh.to(dtype) @ w_mm).float())
                # per frame: table, conditioning, W_hh and b_hh gradients of its n_t steps
                dgi_f, dgh_f = gi_buf[:, :n_t], gh_buf[:, :n_t]
                d_gates[:, f0 // frame] += dgi_f.sum(1)
                flat = dgi_f.reshape(B * n_t, 3 * H)
                for k in range(3):
                    d_tables.index_add_(0, idx[:, f0:f0 + n_t, k].reshape(-1), flat)
                hp_f = torch.cat([zero[:, None], out[:, :n_t - 1]], 1) if f0 == 0 else out[:, f0 - 1:f0 + n_t - 1]
                g2 = dgh_f.reshape(B * n_t, 3 * H)
                d_w += (g2.to(dtype).t() @ hp_f.reshape(B * n_t, H)).float()
                d_b += g2.sum(0)
        return d_tables, d_gates, None, d_w.to(w_hh.dtype), d_b.to(b_hh.dtype), None, None


def folded_gru_a(embed: nn.Embedding, gru: nn.GRU, cond: torch.Tensor, sig, pred, exc, frame: int,
                 dtype: torch.dtype) -> torch.Tensor:
    """GRU-A outputs (B, T*frame, N) in ``dtype`` for teacher-forced sig/pred/exc (B, T*frame) and
    cond (B, T, C); equal to ``gru(cat([embed(sig), embed(pred), embed(exc), cond per sample]))[0]``."""
    tables, gates, idx = folded_inputs(embed, gru, cond, sig, pred, exc)
    return _FoldedGRU.apply(tables, gates, idx, gru.weight_hh_l0, gru.bias_hh_l0, frame, dtype)
