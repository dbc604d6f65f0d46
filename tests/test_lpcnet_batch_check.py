"""training.lpcnet.batch_check: a batch equals the mean of its halves in the training pass (CPU, float32)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from pnsc.training.lpcnet import batch_check, train  # noqa: E402
from pnsc.training.lpcnet.synthetic import tiny_train_args  # noqa: E402


def test_whole_batch_matches_its_halves_on_the_cpu(lpcnet_tiny_data, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    train.main(tiny_train_args(lpcnet_tiny_data, run, "--epochs", "1", "--max-steps", "2"))
    out = tmp_path / "check.json"
    assert batch_check.main(["--run", str(run), "--data", str(lpcnet_tiny_data), "--batch", "8", "--device", "cpu",
                             "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["batch"] == 8 and res["amp"] == "none" and "autocast_vs_fp32" not in res
    assert res["loss_whole"] == pytest.approx(res["loss_halves_mean"], rel=1e-5)
    assert set(res["whole_vs_halves"]) >= {"gru_a.weight_hh_l0", "dual_fc.weight", "embed.weight"}
    assert max(res["whole_vs_halves"].values()) < 1e-4
    assert max(res["repeat"].values()) == 0.0  # the CPU pass is deterministic
    assert "largest:" in capsys.readouterr().out


def test_a_pass_that_differs_by_batch_is_caught(lpcnet_tiny_data, tmp_path: Path, monkeypatch) -> None:
    """A stand-in fault: the dual FC's gradient scaled when the batch is the whole one."""
    run = tmp_path / "run"
    train.main(tiny_train_args(lpcnet_tiny_data, run, "--epochs", "1", "--max-steps", "1"))
    model = batch_check.load_run(run, torch.device("cpu"))
    from pnsc.training.lpcnet.data import ShardSet
    batch = next(b for _, b in ShardSet(str(lpcnet_tiny_data), None).iter_epoch(0, 8))
    real = batch_check._pass

    def faulty(model, feats, *rest):
        loss, g = real(model, feats, *rest)
        if feats.shape[0] == 8:
            g["dual_fc.weight"] = g["dual_fc.weight"] * 1.01
        return loss, g

    monkeypatch.setattr(batch_check, "_pass", faulty)
    res = batch_check.check(model, batch)
    assert res["whole_vs_halves"]["dual_fc.weight"] == pytest.approx(0.01, rel=1e-3)
    assert res["whole_vs_halves"]["gru_a.weight_hh_l0"] < 1e-4
    with pytest.raises(ValueError, match="even number"):
        batch_check.check(model, {k: v[:3] for k, v in batch.items()})


def test_missing_run_and_short_data_are_clear_errors(lpcnet_tiny_data, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no usable checkpoint"):
        batch_check.main(["--run", str(tmp_path / "none"), "--data", str(lpcnet_tiny_data), "--device", "cpu"])
    run = tmp_path / "run"
    train.main(tiny_train_args(lpcnet_tiny_data, run, "--epochs", "1", "--max-steps", "1"))
    with pytest.raises(SystemExit, match="fewer than 4096 sequences"):
        batch_check.main(["--run", str(run), "--data", str(lpcnet_tiny_data), "--batch", "4096", "--device", "cpu"])


def test_an_autocast_check_also_weighs_the_whole_batch_in_float32(lpcnet_tiny_data, tmp_path: Path, capsys) -> None:
    """bf16 autocast on the CPU: the float32 pass of the whole batch is batch-invariant, the bf16 one is not
    exactly, and the bf16 cost at the whole batch is reported beside the one at a half."""
    run = tmp_path / "run"
    train.main(tiny_train_args(lpcnet_tiny_data, run, "--epochs", "1", "--max-steps", "2"))
    out = tmp_path / "check.json"
    assert batch_check.main(["--run", str(run), "--data", str(lpcnet_tiny_data), "--batch", "8", "--device", "cpu",
                             "--amp", "bf16", "--impl", "fold", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["amp"] == "bfloat16" and res["impl"] == "fold"
    for key in ("autocast_vs_fp32", "autocast_vs_fp32_whole", "fp32_whole_vs_halves"):
        assert set(res[key]) == set(res["whole_vs_halves"])
    assert max(res["fp32_whole_vs_halves"].values()) < 1e-4
    assert 1e-4 < max(res["autocast_vs_fp32_whole"].values()) < 1.0  # bf16 rounding shows, and stays bounded
    assert abs(res["loss_whole_fp32"] - res["loss_whole"]) < 0.05 * res["loss_whole"]
    text = capsys.readouterr().out
    assert "summary fold batch 8: fp32_whole_vs_halves: median" in text and "autocast_vs_fp32_whole" in text
