"""The weight average of --ema-decay: its arithmetic, resuming it, and swapping it into a model."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pnsc.training.lpcnet.ema import WeightAverage, deployed_weights  # noqa: E402


def _model() -> torch.nn.Module:
    m = torch.nn.Linear(3, 2)
    with torch.no_grad():
        m.weight.fill_(1.0)
        m.bias.fill_(0.0)
    return m


def test_average_follows_the_weights_in_place_updates():
    m = _model()
    ema = WeightAverage(m, 0.75)
    with torch.no_grad():  # what an optimizer step does: in place
        m.weight.fill_(5.0)
        m.bias.fill_(-4.0)
    ema.update()
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 3), 2.0))  # 0.75 * 1 + 0.25 * 5
    assert torch.allclose(ema.shadow["bias"], torch.full((2,), -1.0))
    ema.update()
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 3), 2.75))


def test_swapped_in_restores_the_weights_and_resume_continues_the_average():
    m = _model()
    ema = WeightAverage(m, 0.5)
    with torch.no_grad():
        m.weight.fill_(3.0)
    ema.update()  # weight average 2.0
    with ema.swapped_in(m):
        assert torch.allclose(m.weight, torch.full((2, 3), 2.0))
    assert torch.allclose(m.weight, torch.full((2, 3), 3.0))
    again = WeightAverage(m, 0.5, ema.state_dict())
    assert torch.allclose(again.shadow["weight"], torch.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="do not match"):
        WeightAverage(torch.nn.Linear(3, 3, bias=False), 0.5, ema.state_dict())
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        WeightAverage(m, 1.0)
    ck = {"model": m.state_dict(), "ema": ema.state_dict()}
    assert torch.allclose(deployed_weights(ck)["weight"], torch.full((2, 3), 2.0))
    assert deployed_weights({"model": m.state_dict()})["weight"] is not None
