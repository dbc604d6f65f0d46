"""ONNX export of the speaker encoder: input ``logspec`` (batch, time, 257), output ``embedding`` (batch, 32)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

OPSET = 17


def export_onnx(model: torch.nn.Module, path: str | Path, example_frames: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    x = torch.zeros(1, example_frames, model.n_bins)
    x.normal_(generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), input_names=["logspec"], output_names=["embedding"],
            dynamic_axes={"logspec": {0: "batch", 1: "time"}, "embedding": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    return path
