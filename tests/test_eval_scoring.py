"""pnsc.evaluation scoring: alignment, metric ceilings, re-alignment of delayed copies, clear errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from pnsc.evaluation.align import align, estimate_lag
from pnsc.evaluation.errors import EvalError, MissingToolError, require_module, require_program
from pnsc.evaluation.metrics import CEILING, Scorer, check_signal
from pnsc.evaluation.stats import mean_ci, paired_difference

SR = 16000


def _delayed(x: np.ndarray, lag: int) -> np.ndarray:
    return np.concatenate([np.zeros(lag, x.dtype), x]) if lag >= 0 else x[-lag:]


def _noisy(x: np.ndarray, snr_db: float = 20.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(len(x)).astype(np.float32)
    return x + n * np.sqrt(np.mean(x ** 2) / np.mean(n ** 2) / 10 ** (snr_db / 10))


@pytest.mark.parametrize("lag", [0, 37, 800, 2401, -160])
def test_estimate_lag_recovers_known_delay(speech_clip, lag):
    deg = _delayed(_noisy(speech_clip, 15.0), lag)
    a = estimate_lag(speech_clip, deg)
    assert a.lag == lag and a.fine


def test_align_cuts_both_to_the_overlap(speech_clip):
    r, d, a = align(speech_clip, _delayed(speech_clip, 500))
    assert a.lag == 500 and len(r) == len(d) == len(speech_clip)
    np.testing.assert_array_equal(r, d)


def test_check_signal_rejects_silent_short_and_bad_input(speech_clip):
    with pytest.raises(EvalError, match="silent"):
        check_signal(np.zeros(3 * SR))
    with pytest.raises(EvalError, match="silent"):
        check_signal(np.full(3 * SR, 1e-4))
    with pytest.raises(EvalError, match="too short"):
        check_signal(speech_clip[: SR // 2])
    with pytest.raises(EvalError, match="NaN"):
        check_signal(np.full(2 * SR, np.nan))
    with pytest.raises(EvalError, match="mono"):
        check_signal(np.zeros((2 * SR, 2)))
    assert check_signal(speech_clip).dtype == np.float64


def test_scorer_refuses_silent_or_short_decoded_signal(speech_clip):
    s = Scorer(("stoi",))
    with pytest.raises(EvalError, match="decoded signal: silent"):
        s.score(speech_clip, np.zeros_like(speech_clip))
    with pytest.raises(EvalError, match="reference: too short"):
        s.score(speech_clip[:8000], speech_clip)


def test_unknown_metric_is_refused():
    with pytest.raises(EvalError, match="unknown metric"):
        Scorer(("pesq_nb",))


def test_missing_module_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # makes "import pesq" fail as if not installed
    with pytest.raises(MissingToolError, match=r"'pesq'.*pnsc\[eval\]"):
        require_module("pesq", "pesq", "PESQ")
    with pytest.raises(MissingToolError, match="pesq"):
        Scorer(("pesq_wb",)).check_tools()


def test_missing_program_names_the_debian_package(monkeypatch):
    from pnsc.evaluation.peers import PEERS

    with pytest.raises(MissingToolError, match="apt-get install codec2"):
        require_program("c2enc-does-not-exist", "codec2")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError, match="opus-tools"):
        PEERS["opus-9k"].check()
    with pytest.raises(MissingToolError, match="codec2"):
        PEERS["codec2-1600"].run(np.zeros(SR, np.float32))


def test_identical_signals_score_at_the_ceiling(speech_clip):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    pytest.importorskip("visqol")
    s = Scorer(("pesq_wb", "stoi", "estoi", "visqol"))
    sc = s.score(speech_clip, speech_clip.copy())
    assert sc["lag"] == 0
    assert sc["pesq_wb"] == pytest.approx(CEILING["pesq_wb"], abs=0.01)
    assert sc["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert sc["estoi"] == pytest.approx(1.0, abs=1e-6)
    mos, nsim = s.visqol(speech_clip, speech_clip.copy())
    assert nsim == pytest.approx(1.0, abs=1e-6) and mos == pytest.approx(sc["visqol"]) and mos > 4.3


def test_delayed_copy_is_realigned_and_scores_the_same(speech_clip):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    pytest.importorskip("visqol")
    s = Scorer(("pesq_wb", "stoi", "estoi", "visqol"))
    deg = _noisy(speech_clip, 15.0)
    base = s.score(speech_clip, deg)
    late = s.score(speech_clip, _delayed(deg, 1234))
    assert late["lag"] == 1234 and base["lag"] == 0
    for m in ("pesq_wb", "stoi", "estoi", "visqol"):
        assert late[m] == pytest.approx(base[m], abs=0.02), m
    # without alignment the delay would ruin the intrusive scores
    from pystoi import stoi

    n = len(speech_clip)
    assert stoi(speech_clip, _delayed(deg, 1234)[:n], SR) < base["stoi"] - 0.2
    # and noise is noticed: the noisy copy scores below the ceiling
    assert base["pesq_wb"] < CEILING["pesq_wb"] - 1.0


def test_dnsmos_and_speaker_similarity(speech_clip):
    pytest.importorskip("speechmos")
    pytest.importorskip("resemblyzer")
    s = Scorer(("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "spk_sim"))
    same = s.score(speech_clip, speech_clip.copy())
    assert same["spk_sim"] == pytest.approx(1.0, abs=1e-4)
    assert all(1.0 <= same[m] <= 5.0 for m in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"))
    noisy = s.score(speech_clip, _noisy(speech_clip, 0.0))
    assert noisy["dnsmos_bak"] < same["dnsmos_bak"] - 0.5
    assert noisy["spk_sim"] < same["spk_sim"]


def test_mean_ci_and_paired_difference():
    st = mean_ci([1.0, 2.0, 3.0, np.nan, None])
    assert st["n"] == 3 and st["mean"] == pytest.approx(2.0)
    assert st["ci95"] == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert mean_ci([])["mean"] is None and mean_ci([5.0])["ci95"] is None
    d = paired_difference([2.0, 3.0, 4.0, 5.0], [1.0, 2.1, 2.9, 4.0])
    assert d["wins"] == 4 and d["mean"] == pytest.approx(1.0, abs=1e-9) and d["significant"]
    d = paired_difference([1.0, 2.0, 1.0], [2.0, 1.0, 1.0])
    assert d["mean"] == pytest.approx(0.0) and not d["significant"] and d["wins"] == 1
