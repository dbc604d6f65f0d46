"""Memory-lean pieces of LPCNet's teacher-forced training step (same maths as the plain modules).

- :func:`dual_fc_loss`: dual FC + mean cross-entropy over the 256 mu-law levels, evaluated in row
  chunks with the gradients written in the same pass (the loss is the graph's end, so
  d loss / d logits = (softmax - onehot) / N is known in the forward pass).  Nothing of size
  rows x 256 outlives a chunk and nothing is recomputed in the backward pass; only the (rows, 16)
  gradient of GRU-B's output is kept.  Numerics follow the plain path under autocast: the h @ W
  product in the autocast dtype, bias / tanh / factors / log-softmax in float32.
  With a teacher (distillation), the target is a mixture: ``(1 - alpha)`` of the one-hot sample and
  ``alpha`` of the teacher's softmax over the same rows (its own dual FC on its own GRU-B output), so the
  loss is ``(1 - alpha) CE(target) + alpha CE(teacher's distribution)`` and its logit gradient is
  ``softmax - mixture``; the teacher's logits too exist a chunk at a time.
- :func:`frame_concat`: [per-sample tensor, frame conditioning] for the GRU inputs with the
  conditioning broadcast over the 160 samples of its frame (no repeated copy of it is kept; its
  gradient is the sum over the frame's samples, as for ``repeat_interleave``).
"""
from __future__ import annotations

import torch

ROW_CHUNK = 1 << 18  # rows per chunk: ~1.6 GB of float32 scratch at most


def compute_dtype(device_type: str) -> torch.dtype:
    """The dtype autocast would give a matmul here (float32 outside autocast)."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.float32


def _tanh_and_logits(x, w_mm, b2, fac, mm_dtype, two: int, n_out: int):
    """A chunk of rows through the dual FC: tanh(W h + b) (rows, 2, 256) and the logits (rows, 256), float32."""
    t = (x.to(mm_dtype) @ w_mm.t()).float().add_(b2).tanh_().view(x.shape[0], two, n_out)
    return t, (t * fac).sum(1)


class _DualFCLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, factor, target, chunk: int, mm_dtype: torch.dtype, grad_mode: bool,
                teacher=None, alpha: float = 0.0):
        n_rows, n_in = h.shape
        two, n_out, _ = weight.shape
        # needs_input_grad says True under torch.no_grad() too: validation must not pay for gradients
        need = tuple(n and grad_mode for n in ctx.needs_input_grad[:4])
        with torch.autocast(h.device.type, enabled=False):
            w2 = weight.reshape(two * n_out, n_in)
            w_mm = w2.to(mm_dtype)
            b2 = bias.reshape(two * n_out).float()
            fac = factor.float()
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            dh = torch.empty_like(h) if need[0] else None
            dw = torch.zeros(two * n_out, n_in, dtype=torch.float32, device=h.device) if need[1] else None
            db = torch.zeros(two, n_out, dtype=torch.float32, device=h.device) if need[2] else None
            df = torch.zeros(two, n_out, dtype=torch.float32, device=h.device) if need[3] else None
            if teacher is not None:
                th, tw, tb, tf = teacher
                tw_mm = tw.detach().reshape(two * n_out, th.shape[1]).to(mm_dtype)
                tb2, tfac = tb.detach().reshape(two * n_out).float(), tf.detach().float()
            for s in range(0, n_rows, chunk):
                hc = h[s:s + chunk].to(mm_dtype)
                tc = target[s:s + chunk]
                rows = hc.shape[0]
                t, z = _tanh_and_logits(hc, w_mm, b2, fac, mm_dtype, two, n_out)
                lse = torch.logsumexp(z, dim=1)
                hard = lse - z.gather(1, tc[:, None])[:, 0]
                if teacher is None:
                    total += hard.sum()
                else:  # the teacher's distribution over these rows, and CE against the mixture
                    pt = torch.softmax(_tanh_and_logits(th[s:s + chunk].detach(), tw_mm, tb2, tfac, mm_dtype,
                                                        two, n_out)[1], dim=1)
                    soft = lse - (pt * z).sum(1)
                    total += ((1.0 - alpha) * hard + alpha * soft).sum()
                if not any(need):
                    continue
                dz = z.sub_(lse[:, None]).exp_()  # softmax
                if teacher is None:
                    dz.scatter_add_(1, tc[:, None], torch.full_like(dz[:, :1], -1.0))  # - onehot(target)
                else:
                    dz.sub_(pt.mul_(alpha)).scatter_add_(1, tc[:, None], torch.full_like(dz[:, :1], alpha - 1.0))
                dz = dz[:, None, :]
                if df is not None:
                    df += (t * dz).sum(0)
                dy = t.square_().neg_().add_(1.0).mul_(dz).mul_(fac)  # d/dy of sum_c f_c tanh(y_c)
                if db is not None:
                    db += dy.sum(0)
                dy_mm = dy.view(rows, two * n_out).to(mm_dtype)
                if dw is not None:
                    dw += (dy_mm.t() @ hc).float()
                if dh is not None:
                    dh[s:s + chunk] = dy_mm @ w_mm
        ctx.save_for_backward(dh, dw, db, df)
        ctx.n_rows = n_rows
        ctx.shapes = (weight.shape, bias.dtype, factor.dtype, weight.dtype)
        return total / n_rows

    @staticmethod
    def backward(ctx, grad):
        dh, dw, db, df = ctx.saved_tensors
        wshape, bdt, fdt, wdt = ctx.shapes
        g = grad.float() / ctx.n_rows
        out_h = (dh.float() * g).to(dh.dtype) if dh is not None else None
        out_w = (dw * g).reshape(wshape).to(wdt) if dw is not None else None
        out_b = (db * g).to(bdt) if db is not None else None
        out_f = (df * g).to(fdt) if df is not None else None
        return out_h, out_w, out_b, out_f, None, None, None, None, None, None


def dual_fc_loss(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, factor: torch.Tensor,
                 target: torch.Tensor, chunk: int | None = None, teacher=None, alpha: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of ``sum_c factor_c * tanh(W_c h + b_c)`` (LPCNet's dual FC) against ``target``.

    h (..., n_in); weight (2, 256, n_in); bias, factor (2, 256); target (...) int64 -> scalar float32.
    Equal to ``F.cross_entropy(DualFC(h).float().reshape(-1, 256), target.reshape(-1))``; ``chunk`` rows
    at a time (default :data:`ROW_CHUNK`). ``teacher``: ``(h_t, weight_t, bias_t, factor_t)`` of a teacher's
    dual FC (h_t (..., n_in_t) rows aligned with h; no gradient flows to it) and ``alpha`` in [0, 1]: the loss is
    then ``(1 - alpha) * CE(target) + alpha * CE(softmax of the teacher's logits)`` (distillation).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    mm = compute_dtype(h.device.type)
    h = h.reshape(-1, h.shape[-1])
    if teacher is not None:
        th, tw, tb, tf = teacher
        th = th.reshape(-1, th.shape[-1])
        if th.shape[0] != h.shape[0]:
            raise ValueError(f"teacher rows {th.shape[0]} != student rows {h.shape[0]}")
        teacher = (th, tw, tb, tf)
    return _DualFCLoss.apply(h, weight, bias, factor, target.reshape(-1),
                             int(chunk or ROW_CHUNK), mm, torch.is_grad_enabled(), teacher, float(alpha))


def frame_concat(x: torch.Tensor, cond: torch.Tensor, frame_size: int) -> torch.Tensor:
    """x (B, T*frame_size, D), cond (B, T, C) -> (B, T*frame_size, D+C) with cond repeated per sample."""
    B, T, C = cond.shape
    xs = x.reshape(B, T, frame_size, x.shape[-1])
    cs = cond.to(x.dtype)[:, :, None, :].expand(B, T, frame_size, C)
    return torch.cat([xs, cs], dim=-1).reshape(B, T * frame_size, x.shape[-1] + C)
