"""Block sparsity of GRU-A's recurrent weights, as xiph LPCNet trains it (16x1 blocks, magnitude pruning).

GRU-A's ``weight_hh_l0`` (3N, N) is three (N, N) gate matrices (reset, update, new; PyTorch's order).  Each
gate matrix is cut into blocks of ``rows`` consecutive OUTPUT rows x 1 input column (``rows`` = 16 for the
real sizes S and L: the runtime's ``sparse_sgemv_accum16`` layout).  The diagonal of every gate matrix is
always kept and does not count as a block (LPCNet's dump stores it as a separate dense vector): a block's
magnitude is the sum of squares of its off-diagonal weights, and the block density is the fraction of
blocks with any non-zero off-diagonal weight.

Schedule (LPCNet's ``Sparsify`` callback): density 1 before ``t0``,
``1 - (1 - target) * (1 - (1 - (t - t0) / (t1 - t0))^3)`` between ``t0`` and ``t1``, ``target`` after.

Masks keep, per gate matrix, exactly ``round(density * blocks)`` blocks of the largest magnitude (ties by
position, so the choice is deterministic) plus the diagonal.  :class:`BlockSparsifier` drives it in
training: the mask is recomputed every ``every`` steps during the ramp, once at ``target`` when the ramp
ends (then it stays fixed), and applied (pruned weights set to exactly 0, in place) after every optimizer
step.  A new mask is computed from the weights already masked by the old one, so a pruned block (magnitude
0) never comes back while the density falls: pruning is monotone and the mask is a pure function of the
weights and the step.  Adam's moments of pruned weights are left alone: they keep following the gradients
at those positions, but the weights are zeroed again after every step, so they never reach the model (and
a block that a changed, higher target revives restarts from 0 with those moments).

Sizes whose N is not a multiple of 16 (``tiny``: N = 24) use the largest divisor of N not above 16 as the
block height (:func:`block_rows`; 12 for N = 24), so every block has the same shape.
"""
from __future__ import annotations

import torch

BLOCK_ROWS = 16  # LPCNet's 16x1 blocks (16 output rows x 1 input column)
GATES = 3


def block_rows(n: int, want: int = BLOCK_ROWS) -> int:
    """Block height for gate matrices of size ``n``: ``want`` when it divides n, else the largest divisor
    of n below it (every block the same shape)."""
    if n < 1:
        raise ValueError(f"gate size must be positive, got {n}")
    return max(d for d in range(1, min(want, n) + 1) if n % d == 0)


def check_settings(target: float, start: int, end: int, every: int) -> None:
    """ValueError unless the settings describe a schedule: 0 < target <= 1, 0 <= start <= end, every >= 1."""
    if not (0.0 < target <= 1.0):  # NaN fails too
        raise ValueError(f"sparse density must be in (0, 1], got {target}")
    if start < 0 or end < start:
        raise ValueError(f"sparse ramp must have 0 <= start <= end, got start {start} end {end}")
    if every < 1:
        raise ValueError(f"sparse mask interval must be >= 1 step, got {every}")


def density_at(step: int, target: float, t0: int, t1: int) -> float:
    """LPCNet's cubic ramp: 1 before t0, ``target`` from t1 on."""
    if step <= t0:
        return 1.0
    if step >= t1:
        return float(target)
    r = 1.0 - (step - t0) / (t1 - t0)
    return 1.0 - (1.0 - target) * (1.0 - r * r * r)


def _gates(w: torch.Tensor) -> tuple[int, int]:
    """(gate count, N) of a (G N, N) recurrent matrix."""
    if w.dim() != 2 or w.shape[0] % w.shape[1]:
        raise ValueError(f"expected a (G*N, N) recurrent weight matrix, got shape {tuple(w.shape)}")
    return w.shape[0] // w.shape[1], w.shape[1]


def block_magnitude(w: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """(G, N // rows, N) float64 sums of squares of each block's off-diagonal weights, per gate."""
    g, n = _gates(w)
    rows = rows or block_rows(n)
    x = w.detach().to("cpu", torch.float64).reshape(g, n, n).clone()
    x[:, torch.arange(n), torch.arange(n)] = 0.0
    return (x * x).reshape(g, n // rows, rows, n).sum(2)


def block_mask(w: torch.Tensor, density: float, rows: int | None = None) -> torch.Tensor:
    """Bool (G N, N) mask (on the CPU): per gate, the ``round(density * blocks)`` blocks of largest
    magnitude (ties: lower position first) plus the diagonal."""
    g, n = _gates(w)
    rows = rows or block_rows(n)
    mag = block_magnitude(w, rows).reshape(g, -1)
    n_blocks = mag.shape[1]
    keep = round(density * n_blocks)
    blocks = torch.zeros(g, n_blocks, dtype=torch.bool)
    order = torch.sort(mag, dim=1, descending=True, stable=True).indices[:, :keep]
    blocks.scatter_(1, order, True)
    mask = blocks.reshape(g, n // rows, 1, n).expand(g, n // rows, rows, n).reshape(g, n, n).clone()
    mask[:, torch.arange(n), torch.arange(n)] = True
    return mask.reshape(g * n, n)


def apply_mask(w: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the weights outside ``mask`` in place (exact zeros)."""
    _prune(w, ~mask.to(w.device))


def _prune(w: torch.Tensor, pruned: torch.Tensor) -> None:
    with torch.no_grad():
        w.masked_fill_(pruned, 0.0)


def block_density(w: torch.Tensor, rows: int | None = None) -> float:
    """Fraction of the (G N, N) matrix's off-diagonal blocks (``rows`` x 1) holding any non-zero weight."""
    g, n = _gates(w)
    rows = rows or block_rows(n)
    x = w.detach().to("cpu").reshape(g, n, n).clone()
    x[:, torch.arange(n), torch.arange(n)] = 0
    nz = (x != 0).reshape(g, n // rows, rows, n).any(2)
    return float(nz.sum()) / nz.numel()


def export_notes(w: torch.Tensor) -> dict:
    """What an export records about a sparse GRU-A recurrent matrix (nothing for a dense one)."""
    d = block_density(w)
    if d >= 1.0:
        return {}
    return {"gru_a_density": round(d, 6), "gru_a_block": f"{block_rows(_gates(w)[1])}x1"}


class BlockSparsifier:
    """Prunes one recurrent matrix during training (see the module docstring for the rules).

    ``state`` (a dict stored in the checkpoint) holds the current mask and the density it was computed for,
    so a resumed run applies exactly the mask an uninterrupted one would."""

    def __init__(self, weight: torch.nn.Parameter, target: float, start: int, end: int, every: int,
                 state: dict | None = None):
        check_settings(target, start, end, every)
        self.w, self.target, self.start, self.end, self.every = weight, float(target), start, end, every
        self.rows = block_rows(_gates(weight)[1])
        st = state or {}
        mask = st.get("mask")
        self.mask = mask.to(torch.bool) if mask is not None else None
        self.mask_density = st.get("mask_density")
        self._pruned = ~self.mask.to(weight.device) if self.mask is not None else None  # on the weight's device

    def state(self) -> dict:
        return {"mask": self.mask, "mask_density": self.mask_density}

    def due(self, step: int) -> float | None:
        """The density to recompute the mask at after optimizer step ``step`` (steps counted from 1), or None."""
        if step >= self.end:  # the final mask, once; then fixed
            return self.target if self.mask is None or self.mask_density != self.target else None
        if step >= self.start and (step - self.start) % self.every == 0:
            return density_at(step, self.target, self.start, self.end)
        return None

    def after_step(self, step: int, broadcast=None) -> float | None:
        """Update the mask if due, then apply it. ``broadcast`` (a function of a tensor, in place) makes every
        DDP rank use rank 0's mask. Returns the new mask's density when one was computed."""
        d = self.due(step)
        if d is not None:
            if self._pruned is not None:  # rank the blocks that are still there (pruned ones score 0)
                _prune(self.w, self._pruned)
            mask = block_mask(self.w, d, self.rows)
            if broadcast is not None:
                m = mask.to(self.w.device, torch.uint8)
                broadcast(m)
                mask = m.cpu().to(torch.bool)
            self.mask, self.mask_density = mask, d
            self._pruned = ~mask.to(self.w.device)
        if self._pruned is not None:
            _prune(self.w, self._pruned)
        return d

    def prune_like(self, other: torch.Tensor) -> None:
        """Zero the blocks of ``other`` (same shape, e.g. the weight average's copy) that the mask prunes now."""
        if other.shape != self.w.shape:
            raise ValueError(f"prune_like: shape {tuple(other.shape)} is not the weight's {tuple(self.w.shape)}")
        if self._pruned is not None:
            _prune(other, self._pruned.to(other.device))

    @property
    def final(self) -> bool:
        """True once the final (target-density) mask is in place: only then is a checkpoint the sparse model."""
        return self.mask is not None and self.mask_density == self.target

    def density(self) -> float:
        """Achieved block density of the weight now."""
        return block_density(self.w, self.rows)
