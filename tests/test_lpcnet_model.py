"""LPCNet model: parameter counts, mu-law, teacher-forcing inputs and their alignment."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from pnsc.training.lpcnet.model import LPCNet, config_for, count_parameters, lin2ulaw, ulaw2lin, ulaw_index  # noqa: E402
from pnsc.training.lpcnet.noise import make_inputs, noisy_signal  # noqa: E402


def test_parameter_counts_match_paper():
    n_l = count_parameters(LPCNet(config_for("L")))
    n_s = count_parameters(LPCNet(config_for("S")))
    assert abs(n_l - 1.234e6) / 1.234e6 < 0.002, n_l
    assert abs(n_s - 0.784e6) / 0.784e6 < 0.002, n_s


def test_mulaw_roundtrip_and_formula():
    x = torch.linspace(-32768, 32767, 20001)
    u = lin2ulaw(x)
    assert float(u.min()) >= 0 and float(u.max()) <= 255
    # the contract's formula at a few points
    for v in (-20000.0, -3.0, 0.0, 1.0, 500.0, 32000.0):
        ref = 128 + np.sign(v) * 128 * np.log(1 + 255 * abs(v) / 32768) / np.log(256)
        assert abs(float(lin2ulaw(torch.tensor(v))) - min(255.0, ref)) < 1e-3
    inner = (u > 0.5) & (u < 254.5)
    back = ulaw2lin(u[inner])
    assert torch.allclose(back, x[inner], rtol=1e-4, atol=1e-2)
    idx = ulaw_index(x)
    assert idx.dtype == torch.long and int(idx.min()) == 0 and int(idx.max()) == 255


def test_mulaw_matches_shared_numpy():
    mulaw = pytest.importorskip("pnsc.shared.mulaw")
    x = np.concatenate([np.linspace(-32768, 32767, 4001), np.random.default_rng(0).normal(0, 800, 2000)])
    u_np = np.asarray(mulaw.lin2ulaw(x), np.float64)
    u_t = lin2ulaw(torch.tensor(x, dtype=torch.float64)).numpy()
    # shared.mulaw may return rounded levels; compare on the level grid in that case
    if np.allclose(u_np, np.round(u_np)):
        u_t = np.clip(np.floor(u_t + 0.5), 0, 255)
    assert np.max(np.abs(u_np - u_t)) < 1e-3
    levels = np.arange(256, dtype=np.float64)
    assert np.allclose(np.asarray(mulaw.ulaw2lin(levels), np.float64),
                       ulaw2lin(torch.tensor(levels)).double().numpy(), rtol=1e-4, atol=1e-3)


def _explicit_inputs(signal, lpc):
    """Slow numpy reference of the contract's alignment, no noise."""
    mu = lambda v: int(np.clip(np.floor(128 + np.sign(v) * 128 * np.log(1 + 255 * abs(v) / 32768) / np.log(256) + 0.5), 0, 255))  # noqa: E731
    T = lpc.shape[0]
    s = signal.astype(np.float64)

    def u_at(i):
        f = max(0, (i - 160) // 160)
        return sum(lpc[f, m - 1] * s[i - m] for m in range(1, 17))

    rows = []
    for i in range(160, (T + 1) * 160):
        rows.append((mu(s[i - 1]), mu(u_at(i)), mu(s[i - 1] - u_at(i - 1)), mu(s[i] - u_at(i))))
    return np.array(rows).T


def test_teacher_forcing_alignment_without_noise():
    rng = np.random.default_rng(1)
    T = 2
    signal = rng.normal(0, 3000, (1, (T + 1) * 160)).round().astype(np.int16)
    lpc = rng.normal(0, 0.3, (1, T, 16)).astype(np.float32)
    sig, pred, exc, target = make_inputs(torch.from_numpy(signal), torch.from_numpy(lpc), noise=False)
    ref = _explicit_inputs(signal[0], lpc[0])
    got = np.stack([t[0].numpy() for t in (sig, pred, exc, target)])
    assert got.shape == (4, T * 160)
    # rounding at exact level boundaries may differ by one level between float32 and float64
    assert np.max(np.abs(got - ref)) <= 1 and np.mean(got != ref) < 0.01
    # target at sample n is the excitation that the next step sees as "previous excitation"
    assert np.array_equal(target[0, :-1].numpy(), exc[0, 1:].numpy())


@pytest.mark.parametrize("domain", ["exc", "sig"])
def test_noise_injection_is_seeded_and_targets_use_noisy_prediction(domain):
    rng = np.random.default_rng(2)
    signal = torch.from_numpy(rng.normal(0, 3000, (16, 480)).round().astype(np.int16))
    lpc = torch.from_numpy(np.tile(np.r_[0.8, -0.2, np.zeros(14)].astype(np.float32), (16, 2, 1)))
    clean = make_inputs(signal, lpc, noise=False)
    a = make_inputs(signal, lpc, noise=True, domain=domain, scale=4.0, generator=torch.Generator().manual_seed(5))
    b = make_inputs(signal, lpc, noise=True, domain=domain, scale=4.0, generator=torch.Generator().manual_seed(5))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert 0.05 < float((a[0] != clean[0]).float().mean()) < 0.95  # noise touches some inputs, not all
    # exact relation: inputs from the noisy past, target = clean sample against the noisy prediction
    xn = noisy_signal(signal, lpc, domain=domain, scale=4.0, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(xn, signal.float())
    for k in (0, 7):
        ref = _explicit_noisy(signal[k].numpy(), xn[k].numpy(), lpc[k].numpy())
        got = np.stack([t[k].numpy() for t in a])
        assert np.max(np.abs(got - ref)) <= 1 and np.mean(got != ref) < 0.01


def _explicit_noisy(s, xn, lpc):
    mu = lambda v: int(np.clip(np.floor(128 + np.sign(v) * 128 * np.log(1 + 255 * abs(v) / 32768) / np.log(256) + 0.5), 0, 255))  # noqa: E731
    s, xn = s.astype(np.float64), xn.astype(np.float64)

    def u_at(i):
        f = max(0, (i - 160) // 160)
        return sum(lpc[f, m - 1] * xn[i - m] for m in range(1, 17))

    rows = [(mu(xn[i - 1]), mu(u_at(i)), mu(xn[i - 1] - u_at(i - 1)), mu(s[i] - u_at(i)))
            for i in range(160, len(s))]
    return np.array(rows).T
