"""GRU-B's recurrence as one Triton kernel per pass instead of one cuDNN launch per sample.

GRU-B has 16 units but runs 160 steps per frame (2,400 per 15-frame sequence); cuDNN launches work per
step, so it takes about 30 % of a training step for < 1 % of the FLOPs (facts.md: 85 of 279 ms). Here
the input gates ``gi = x W_ih^T + b_ih`` come from one large matmul (torch, autocast dtype) and the
recurrence runs in a single kernel: each program owns a block of sequences, keeps h and W_hh in
registers and walks all steps; the backward kernel walks them in reverse, recomputing the gates from
the saved hidden states, and accumulates dW_hh / db_hh in registers (one atomic add per program).

Same function and parameters as ``nn.GRU`` (PyTorch's gate order r, z, n; ``n = tanh(gi_n + r (W_hn h +
b_hn))``), h0 = 0. Hidden states are float32. Enable with ``PNSC_LPCNET_GRU_B=scan`` (CUDA + Triton);
``TRITON_INTERPRET=1`` runs the same kernels on the CPU (tests).

    y = gru_b_forward(model.gru_b, x)   # x (B, L, in) -> (B, L, H)
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

try:  # Triton ships with CUDA builds of torch; the CPU build needs `pip install triton` (tests only)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None
    tl = None

ENV = "PNSC_LPCNET_GRU_B"
BLOCK_B = 16


def requested() -> str:
    """``scan`` or ``cudnn`` (the default) from $PNSC_LPCNET_GRU_B."""
    v = os.environ.get(ENV, "cudnn").strip().lower() or "cudnn"
    if v not in ("scan", "cudnn"):
        raise ValueError(f"{ENV}={v!r}: expected scan or cudnn")
    return v


if triton is not None:
    @triton.jit
    def _tanh(x):
        return 2.0 * tl.sigmoid(2.0 * x) - 1.0

    @triton.jit
    def _load_wt(w_ptr, g: tl.constexpr, H: tl.constexpr):
        """W_g^T as (H_in, H_out): element [i, j] = W_hh[g*H + j, i]."""
        k = tl.arange(0, H)
        return tl.load(w_ptr + (g * H + k[None, :]) * H + k[:, None])

    @triton.jit
    def _load_w(w_ptr, g: tl.constexpr, H: tl.constexpr):
        """W_g as (H_out, H_in)."""
        k = tl.arange(0, H)
        return tl.load(w_ptr + (g * H + k[:, None]) * H + k[None, :])

    @triton.jit
    def _gates(gi_ptrs, hp, wr, wz, wn, br, bz, bn, m, H: tl.constexpr):
        k = tl.arange(0, H)
        gr = tl.load(gi_ptrs + k[None, :], mask=m, other=0.0).to(tl.float32)
        gz = tl.load(gi_ptrs + H + k[None, :], mask=m, other=0.0).to(tl.float32)
        gn = tl.load(gi_ptrs + 2 * H + k[None, :], mask=m, other=0.0).to(tl.float32)
        hn = tl.dot(hp, wn, input_precision="ieee") + bn[None, :]
        r = tl.sigmoid(gr + tl.dot(hp, wr, input_precision="ieee") + br[None, :])
        z = tl.sigmoid(gz + tl.dot(hp, wz, input_precision="ieee") + bz[None, :])
        n = _tanh(gn + r * hn)
        return r, z, n, hn

    @triton.jit
    def _scan_fwd(gi_ptr, w_ptr, b_ptr, out_ptr, B, L, H: tl.constexpr, BLOCK: tl.constexpr):
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        k = tl.arange(0, H)
        m = (rows < B)[:, None]
        wr, wz, wn = _load_wt(w_ptr, 0, H), _load_wt(w_ptr, 1, H), _load_wt(w_ptr, 2, H)
        br, bz, bn = tl.load(b_ptr + k), tl.load(b_ptr + H + k), tl.load(b_ptr + 2 * H + k)
        gi_row = gi_ptr + rows[:, None].to(tl.int64) * (L * 3 * H)
        out_row = out_ptr + rows[:, None].to(tl.int64) * (L * H)
        h = tl.zeros((BLOCK, H), tl.float32)
        for t in range(0, L):
            r, z, n, hn = _gates(gi_row + t * 3 * H, h, wr, wz, wn, br, bz, bn, m, H)
            h = (1.0 - z) * n + z * h
            tl.store(out_row + t * H + k[None, :], h, mask=m)

    @triton.jit
    def _scan_bwd(gi_ptr, w_ptr, b_ptr, out_ptr, gout_ptr, dgi_ptr, dw_ptr, db_ptr, B, L,
                  H: tl.constexpr, BLOCK: tl.constexpr):
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        k = tl.arange(0, H)
        m = (rows < B)[:, None]
        wr, wz, wn = _load_wt(w_ptr, 0, H), _load_wt(w_ptr, 1, H), _load_wt(w_ptr, 2, H)
        vr, vz, vn = _load_w(w_ptr, 0, H), _load_w(w_ptr, 1, H), _load_w(w_ptr, 2, H)
        br, bz, bn = tl.load(b_ptr + k), tl.load(b_ptr + H + k), tl.load(b_ptr + 2 * H + k)
        gi_row = gi_ptr + rows[:, None].to(tl.int64) * (L * 3 * H)
        dgi_row = dgi_ptr + rows[:, None].to(tl.int64) * (L * 3 * H)
        out_row = out_ptr + rows[:, None].to(tl.int64) * (L * H)
        gout_row = gout_ptr + rows[:, None].to(tl.int64) * (L * H)
        dh = tl.zeros((BLOCK, H), tl.float32)
        dwr = tl.zeros((H, H), tl.float32)
        dwz = tl.zeros((H, H), tl.float32)
        dwn = tl.zeros((H, H), tl.float32)
        dbr = tl.zeros((H,), tl.float32)
        dbz = tl.zeros((H,), tl.float32)
        dbn = tl.zeros((H,), tl.float32)
        for tt in range(0, L):
            t = L - 1 - tt
            hp = tl.load(out_row + tl.maximum(t - 1, 0) * H + k[None, :], mask=m, other=0.0)
            hp = tl.where(t > 0, hp, 0.0)  # h0 = 0
            r, z, n, hn = _gates(gi_row + t * 3 * H, hp, wr, wz, wn, br, bz, bn, m, H)
            dh += tl.load(gout_row + t * H + k[None, :], mask=m, other=0.0)
            da_n = dh * (1.0 - z) * (1.0 - n * n)
            da_z = dh * (hp - n) * z * (1.0 - z)
            da_r = da_n * hn * r * (1.0 - r)
            dgh_n = da_n * r
            base = dgi_row + t * 3 * H + k[None, :]
            tl.store(base, da_r.to(dgi_ptr.dtype.element_ty), mask=m)
            tl.store(base + H, da_z.to(dgi_ptr.dtype.element_ty), mask=m)
            tl.store(base + 2 * H, da_n.to(dgi_ptr.dtype.element_ty), mask=m)
            dh = dh * z + tl.dot(da_r, vr, input_precision="ieee") + tl.dot(da_z, vz, input_precision="ieee") \
                + tl.dot(dgh_n, vn, input_precision="ieee")
            dwr += tl.dot(tl.trans(da_r), hp, input_precision="ieee")
            dwz += tl.dot(tl.trans(da_z), hp, input_precision="ieee")
            dwn += tl.dot(tl.trans(dgh_n), hp, input_precision="ieee")
            dbr += tl.sum(da_r, axis=0)
            dbz += tl.sum(da_z, axis=0)
            dbn += tl.sum(dgh_n, axis=0)
        wk = k[:, None] * H + k[None, :]
        tl.atomic_add(dw_ptr + wk, dwr)
        tl.atomic_add(dw_ptr + H * H + wk, dwz)
        tl.atomic_add(dw_ptr + 2 * H * H + wk, dwn)
        tl.atomic_add(db_ptr + k, dbr)
        tl.atomic_add(db_ptr + H + k, dbz)
        tl.atomic_add(db_ptr + 2 * H + k, dbn)


class _GRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        B, L, G = gi.shape
        H = G // 3
        gi = gi.contiguous()
        w = w_hh.detach().float().contiguous()
        b = b_hh.detach().float().contiguous()
        out = torch.empty(B, L, H, dtype=torch.float32, device=gi.device)
        _scan_fwd[(triton.cdiv(B, BLOCK_B),)](gi, w, b, out, B, L, H=H, BLOCK=BLOCK_B)
        ctx.save_for_backward(gi, w, b, out)
        ctx.dtypes = (w_hh.dtype, b_hh.dtype)
        return out

    @staticmethod
    def backward(ctx, gout: torch.Tensor):
        gi, w, b, out = ctx.saved_tensors
        B, L, G = gi.shape
        H = G // 3
        dgi = torch.empty_like(gi)
        dw = torch.zeros(G, H, dtype=torch.float32, device=gi.device)
        db = torch.zeros(G, dtype=torch.float32, device=gi.device)
        _scan_bwd[(triton.cdiv(B, BLOCK_B),)](gi, w, b, out, gout.float().contiguous(), dgi, dw, db, B, L,
                                              H=H, BLOCK=BLOCK_B)
        return dgi, dw.to(ctx.dtypes[0]), db.to(ctx.dtypes[1])


def gru_scan(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """Hidden states (B, L, H) float32 of a GRU with input gates ``gi`` (B, L, 3H) and h0 = 0."""
    if triton is None:
        raise RuntimeError(f"{ENV}=scan needs Triton (shipped with CUDA builds of torch; or pip install triton)")
    H = w_hh.shape[1]
    if H < 16 or H & (H - 1):
        raise ValueError(f"gru_scan: hidden size {H} must be a power of two >= 16 (tl.dot tiles)")
    return _GRUScan.apply(gi, w_hh, b_hh)


def gru_b_forward(gru: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """GRU-B over ``x`` (B, L, in): the scan kernel when requested (and Triton is there), else cuDNN/ATen."""
    if requested() == "scan":
        gi = F.linear(x, gru.weight_ih_l0, gru.bias_ih_l0)
        return gru_scan(gi, gru.weight_hh_l0, gru.bias_hh_l0)
    y, _ = gru(x)
    return y


def self_check(device: str = "cuda", batch: int = 40, length: int = 480, n_in: int = 400, hidden: int = 16,
               dtype: torch.dtype = torch.float32) -> dict:
    """Scan against ``nn.GRU`` on random data (outputs and every gradient): max errors relative to the
    reference's largest magnitude. Run on the device that will train before trusting the kernel there."""
    torch.manual_seed(0)
    gru = nn.GRU(n_in, hidden, batch_first=True).to(device)
    x = torch.randn(batch, length, n_in, device=device)
    w = torch.randn(batch, length, hidden, device=device)
    out = {}
    for mode in ("cudnn", "scan"):
        xs = x.clone().to(dtype).requires_grad_(True)
        gru.zero_grad()
        if mode == "scan":
            y = gru_scan(F.linear(xs, gru.weight_ih_l0.to(dtype), gru.bias_ih_l0.to(dtype)),
                         gru.weight_hh_l0, gru.bias_hh_l0)
        else:
            y, _ = gru(xs.float())
        (y.float() * w).sum().backward()
        out[mode] = [y.detach().float(), xs.grad.float()] + [p.grad.clone() for p in gru.parameters()]
    names = ["output", "d_input", "d_weight_ih", "d_weight_hh", "d_bias_ih", "d_bias_hh"]
    return {n: float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
            for n, a, b in zip(names, out["scan"], out["cudnn"])}
