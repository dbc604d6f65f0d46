"""Noise domain ``self``: the noisy past is the clean LPC prediction plus the model's own draw.

The construction is exact; a sure model reproduces the true past and the injected error grows with the
model's uncertainty; chunked sampling draws what unchunked sampling draws; LTP models work; train.py runs
it end to end, resumes it as saved and reproducibly; multi.py's recipe tags set it."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from pnsc.training.lpcnet import multi, train  # noqa: E402
from pnsc.training.lpcnet.batch_synth import sample_excitation  # noqa: E402
from pnsc.training.lpcnet.ltp import excitation_history, ltp_inputs  # noqa: E402
from pnsc.training.lpcnet.model import LPCNet, config_for, ulaw2lin, ulaw_index  # noqa: E402
from pnsc.training.lpcnet.noise import inputs_from, make_inputs, predict, self_noisy_signal  # noqa: E402
from pnsc.training.lpcnet.self_noise import model_draws, sample_boost, self_inputs  # noqa: E402
from pnsc.training.lpcnet.synthetic import tiny_train_args  # noqa: E402

B, T = 6, 2


def _batch(seed=0, B=B, T=T):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, T + 4, 20, generator=g)
    feats[..., 18] = 40 + 200 * torch.rand(B, T + 4, generator=g)
    feats[..., 19] = torch.rand(B, T + 4, generator=g)  # pitch correlation: boosts from 1 to 1.5
    t = torch.arange((T + 1) * 160, dtype=torch.float32)
    signal = (3000 * torch.sin(t / 7.0)[None] + 800 * torch.randn(B, (T + 1) * 160, generator=g)).round()
    lpc = 0.3 * torch.randn(B, T, 16, generator=g) / torch.arange(1, 17)
    return feats, signal, lpc


def _model(seed=0, ltp_taps=0):
    torch.manual_seed(seed)
    return LPCNet(config_for("tiny", ltp_taps), impl="fast")


def _fixed_logits(model: LPCNet, logits: torch.Tensor) -> LPCNet:
    """Make the model's logits ``logits`` (256,) at every sample: dual FC weights zero, channel 0's tanh
    saturated at 1 with the logits as its factors, channel 1 off."""
    with torch.no_grad():
        model.dual_fc.weight.zero_()
        model.dual_fc.bias.fill_(20.0)
        model.dual_fc.factor[0] = logits
        model.dual_fc.factor[1] = 0.0
    return model


def _rel_error_db(xn, signal):
    err = (xn - signal.float())[:, 160:]
    return 10 * np.log10(float((err.double() ** 2).mean()) / float((signal.double()[:, 160:] ** 2).mean()))


def test_construction_is_exact():
    feats, signal, lpc = _batch()
    (inputs, draws, xn) = self_inputs(_model(), signal, lpc, feats, generator=torch.Generator().manual_seed(1),
                                      return_draws=True)
    assert draws.shape == (B, T * 160) and draws.dtype == torch.long
    # x~ = prediction from the clean past + the drawn excitation, computed here from the LPC by hand
    s = signal.double().numpy()
    k = 3
    u = np.array([sum(lpc[k, (i - 160) // 160, m - 1].item() * s[k, i - m] for m in range(1, 17))
                  for i in range(160, s.shape[1])])
    want = np.clip(u + ulaw2lin(draws[k]).double().numpy(), -32768, 32767)
    assert np.allclose(xn[k, 160:].double().numpy(), want, atol=0.05)
    assert torch.equal(xn[:, :160], signal[:, :160].float())
    for got, ref in zip(inputs, inputs_from(signal, xn, lpc)):
        assert torch.equal(got, ref)
    assert torch.equal(inputs[3], inputs_from(signal, self_noisy_signal(signal, lpc, draws), lpc)[3])
    # the same generator state gives the same inputs
    again = self_inputs(_model(), signal, lpc, feats, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(inputs, again))
    with pytest.raises(ValueError, match="do not match"):
        self_noisy_signal(signal, lpc, draws[:, 1:])
    with pytest.raises(ValueError, match="needs the model"):
        make_inputs(signal, lpc, domain="self")


def test_a_draw_of_the_true_excitation_reproduces_the_true_past():
    feats, signal, lpc = _batch(1)
    clean = make_inputs(signal, lpc, noise=False)
    true_idx = clean[3]  # mu(s - u) from the clean past: the true excitation of every predicted sample
    # a distribution one-hot at the true excitation: the runtime's rule draws it, whatever the uniform
    onehot = 40.0 * torch.nn.functional.one_hot(true_idx.reshape(-1), 256).float()
    drawn = sample_excitation(onehot, sample_boost(feats).reshape(-1), torch.rand(true_idx.numel()))
    assert torch.equal(drawn, true_idx.reshape(-1))
    xn = self_noisy_signal(signal, lpc, drawn.reshape(true_idx.shape))
    # x~ = s up to the mu-law quantisation of the excitation: far below the synthetic noise's error
    assert _rel_error_db(xn, signal) < -25
    got = inputs_from(signal, xn, lpc)
    for x, y in zip(got, clean):
        assert float((x - y).abs().float().mean()) < 0.3


def _excitation_signal(level_of, lpc, T, B=2):
    """A signal whose every excitation is a chosen mu-law level: x[i] = u[i] + ulaw2lin(level_of(i))."""
    x = torch.zeros(B, (T + 1) * 160)
    for i in range(160, x.shape[1]):
        u = (lpc[:, (i - 160) // 160] * x[:, i - 16:i].flip(-1)).sum(-1)
        x[:, i] = u + ulaw2lin(torch.tensor(float(level_of(i))))
    return x


def test_injected_error_grows_with_the_model_s_uncertainty():
    feats, _, lpc = _batch(2, B=2)
    lpc = lpc * 0.5
    k = 150  # every true excitation is level 150
    signal = _excitation_signal(lambda i: k, lpc, T)
    levels = torch.arange(256, dtype=torch.float32)
    errs = []
    for width in (0.0, 2.0, 8.0, None):  # sure at the truth, ever wider around it, uniform
        logits = torch.zeros(256) if width is None else \
            (-((levels - k) ** 2) / (2 * width ** 2) if width else 30.0 * (levels == k).float())
        model = _fixed_logits(_model(), logits)
        _, draws, xn = self_inputs(model, signal, lpc, feats, generator=torch.Generator().manual_seed(3),
                                   return_draws=True)
        if width == 0.0:
            assert torch.equal(draws, torch.full_like(draws, k))
            assert torch.allclose(xn, signal, atol=0.5)  # the true past, exactly (float rounding only)
            errs.append(-np.inf)
        else:
            errs.append(_rel_error_db(xn, signal))
    assert errs[1] < errs[2] - 6 and errs[2] < errs[3] - 6, errs
    assert errs[3] > 0, errs  # uniform draws: an error larger than the signal itself


def test_chunked_sampling_draws_what_unchunked_sampling_draws():
    feats, signal, lpc = _batch(4)
    model = _model(5).eval()
    sig, pred, exc, _ = make_inputs(signal, lpc, noise=False)
    full = model_draws(model, feats, sig, pred, exc, generator=torch.Generator().manual_seed(7), chunk=B * T * 160)
    for chunk in (1000, 97):
        part = model_draws(model, feats, sig, pred, exc, generator=torch.Generator().manual_seed(7), chunk=chunk)
        # the logits of a row do not depend on the chunk around it: equal draws
        # (a row could only differ by a float ulp right at a CDF step; none does here)
        assert torch.equal(part, full), float((part != full).float().mean())
    assert len(torch.unique(full)) > 20  # a random model draws widely
    # the draws follow the model: the unchunked rows' logits, sampled by the runtime's rule
    logits = model(feats, sig, pred, exc).reshape(-1, 256)
    u = torch.rand(B * T * 160, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sample_excitation(logits, sample_boost(feats).reshape(-1), u), full.reshape(-1))
    with pytest.raises(ValueError, match="chunk"):
        model_draws(model, feats, sig, pred, exc, chunk=0)


def test_mixing_fraction_keeps_the_clean_past_of_the_other_sequences():
    feats, signal, lpc = _batch(6, B=16)
    model = _model()
    clean = make_inputs(signal, lpc, noise=False)
    none = self_inputs(model, signal, lpc, feats, generator=torch.Generator().manual_seed(1), mix=0.0)
    assert all(torch.equal(x, y) for x, y in zip(none, clean))
    _, _, xn = self_inputs(model, signal, lpc, feats, generator=torch.Generator().manual_seed(1), mix=0.5,
                           return_draws=True)
    noisy = (xn != signal).any(1)
    assert 2 <= int(noisy.sum()) <= 14
    assert torch.equal(xn[~noisy], signal[~noisy].float())
    _, _, full = self_inputs(model, signal, lpc, feats, generator=torch.Generator().manual_seed(1),
                             return_draws=True)
    assert torch.equal(xn[noisy], full[noisy])  # the mix draws its sequence choice after the samples'
    with pytest.raises(ValueError, match="mix"):
        self_inputs(model, signal, lpc, feats, mix=1.5)


def test_ltp_models_take_their_taps_from_the_noisy_past():
    feats, signal, lpc = _batch(8)
    model = _model(ltp_taps=3)
    inputs, draws, xn = self_inputs(model, signal, lpc, feats, generator=torch.Generator().manual_seed(2),
                                    return_draws=True)
    assert len(inputs) == 5
    assert torch.equal(inputs[4], ltp_inputs(excitation_history(xn, lpc), feats, 3, 0.0))
    assert torch.equal(inputs[2][:, 1:], ulaw_index(xn[:, 160:-1] - predict(xn, lpc)[:, 1:-1]))


@pytest.fixture
def data(lpcnet_tiny_data):
    return lpcnet_tiny_data


def _args(data, out, *extra):
    return tiny_train_args(data, out, "--epochs", "3", *extra)


def test_train_runs_resumes_and_reproduces_with_self_noise(data, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert train.main(_args(data, whole, "--noise-domain", "self", "--max-steps", "3")) == 0
    ck = torch.load(whole / "last.pt", weights_only=False)
    assert ck["args"]["noise_domain"] == "self" and ck["args"]["self_mix"] == 1.0 and ck["step"] == 3
    steps = [json.loads(r) for r in (whole / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in steps if r["kind"] == "step")
    # two calls, the second without the flag: resumed as saved, the same weights as one call
    train.main(_args(data, split, "--noise-domain", "self", "--max-steps", "2"))
    train.main(_args(data, split, "--max-steps", "3"))
    ck2 = torch.load(split / "last.pt", weights_only=False)
    assert ck2["args"]["noise_domain"] == "self" and ck2["step"] == 3
    for k, v in ck["model"].items():
        assert torch.equal(v, ck2["model"][k]), k
    # the model's own noise differs from the synthetic one
    exc = tmp_path / "exc"
    train.main(_args(data, exc, "--max-steps", "3"))
    assert not torch.equal(torch.load(exc / "last.pt", weights_only=False)["model"]["dual_fc.bias"],
                           ck["model"]["dual_fc.bias"])


def test_self_mix_is_saved_and_checked(data, tmp_path):
    out = tmp_path / "mix"
    train.main(_args(data, out, "--noise-domain", "self", "--self-mix", "0.25", "--max-steps", "1"))
    train.main(_args(data, out, "--max-steps", "2"))
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["args"]["self_mix"] == 0.25 and ck["args"]["noise_domain"] == "self" and ck["step"] == 2
    with pytest.raises(SystemExit, match=r"--self-mix must be in \[0, 1\]"):
        train.main(_args(data, tmp_path / "bad", "--noise-domain", "self", "--self-mix", "2"))
    with pytest.raises(SystemExit, match="needs --noise-domain self"):
        train.main(_args(data, tmp_path / "bad", "--self-mix", "0.5"))


def test_recipe_tags_set_the_domain():
    assert multi.split_branch("lpcnet-bl-s.selfnoise") == ("lpcnet-bl-s", ["--noise-domain", "self"])
    assert multi.split_branch("plpcnet-s-g1-ft.selfmix0.5.lr2e-4") == (
        "plpcnet-s-g1-ft", ["--noise-domain", "self", "--self-mix", "0.5", "--lr", "2e-4"])


def test_ddp_runs_the_draws_on_the_plain_module(data, tmp_path):
    """Two gloo ranks with self noise: the no-grad pass runs on the plain module, outside DDP."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "pnsc.training.lpcnet.train", *_args(data, out, "--noise-domain", "self", "--max-steps", "2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    r = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["step"] == 2 and ck["args"]["noise_domain"] == "self" and "x2" in r.stderr


def test_measurement_script_prints_both_domains(data, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    run = tmp_path / "run"
    train.main(_args(data, run, "--max-steps", "1"))
    script = repo / "scripts" / "self_noise_error.py"
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, str(script), "--checkpoint", str(run / "last.pt"), "--data", str(data),
                        "--limit", "6", "--batch", "4", "--features", "features", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["sequences"] == 6 and res["samples"] == 6 * 320
    # an untrained model draws far wider than the default synthetic noise
    assert res["self_err_db_all"] > res["exc_err_db_all"] + 6 and res["self_level_rms_all"] > res["exc_level_rms_all"]
    r = subprocess.run([sys.executable, str(script), "--checkpoint", str(tmp_path / "nope.pt")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"pnsc: error: {tmp_path / 'nope.pt'}: no such checkpoint"
