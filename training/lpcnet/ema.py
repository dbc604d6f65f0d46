"""Weight averaging for training: an exponential moving average of a model's weights (Polyak averaging).

Rounds 12-13 showed a fine-tune's decoded quality swinging from round to round while its validation loss
kept falling: at lr ~4e-4 the last weights are one point of a noisy walk. A run trained with
``--ema-decay D`` keeps ``shadow = D * shadow + (1 - D) * weights`` after every optimizer step, validates
the shadow weights, and ships them: ``last.pt`` holds both (``model`` to resume training from, ``ema`` for
export and fine-tuning), and :func:`deployed_weights` is what every reader of a checkpoint should take.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class WeightAverage:
    """The float32 moving average of ``model``'s floating-point weights, on the model's device."""

    def __init__(self, model: torch.nn.Module, decay: float, shadow: dict[str, torch.Tensor] | None = None):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        current = model.state_dict()
        self.shadow = {k: v.detach().float().clone() for k, v in current.items() if v.is_floating_point()}
        if shadow is not None:  # resuming: the saved average goes on from where it was
            if set(shadow) != set(self.shadow):
                raise ValueError("saved EMA weights do not match the model's")
            for k, v in shadow.items():
                self.shadow[k].copy_(v.to(self.shadow[k].device, torch.float32))
        # state_dict() tensors share storage with the parameters, which the optimizer updates in place: pair
        # them once, so a step's update is one fused call instead of a dict walk and two kernels per tensor
        self._fused: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self._other: list[tuple[torch.Tensor, torch.Tensor]] = []
        for k, s in self.shadow.items():
            if current[k].dtype == torch.float32:
                self._fused[0].append(s)
                self._fused[1].append(current[k].detach())
            else:
                self._other.append((s, current[k].detach()))

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average, after an optimizer step: shadow += (1 - decay) * (weights - shadow)."""
        if self._fused[0]:
            torch._foreach_lerp_(self._fused[0], self._fused[1], 1.0 - self.decay)
        for s, v in self._other:  # weights kept in another precision (none in train.py today)
            s.lerp_(v.float(), 1.0 - self.decay)

    @torch.no_grad()
    def reset_to(self, weights: dict[str, torch.Tensor]) -> None:
        """Make the average equal to ``weights`` (a run that ends on its best averaged weights)."""
        for k, s in self.shadow.items():
            s.copy_(weights[k].to(s.device, torch.float32))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.shadow.items()}

    @contextmanager
    def swapped_in(self, model: torch.nn.Module) -> Iterator[None]:
        """Run the block with the averaged weights in ``model``; its own weights come back afterwards."""
        current = model.state_dict()
        backup = {k: current[k].detach().clone() for k in self.shadow}
        with torch.no_grad():
            for k, s in self.shadow.items():
                current[k].copy_(s.to(current[k].dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in backup.items():
                    current[k].copy_(v)


def deployed_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """The weights a checkpoint ships: its averaged weights when it was trained with them, else its weights."""
    ema = ckpt.get("ema")
    if not ema:
        return ckpt["model"]
    # the average covers the floating-point tensors; anything else (none in LPCNet today) is the model's
    return {**ckpt["model"], **ema}
