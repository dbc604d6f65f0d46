"""Durable training state: save (fp16 weights, bf16 Adam moments) and load back to resumable float32 files."""
from __future__ import annotations

import json
import time

import pytest

torch = pytest.importorskip("torch")

from pnsc.training.lpcnet.pack import changed_since  # noqa: E402
from tests.conftest import fake_training_run  # noqa: E402
from pnsc.training.lpcnet.state import load_state, save_state  # noqa: E402


def test_state_roundtrip(tmp_path):
    base, opt = fake_training_run(tmp_path / "runs", "lpcnet-bl-s", True)
    ft, _ = fake_training_run(tmp_path / "runs", "plpcnet-s-g0-ft", True)
    summary = save_state(tmp_path / "runs", tmp_path / "state.tar")
    assert summary["lpcnet-bl-s"]["optimizer"] and not summary["plpcnet-s-g0-ft"]["optimizer"]
    names = load_state(tmp_path / "state.tar", tmp_path / "back")
    assert "lpcnet-bl-s/last-optim.pt" in names and "plpcnet-s-g0-ft/last-optim.pt" not in names
    ck = torch.load(tmp_path / "back/lpcnet-bl-s/last.pt", weights_only=False)
    assert ck["step"] == 7 and ck["batch_in_epoch"] == 3 and ck["history"][0]["val_loss"] == 2.5
    for k, v in base.state_dict().items():
        assert ck["model"][k].dtype == torch.float32
        torch.testing.assert_close(ck["model"][k], v, rtol=1e-3, atol=1e-3)
    o = torch.load(tmp_path / "back/lpcnet-bl-s/last-optim.pt", weights_only=False)
    restored = torch.optim.Adam(torch.nn.GRU(8, 16).parameters(), lr=1e-3)
    restored.load_state_dict(o["optimizer"])  # loads into a fresh optimizer: resumable
    for k, st in opt.state_dict()["state"].items():
        torch.testing.assert_close(o["optimizer"]["state"][k]["exp_avg"], st["exp_avg"], rtol=2e-2, atol=1e-6)
    assert json.loads((tmp_path / "back/lpcnet-bl-s/status.json").read_text())["step"] == 7


def test_logs_only_runs_keep_history_without_weights(tmp_path):
    fake_training_run(tmp_path / "runs", "lpcnet-bl-s", True)
    fake_training_run(tmp_path / "runs", "lpcnet-bl-s.noise3", False)
    summary = save_state(tmp_path / "runs", tmp_path / "state.tar", logs_only=("lpcnet-bl-s.noise3",))
    assert summary["lpcnet-bl-s.noise3"] == {"step": None, "weights": False}
    names = load_state(tmp_path / "state.tar", tmp_path / "back")
    assert "lpcnet-bl-s.noise3/status.json" in names and "lpcnet-bl-s.noise3/last.pt" not in names
    assert "lpcnet-bl-s/last.pt" in names
    # restored without weights, it stays history-only through the next save and load
    (tmp_path / "back/lpcnet-bl-s.noise3/history.json").write_text("[]")
    again = save_state(tmp_path / "back", tmp_path / "state2.tar")
    assert again["lpcnet-bl-s.noise3"] == {"step": None, "weights": False}
    assert "lpcnet-bl-s.noise3/history.json" in load_state(tmp_path / "state2.tar", tmp_path / "back2")
    with pytest.raises(ValueError, match="no-such-run"):
        save_state(tmp_path / "runs", tmp_path / "x.tar", logs_only=("no-such-run",))


def test_cli_optim_runs_keeps_a_fine_tunes_moments(tmp_path):
    from pnsc.training.lpcnet.state import main

    fake_training_run(tmp_path / "runs", "lpcnet-bl-s", True)
    fake_training_run(tmp_path / "runs", "plpcnet-s-g0-ft", True)
    assert main(["save", str(tmp_path / "runs"), str(tmp_path / "s.tar"), "--optim-runs", "plpcnet-s-g0-ft"]) == 0
    names = load_state(tmp_path / "s.tar", tmp_path / "back")
    assert "plpcnet-s-g0-ft/last-optim.pt" in names and "lpcnet-bl-s/last-optim.pt" not in names


def test_restored_runs_keep_their_save_time_so_a_call_packs_only_what_it_trained(tmp_path):
    fake_training_run(tmp_path / "runs", "plpcnet-s-g0-ft", False)
    save_state(tmp_path / "runs", tmp_path / "state.tar")
    call_start = time.time()  # a device call starts after the state was saved, then restores it
    load_state(tmp_path / "state.tar", tmp_path / "back")
    run = tmp_path / "back/plpcnet-s-g0-ft"
    assert all(p.stat().st_mtime < call_start for p in run.iterdir())
    assert not changed_since(run, call_start)
    (run / "status.json").write_text(json.dumps({"step": 8}))  # trained in the call: packed
    assert changed_since(run, call_start)


def test_committed_folder_adds_only_the_runs_that_changed(tmp_path):
    fake_training_run(tmp_path / "runs", "lpcnet-bl-s", True)
    fake_training_run(tmp_path / "runs", "plpcnet-s-g0-ft", False)
    fake_training_run(tmp_path / "runs", "plpcnet-s-g1-ft", False)
    ck = torch.load(tmp_path / "runs/plpcnet-s-g1-ft/last.pt", weights_only=False)
    ck["ema"] = {k: v * 0.5 for k, v in ck["model"].items()}  # a run with averaged weights (--ema-decay)
    torch.save(ck, tmp_path / "runs/plpcnet-s-g1-ft/last.pt")
    save_state(tmp_path / "runs", tmp_path / "state", averaged_only=True)
    first = {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.tar")}
    assert sorted(first) == ["lpcnet-bl-s.tar", "plpcnet-s-g0-ft.tar", "plpcnet-s-g1-ft.tar"]
    # a new machine: restore, train one run, save again: the others' files are byte for byte the same
    load_state(tmp_path / "state", tmp_path / "next")
    (tmp_path / "next/plpcnet-s-g0-ft/status.json").write_text(json.dumps({"step": 9}))
    save_state(tmp_path / "next", tmp_path / "state", averaged_only=True)
    second = {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.tar")}
    assert second["lpcnet-bl-s.tar"] == first["lpcnet-bl-s.tar"]
    assert second["plpcnet-s-g1-ft.tar"] == first["plpcnet-s-g1-ft.tar"]
    assert second["plpcnet-s-g0-ft.tar"] != first["plpcnet-s-g0-ft.tar"]
    names = load_state(tmp_path / "state", tmp_path / "third")
    assert "lpcnet-bl-s/last-optim.pt" in names
    assert json.loads((tmp_path / "third/plpcnet-s-g0-ft/status.json").read_text())["step"] == 9


def test_averaged_only_keeps_the_averaged_weights_as_the_run_s_weights(tmp_path):
    model, _ = fake_training_run(tmp_path / "runs", "plpcnet-s-g0-ft.ema0.999", False)
    ck = torch.load(tmp_path / "runs/plpcnet-s-g0-ft.ema0.999/last.pt", weights_only=False)
    averaged = {k: v + 1.0 for k, v in ck["model"].items()}
    ck["ema"] = averaged
    torch.save(ck, tmp_path / "runs/plpcnet-s-g0-ft.ema0.999/last.pt")
    save_state(tmp_path / "runs", tmp_path / "full.tar")
    save_state(tmp_path / "runs", tmp_path / "lean.tar", averaged_only=True)
    assert (tmp_path / "lean.tar").stat().st_size < (tmp_path / "full.tar").stat().st_size
    load_state(tmp_path / "full.tar", tmp_path / "full")
    load_state(tmp_path / "lean.tar", tmp_path / "lean")
    full = torch.load(tmp_path / "full/plpcnet-s-g0-ft.ema0.999/last.pt", weights_only=False)
    lean = torch.load(tmp_path / "lean/plpcnet-s-g0-ft.ema0.999/last.pt", weights_only=False)
    assert "ema" not in lean and lean["step"] == 7
    for k, v in averaged.items():
        torch.testing.assert_close(lean["model"][k], v, rtol=1e-3, atol=1e-3)  # the averaged weights
        torch.testing.assert_close(full["ema"][k], v, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(full["model"][k], ck["model"][k], rtol=1e-3, atol=1e-3)  # both kept


def test_a_call_s_tar_goes_without_the_append_only_logs(tmp_path):
    fake_training_run(tmp_path / "runs", "lpcnet-bl-s", False)
    run = tmp_path / "runs" / "lpcnet-bl-s"
    (run / "log.jsonl").write_text('{"step": 7}\n')
    (run / "stdout.log").write_text("trained\n")
    (run / "history.json").write_text("[]")
    save_state(tmp_path / "runs", tmp_path / "call.tar", without_logs=True)
    names = load_state(tmp_path / "call.tar", tmp_path / "back")
    assert "lpcnet-bl-s/history.json" in names and "lpcnet-bl-s/status.json" in names
    assert "lpcnet-bl-s/log.jsonl" not in names and "lpcnet-bl-s/stdout.log" not in names
    with pytest.raises(ValueError, match="committed state keeps every log"):
        save_state(tmp_path / "runs", tmp_path / "committed", without_logs=True)
