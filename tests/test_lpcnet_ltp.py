"""LTP taps (GRU-A's lagged-excitation inputs): their teacher-forcing inputs agree with the excitation the
decoder feeds back, a model without taps widens into one with them without changing its output, every
training path computes the same loss and gradients with taps, and the reference synthesis uses them.
The voicing gate (``ltp_gate``): 0 changes nothing; above 0, the taps of frames whose pitch correlation is
below it read 128, in teacher forcing, in the step loop and in both torch syntheses."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from pnsc.training.lpcnet import fused  # noqa: E402
from pnsc.training.lpcnet.ltp import excitation_history, frame_gates, frame_lags, ltp_inputs  # noqa: E402
from pnsc.training.lpcnet.model import (LPCNet, LPCNetConfig, config_for, ltp_lag, synthesize,  # noqa: E402
                                        tap_offsets, widen_for_ltp)
from pnsc.training.lpcnet.noise import make_inputs  # noqa: E402


def _batch(B=2, T=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, T + 4, 20, generator=g)
    feats[..., 18] = 20 + 250 * torch.rand(B, T + 4, generator=g)  # lags clamp at both ends
    t = torch.arange((T + 1) * 160, dtype=torch.float32)
    signal = (3000 * torch.sin(t / 7.0)[None] + 800 * torch.randn(B, (T + 1) * 160, generator=g)).round()
    lpc = 0.3 * torch.randn(B, T, 16, generator=g) / torch.arange(1, 17)
    return feats, signal, lpc


def test_lag_and_offsets():
    assert tap_offsets(5) == [-2, -1, 0, 1, 2] and tap_offsets(1) == [0] and tap_offsets(0) == []
    assert ltp_lag(torch.tensor([0.0, 31.4, 99.5, 100.49, 300.0])).tolist() == [32, 32, 100, 100, 255]
    with pytest.raises(ValueError):
        config_for("S", 4)


@pytest.mark.parametrize("noise", [False, True])
def test_taps_are_the_fed_back_excitation_one_lag_back(noise):
    feats, signal, lpc = _batch()
    g = torch.Generator().manual_seed(3)
    sig, pred, exc, target, ltp = make_inputs(signal, lpc, noise=noise, features=feats, ltp_taps=5, generator=g)
    B, L = sig.shape
    lags = frame_lags(feats, L // 160)
    checked = 0
    for b in range(B):
        for k in range(0, L, 37):
            lag = int(lags[b, k // 160])
            for t, d in enumerate(tap_offsets(5)):
                j = k - lag + d + 1  # exc[j] = e[159 + j], the excitation of global sample k + 160 - lag + d
                if j >= 0:
                    assert int(ltp[b, k, t]) == int(exc[b, j])
                    checked += 1
                elif 160 + k - lag + d < 16:
                    assert int(ltp[b, k, t]) == 128
    assert checked > 50


def test_excitation_history_matches_exc_inputs():
    feats, signal, lpc = _batch()
    _, _, exc, _ = make_inputs(signal, lpc, noise=False)
    e = excitation_history(signal, lpc)
    assert torch.equal(e[:, 159:-1], exc)
    assert (e[:, :16] == 128).all()


def test_ltp_needs_features_and_matching_inputs():
    feats, signal, lpc = _batch()
    with pytest.raises(ValueError, match="feature rows"):
        make_inputs(signal, lpc, noise=False, ltp_taps=3)
    model = LPCNet(config_for("tiny", 3), impl="fast")
    sig, pred, exc, target = make_inputs(signal, lpc, noise=False)
    with pytest.raises(ValueError, match="needs ltp inputs with 3 taps"):
        model(feats, sig, pred, exc)
    with pytest.raises(ValueError, match="no LTP taps"):
        LPCNet(config_for("tiny"), impl="fast")(feats, sig, pred, exc, ltp=torch.zeros(*sig.shape, 3, dtype=torch.long))


@pytest.mark.parametrize("impl", ["old", "fast", "fold"])
def test_widened_model_computes_the_same_function(impl):
    feats, signal, lpc = _batch()
    torch.manual_seed(0)
    base = LPCNet(config_for("tiny"), impl=impl).eval()
    wide = LPCNet(config_for("tiny", 5), impl=impl).eval()
    wide.load_state_dict(widen_for_ltp(base.state_dict(), wide.cfg))
    sig, pred, exc, target, ltp = make_inputs(signal, lpc, noise=False, features=feats, ltp_taps=5)
    with torch.no_grad():
        a = base(feats, sig, pred, exc)
        b = wide(feats, sig, pred, exc, ltp=ltp)
    assert torch.allclose(a, b, atol=1e-5)
    # ... and the new columns are live: they get gradients and change the output once moved
    wide.train()
    loss = wide(feats, sig, pred, exc, target, ltp=ltp)
    loss.backward()
    w = wide.gru_a.weight_ih_l0
    e = wide.cfg.embed
    assert float(w.grad[:, 3 * e:8 * e].abs().max()) > 0
    with pytest.raises(ValueError, match="not a narrower model"):
        widen_for_ltp({"gru_a.weight_ih_l0": torch.zeros(3, 7)}, wide.cfg)


@pytest.mark.parametrize("impl", ["fast", "fold"])
def test_paths_match_old_with_taps(impl, monkeypatch):
    monkeypatch.setattr(fused, "ROW_CHUNK", 317)
    feats, signal, lpc = _batch()
    torch.manual_seed(1)
    old = LPCNet(config_for("tiny", 5), impl="old")
    new = LPCNet(config_for("tiny", 5), impl=impl)
    new.load_state_dict(old.state_dict())
    args = make_inputs(signal, lpc, noise=True, features=feats, ltp_taps=5, generator=torch.Generator().manual_seed(2))
    sig, pred, exc, target, ltp = args
    res = []
    for m in (old, new):
        m.zero_grad(set_to_none=True)
        loss = m(feats, sig, pred, exc, target, ltp=ltp)
        loss.backward()
        res.append((float(loss.detach()), {n: p.grad.clone() for n, p in m.named_parameters()}))
    (l0, g0), (l1, g1) = res
    assert abs(l0 - l1) < 1e-5 * abs(l0)
    for n in g0:
        scale = float(g0[n].abs().max())
        assert scale > 0, n
        assert float((g0[n] - g1[n]).abs().max()) <= 1e-5 * scale + 1e-9, n


def test_step_loop_with_true_past_equals_teacher_forced_pass():
    """Stepping the model sample by sample with the true past (as the decoder does with its own draws)
    gives the teacher-forced logits: the taps index the same excitations in both."""
    feats, signal, lpc = _batch(B=1, T=2)
    torch.manual_seed(4)
    model = LPCNet(config_for("tiny", 5), impl="fast").eval()
    with torch.no_grad():
        model.gru_a.weight_ih_l0[:, 3 * 8:8 * 8].normal_(0, 0.5)  # make the taps matter
        sig, pred, exc, target, ltp = make_inputs(signal, lpc, noise=False, features=feats, ltp_taps=5)
        logits = model(feats, sig, pred, exc, ltp=ltp)[0]
        cond = model.frame_rate(feats)[0]
        e = excitation_history(signal, lpc)[0]
        lags = frame_lags(feats, 2)[0]
        ha, hb = torch.zeros(1, model.cfg.gru_a), torch.zeros(1, model.cfg.gru_b)
        offs = torch.tensor(tap_offsets(5))
        for k in range(2 * 160):
            f = k // 160
            j = 160 + k - int(lags[f]) + offs
            taps = torch.where(j >= 0, e[j.clamp(min=0)], 128)[None]
            out, ha, hb = model.step(cond[f:f + 1], sig[:, k], pred[:, k], exc[:, k], ha, hb, taps)
            assert torch.allclose(out[0], logits[k], atol=1e-4), k


def test_reference_synthesis_runs_with_taps_and_differs():
    torch.manual_seed(5)
    feats = torch.zeros(1 + 4, 20)
    feats[:, 18] = 80.0
    feats[:, 19] = 0.9
    lpc = torch.zeros(1, 16)
    u = torch.rand(160)
    base = LPCNet(config_for("tiny"), impl="fast")
    wide = LPCNet(config_for("tiny", 3), impl="fast")
    wide.load_state_dict(widen_for_ltp(base.state_dict(), wide.cfg))
    a = synthesize(base, feats, lpc, u)
    b = synthesize(wide, feats, lpc, u)
    assert torch.equal(a, b)  # zero tap columns: the same draws
    with torch.no_grad():
        wide.gru_a.weight_ih_l0[:, 24:48].normal_(0, 2.0)
    assert not torch.equal(a, synthesize(wide, feats, lpc, u))


# ---------------------------------------------------------------- voicing gate
def _alternating_corr(feats: torch.Tensor) -> torch.Tensor:
    """Pitch correlations alternating 0.2 / 0.8 frame by frame (and the gate's value itself on one row: not
    gated, the comparison is strict)."""
    f = feats.clone()
    n = f.shape[1]
    f[:, :, 19] = torch.where(torch.arange(n) % 2 == 0, 0.2, 0.8)
    f[0, 3, 19] = 0.5
    return f


def test_gate_config_is_checked_and_round_trips():
    cfg = config_for("tiny", 5, 0.5)
    assert cfg.ltp_gate == 0.5 and LPCNetConfig(**cfg.to_dict()) == cfg
    assert config_for("tiny", 5).ltp_gate == 0.0
    old = {k: v for k, v in config_for("tiny", 5).to_dict().items() if k != "ltp_gate"}  # a checkpoint before the gate
    assert LPCNetConfig(**old).ltp_gate == 0.0
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match=r"ltp_gate must be in \[0, 1\)"):
            config_for("tiny", 5, bad)
    with pytest.raises(ValueError, match="needs LTP taps"):
        config_for("tiny", 0, 0.3)


@pytest.mark.parametrize("noise", [False, True])
def test_gate_zero_is_todays_taps(noise):
    feats, signal, lpc = _batch(seed=6)
    feats[..., 19] = -0.5  # every frame below any positive gate: gate 0 still gates nothing
    outs = [make_inputs(signal, lpc, noise=noise, features=feats, ltp_taps=5, generator=torch.Generator().manual_seed(1),
                        **kw) for kw in ({}, {"ltp_gate": 0.0})]
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    assert not frame_gates(feats, 3, 0.0).any()
    assert not (outs[0][4] == 128).all()


@pytest.mark.parametrize("noise", [False, True])
def test_gated_frames_read_mu_law_zero_and_the_others_are_unchanged(noise):
    feats, signal, lpc = _batch(seed=7)
    feats = _alternating_corr(feats)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    *plain, ltp0 = make_inputs(signal, lpc, noise=noise, features=feats, ltp_taps=5, generator=g())
    *gated_in, ltp = make_inputs(signal, lpc, noise=noise, features=feats, ltp_taps=5, ltp_gate=0.5, generator=g())
    for a, b in zip(plain, gated_in):  # the sample inputs (and the history the taps come from) do not change
        assert torch.equal(a, b)
    gates = frame_gates(feats, 3, 0.5)  # predicted frames' rows 2..4: corr 0.2, 0.8 (0.5 for batch 0), 0.2
    assert gates.tolist() == [[True, False, True], [True, False, True]]
    per_sample = gates.repeat_interleave(160, dim=1)
    assert (ltp[per_sample] == 128).all()
    assert torch.equal(ltp[~per_sample], ltp0[~per_sample])
    assert not (ltp0[per_sample] == 128).all()  # the gate did change something


def test_step_loop_with_true_past_equals_teacher_forced_pass_with_gate():
    """As above, with the gate: the decoder's rule (taps 128 in a gated frame, the history still recorded)
    gives the teacher-forced logits, and the gate changes them."""
    feats, signal, lpc = _batch(B=1, T=3, seed=8)
    feats = _alternating_corr(feats)
    torch.manual_seed(4)
    model = LPCNet(config_for("tiny", 5, 0.5), impl="fast").eval()
    with torch.no_grad():
        model.gru_a.weight_ih_l0[:, 3 * 8:8 * 8].normal_(0, 0.5)
        sig, pred, exc, target, ltp = make_inputs(signal, lpc, noise=False, features=feats, ltp_taps=5,
                                                  ltp_gate=0.5)
        logits = model(feats, sig, pred, exc, ltp=ltp)[0]
        ungated = make_inputs(signal, lpc, noise=False, features=feats, ltp_taps=5)[4]
        assert not torch.allclose(model(feats, sig, pred, exc, ltp=ungated)[0], logits, atol=1e-3)
        cond = model.frame_rate(feats)[0]
        e = excitation_history(signal, lpc)[0]
        lags = frame_lags(feats, 3)[0]
        corr = feats[0, 2:5, 19]
        ha, hb = torch.zeros(1, model.cfg.gru_a), torch.zeros(1, model.cfg.gru_b)
        offs = torch.tensor(tap_offsets(5))
        for k in range(3 * 160):
            f = k // 160
            j = 160 + k - int(lags[f]) + offs
            taps = torch.full((1, 5), 128) if corr[f] < 0.5 else torch.where(j >= 0, e[j.clamp(min=0)], 128)[None]
            out, ha, hb = model.step(cond[f:f + 1], sig[:, k], pred[:, k], exc[:, k], ha, hb, taps)
            assert torch.allclose(out[0], logits[k], atol=1e-4), k


def test_gated_synthesis_follows_the_gate():
    """``synthesize`` of a gated model: all frames voiced -> the ungated model's draws; one unvoiced frame ->
    the same draws up to it, other ones from it on (its taps read 128); the batched synthesis agrees."""
    torch.manual_seed(9)
    T = 3
    feats = torch.randn(T + 4, 20)
    feats[:, 18] = 60.0
    feats[:, 19] = 0.9
    lpc = torch.zeros(T, 16)
    lpc[:, 0] = 0.7
    u = torch.rand(T * 160)
    gated = LPCNet(config_for("tiny", 3, 0.5), impl="fast").eval()
    plain = LPCNet(config_for("tiny", 3), impl="fast").eval()
    with torch.no_grad():
        gated.gru_a.weight_ih_l0[:, 24:48].normal_(0, 2.0)
    plain.load_state_dict(gated.state_dict())
    voiced = synthesize(plain, feats, lpc, u)
    assert torch.equal(synthesize(gated, feats, lpc, u), voiced)
    feats[3, 19] = 0.1  # the second predicted frame unvoiced
    y, y_plain = synthesize(gated, feats, lpc, u), synthesize(plain, feats, lpc, u)
    assert torch.equal(y[:160], y_plain[:160]) and torch.mean((y[160:320] != y_plain[160:320]).float()) > 0.5
