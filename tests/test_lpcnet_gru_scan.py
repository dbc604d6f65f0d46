"""GRU-B's Triton scan kernels against nn.GRU, run by Triton's interpreter on the CPU (a subprocess,
because TRITON_INTERPRET must be set before Triton is imported)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="the test extra installs triton (its interpreter runs the kernels on CPU)")

REPO = Path(__file__).resolve().parent.parent


def _run(code: str) -> dict:
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_scan_matches_nn_gru_outputs_and_every_gradient():
    # 20 sequences: one full block of 16 and a partial one (masked rows)
    r = _run("import json, torch; from pnsc.training.lpcnet.gru_scan import self_check;"
             "print(json.dumps({'f32': self_check('cpu', batch=20, length=33, n_in=24),"
             "'bf16': self_check('cpu', batch=20, length=33, n_in=24, dtype=torch.bfloat16)}))")
    assert set(r["f32"]) == {"output", "d_input", "d_weight_ih", "d_weight_hh", "d_bias_ih", "d_bias_hh"}
    assert max(r["f32"].values()) < 1e-4, r["f32"]
    assert max(r["bf16"].values()) < 5e-2, r["bf16"]  # bf16 input gates, as under autocast


def test_model_loss_and_gradients_equal_with_the_scan_gru_b():
    code = """
import json, os, torch
from pnsc.training.lpcnet.model import LPCNet, config_for
from pnsc.training.lpcnet.noise import make_inputs
torch.manual_seed(0)
model = LPCNet(config_for('S'), impl='fast')
g = torch.Generator().manual_seed(1)
feats = torch.randn(2, 5, 20, generator=g); feats[..., 18] = 100.0; feats[..., 19] = 0.5
signal = (torch.randn(2, 320, generator=g) * 2000).to(torch.int16)
lpc = torch.zeros(2, 1, 16); lpc[..., 0] = 0.9
sig, pred, exc, target = make_inputs(signal, lpc, noise=False)
res = {}
for mode in ('cudnn', 'scan'):
    os.environ['PNSC_LPCNET_GRU_B'] = mode
    model.zero_grad()
    loss = model(feats, sig, pred, exc, target)
    loss.backward()
    res[mode] = (float(loss), {n: p.grad.clone() for n, p in model.named_parameters()})
rel = {n: float((res['scan'][1][n] - a).abs().max() / a.abs().max().clamp_min(1e-12)) for n, a in res['cudnn'][1].items()}
print(json.dumps({'loss': [res['cudnn'][0], res['scan'][0]], 'worst': max(rel.values()), 'n': len(rel)}))
"""
    r = _run(code)
    assert abs(r["loss"][0] - r["loss"][1]) < 1e-5 and r["loss"][0] > 1.0
    assert r["n"] >= 20 and r["worst"] < 1e-4, r


def test_bad_settings_are_refused(monkeypatch):
    import torch

    from pnsc.training.lpcnet import gru_scan

    monkeypatch.setenv(gru_scan.ENV, "fastest")
    with pytest.raises(ValueError, match="expected scan or cudnn"):
        gru_scan.requested()
    with pytest.raises(ValueError, match="power of two"):
        gru_scan.gru_scan(torch.zeros(1, 4, 24), torch.zeros(24, 8), torch.zeros(24))
