"""LPCNet trainer on the CPU, tiny configuration: learning, budgeted stop + resume, DDP (gloo)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from pnsc.training.lpcnet import train  # noqa: E402
from pnsc.training.lpcnet.synthetic import tiny_train_args  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data(lpcnet_tiny_data):
    return lpcnet_tiny_data


def _args(data, out, *extra):
    return tiny_train_args(data, out, *extra)


def _records(out, kind):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == kind]


def test_tiny_training_learns_and_writes_outputs(data, tmp_path):
    out = tmp_path / "run"
    assert train.main(_args(data, out, "--epochs", "3", "--lr", "5e-3", "--quantized-after-epoch", "2")) == 0
    steps = _records(out, "step")
    assert len(steps) == 18  # 48 training sequences // 8 = 6 batches x 3 epochs
    first = sum(r["loss"] for r in steps[:3]) / 3
    last = sum(r["loss"] for r in steps[-3:]) / 3
    assert first > 5.3 and last < first - 0.15, (first, last)
    epochs = _records(out, "epoch")
    assert [r["epoch"] for r in epochs] == [0, 1, 2]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    assert epochs[-1]["features"] == "qfeatures" and epochs[0]["features"] == "features"
    assert set(epochs[0]["val_groups"]) == {"0", "1"} and epochs[0]["val_speakers"] == 2
    assert "val_eq3" in epochs[0]
    status = json.loads((out / "status.json").read_text())
    assert status["done"] and status["step"] == 18
    for name in ("last.pt", "last-optim.pt", "best.pt", "curves.png", "history.json"):
        p = out / name
        assert p.is_file() and 0 < p.stat().st_size < 16 * 2**20
    # training again is a no-op once done
    assert train.main(_args(data, out, "--epochs", "3")) == 0
    assert len(_records(out, "step")) == 18


def test_resume_reproduces_an_uninterrupted_run(data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train.main(_args(data, a, "--epochs", "2", "--max-steps", "9"))
    train.main(_args(data, b, "--epochs", "2", "--max-steps", "4"))
    ck = torch.load(b / "last.pt", weights_only=False)
    assert ck["step"] == 4 and ck["batch_in_epoch"] == 4
    train.main(_args(data, b, "--epochs", "2", "--max-steps", "9"))
    ca, cb = torch.load(a / "last.pt", weights_only=False), torch.load(b / "last.pt", weights_only=False)
    assert ca["step"] == cb["step"] == 9 and ca["epoch"] == cb["epoch"] == 1
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    oa, ob = torch.load(a / "last-optim.pt", weights_only=False), torch.load(b / "last-optim.pt", weights_only=False)
    assert oa["optimizer"]["state"][0]["step"] == ob["optimizer"]["state"][0]["step"] == 9
    assert [r["val_loss"] for r in ca["history"]] == [r["val_loss"] for r in cb["history"]]


def test_budget_stop_saves_and_continues(data, tmp_path):
    out = tmp_path / "budget"
    # a 3 s budget with no reserve stops after a few steps, mid-training
    train.main(_args(data, out, "--epochs", "50", "--budget-min", str(3 / 60), "--reserve-s", "0"))
    s1 = json.loads((out / "status.json").read_text())
    assert not s1["done"] and s1["step"] > 0
    train.main(_args(data, out, "--epochs", "50", "--budget-min", str(2 / 60), "--reserve-s", "0"))
    s2 = json.loads((out / "status.json").read_text())
    assert s2["step"] > s1["step"] and not s2["done"]


def test_init_from_and_group_filter(data, tmp_path):
    base = tmp_path / "base"
    train.main(_args(data, base, "--epochs", "1", "--max-steps", "2"))
    out = tmp_path / "g1"
    train.main(_args(data, out, "--group", "1", "--epochs", "1", "--init-from", base / "last.pt"))
    ck = torch.load(out / "last.pt", weights_only=False)
    tr = ck["data_summary"]["train"]
    assert tr["speakers"] == 3 and tr["sequences"] == 24  # group 1 = odd speakers s003 s005 s007
    assert ck["data_summary"]["validation"]["speakers"] == 1
    assert set(ck["history"][0]["val_groups"]) == {"1"}
    assert ck["name"] == "plpcnet-tiny-g1"


def test_ddp_gloo_two_processes_matches_single_process(data, tmp_path):
    """Same global batch, no noise: 2-process DDP == 1 process (up to float reduction order)."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    common = ["--epochs", "1", "--max-steps", "3", "--noise-domain", "none"]
    train.main(_args(data, single, *common))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    import socket

    with socket.socket() as sock:  # a free port, so that parallel test runs do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "pnsc.training.lpcnet.train", *_args(data, ddp, *common)]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    cs, cd = torch.load(single / "last.pt", weights_only=False), torch.load(ddp / "last.pt", weights_only=False)
    assert cd["step"] == 3
    for k in cs["model"]:
        assert torch.allclose(cs["model"][k], cd["model"][k], atol=2e-5, rtol=1e-4), k
    assert "x2" in r.stderr


def test_streaming_shards_and_rank_split_cover_each_sequence_once(data):
    from pnsc.training.lpcnet.data import ShardSet

    resident = ShardSet(data, None, seed=3)
    streamed = ShardSet(data, None, seed=3, max_resident_mb=1e-6)  # one shard per chunk
    assert resident.resident and not streamed.resident and streamed.shards_per_chunk == 1
    n = resident.n
    for ds in (resident, streamed):
        seen = []
        for rank in (0, 1):
            for _, b in ds.iter_epoch(epoch=1, batch=4, rank=rank, world=2):
                assert b["signal"].shape[0] == 2
                seen += [tuple(x) for x in b["signal"][:, :8].tolist()]
        assert len(seen) == len(set(seen)) == ds.epoch_batches(1, 4) * 4 >= n - 8
        # resuming at batch k yields exactly the tail of the epoch
        full = [b["signal"] for _, b in ds.iter_epoch(2, 4)]
        tail = [b["signal"] for _, b in ds.iter_epoch(2, 4, start=5)]
        assert len(tail) == len(full) - 5 and all(torch.equal(x, y) for x, y in zip(full[5:], tail))
    # a different epoch is a different order
    a = [b["signal"] for _, b in resident.iter_epoch(1, 4)][0]
    b = [b["signal"] for _, b in resident.iter_epoch(2, 4)][0]
    assert not torch.equal(a, b)


def test_group_map_formats(tmp_path):
    from pnsc.training.lpcnet.data import load_group_map

    enc = {"format": "pnsc-speaker-groups-1", "default_groups": 4, "speakers": {"19": {"split": "train"}},
           "groupings": {"2": {"assignment": {"19": 1}}, "4": {"centroids": [[0.0]], "train_sizes": [1, 1],
                                                              "assignment": {"19": 3, "26": 0}}}}
    p = tmp_path / "g.json"
    p.write_text(json.dumps(enc))
    assert load_group_map(p) == {"19": 3, "26": 0}
    assert load_group_map(p, 2) == {"19": 1}
    p.write_text(json.dumps({"default_C": 4, "groups": {"4": {"assignment": {"a": 2}}}}))
    assert load_group_map(p) == {"a": 2}
    p.write_text(json.dumps({"x": 1, "y": 0}))
    assert load_group_map(p) == {"x": 1, "y": 0}


def test_resume_can_move_the_quantized_adaptation(data, tmp_path):
    out = tmp_path / "q"
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "6"))  # default: adapt from epoch 2
    assert torch.load(out / "last.pt", weights_only=False)["args"]["quantized_after_epoch"] == 2
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "12", "--quantized-after-epoch", "1"))
    hist = json.loads((out / "history.json").read_text())
    assert [h["features"] for h in hist] == ["features", "qfeatures"]


def test_resume_takes_an_explicit_setting_even_when_it_equals_the_default(data, tmp_path):
    # Round 3 lost 3/4 of its GPU throughput: "--batch 512 --lr 1e-3" equalled the built-in defaults, so the
    # resumed runs silently kept the saved batch 128 and lr 2e-3.
    out = tmp_path / "s"
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "2", "--lr", "5e-3", "--lr-decay", "0.1"))
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "4"))  # not given: the saved ones
    assert [r["lr"] for r in _records(out, "step")][2:] == pytest.approx([5e-3 / 1.2, 5e-3 / 1.3])
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "5", "--lr", str(train.SCHEDULE_DEFAULTS["lr"]),
                     "--lr-decay", "0"))
    assert _records(out, "step")[-1]["lr"] == pytest.approx(train.SCHEDULE_DEFAULTS["lr"])
    assert torch.load(out / "last.pt", weights_only=False)["args"]["lr"] == train.SCHEDULE_DEFAULTS["lr"]


def test_fine_tuning_counts_the_audio_its_initialisation_saw(data, tmp_path):
    base, ft = tmp_path / "base", tmp_path / "ft"
    train.main(_args(data, base, "--epochs", "3", "--max-steps", "3"))
    seen = torch.load(base / "last.pt", weights_only=False)["audio_seconds"]
    assert seen > 0
    train.main(_args(data, ft, "--epochs", "3", "--max-steps", "1", "--group", "0",
                     "--init-from", str(base / "last.pt")))
    ck = torch.load(ft / "last.pt", weights_only=False)
    assert ck["init_audio_seconds"] == pytest.approx(seen)
    assert 0 < ck["audio_seconds"] < seen  # one step of its own
    status = json.loads((ft / "status.json").read_text())
    assert status["audio_hours"] == pytest.approx((seen + ck["audio_seconds"]) / 3600, abs=1e-3)
    assert status["own_audio_hours"] == pytest.approx(ck["audio_seconds"] / 3600, abs=1e-3)  # multi's throughput


def test_an_unusable_scan_gru_b_falls_back_to_cudnn(data, tmp_path, monkeypatch, capsys):
    # Triton compiled kernels cannot run on CPU tensors here (no interpreter): the self-check fails, the run
    # logs why and trains on the ATen/cuDNN GRU instead of losing the call
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("PNSC_LPCNET_GRU_B", "scan")
    out = tmp_path / "run"
    assert train.main(_args(data, out, "--epochs", "1")) == 0
    text = capsys.readouterr()
    said = text.out + text.err + (out / "stdout.log").read_text() if (out / "stdout.log").is_file() else text.out + text.err
    assert "scan unusable" in said and "GRU-B runs on cuDNN instead" in said
    assert "gru_b:cudnn" in said
    assert os.environ["PNSC_LPCNET_GRU_B"] == "cudnn"
    assert json.loads((out / "status.json").read_text())["done"]


def test_ltp_branch_widens_its_start_and_resumes_as_saved(data, tmp_path):
    base, ltp = tmp_path / "base", tmp_path / "ltp"
    train.main(_args(data, base, "--epochs", "1", "--max-steps", "2"))
    train.main(_args(data, ltp, "--epochs", "3", "--max-steps", "2", "--init-from", base / "last.pt",
                     "--ltp-taps", "3"))
    ck = torch.load(ltp / "last.pt", weights_only=False)
    assert ck["config"]["ltp_taps"] == 3
    e, c = ck["config"]["embed"], ck["config"]["cond"]
    assert ck["model"]["gru_a.weight_ih_l0"].shape[1] == 6 * e + c
    train.main(_args(data, ltp, "--epochs", "3", "--max-steps", "3"))  # resumes with its taps, no flag
    assert torch.load(ltp / "last.pt", weights_only=False)["step"] == 3
    with pytest.raises(SystemExit, match="has 3 LTP taps, not --ltp-taps 5"):
        train.main(_args(data, ltp, "--epochs", "3", "--max-steps", "4", "--ltp-taps", "5"))
    assert ck["config"]["ltp_gate"] == 0.0
    # a gated branch of the same start: the gate is saved, resumed as saved, and a resume can't change it
    gated = tmp_path / "gated"
    train.main(_args(data, gated, "--epochs", "3", "--max-steps", "1", "--init-from", base / "last.pt",
                     "--ltp-taps", "3", "--ltp-gate", "0.5"))
    assert torch.load(gated / "last.pt", weights_only=False)["config"]["ltp_gate"] == 0.5
    train.main(_args(data, gated, "--epochs", "3", "--max-steps", "2"))
    ck = torch.load(gated / "last.pt", weights_only=False)
    assert ck["step"] == 2 and ck["config"]["ltp_gate"] == 0.5
    with pytest.raises(SystemExit, match="has LTP gate 0.5, not --ltp-gate 0.3"):
        train.main(_args(data, gated, "--epochs", "3", "--max-steps", "3", "--ltp-gate", "0.3"))
    with pytest.raises(SystemExit, match="has LTP gate 0, not --ltp-gate 0.5"):
        train.main(_args(data, ltp, "--epochs", "3", "--max-steps", "4", "--ltp-gate", "0.5"))
    for bad, why in ((["--ltp-gate", "0.5"], "needs LTP taps"), (["--ltp-taps", "3", "--ltp-gate", "1.5"], r"\[0, 1\)")):
        with pytest.raises(SystemExit, match=why):
            train.main(_args(data, tmp_path / "bad", "--epochs", "1", "--max-steps", "1", *bad))


def test_warmup_ramps_the_fine_tune_lr_and_resumes_as_saved(data, tmp_path):
    # Round 7's fine-tunes started at full lr with fresh Adam moments: group 0's validation loss jumped from
    # the baseline's 2.44 to 2.55 in the first epoch and never came back below it.
    base = tmp_path / "base"
    train.main(_args(data, base, "--epochs", "1", "--max-steps", "2"))
    out = tmp_path / "ft"
    train.main(_args(data, out, "--group", "1", "--epochs", "3", "--max-steps", "2", "--init-from", base / "last.pt",
                     "--lr", "4e-3", "--lr-decay", "0.5", "--warmup-steps", "4"))
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "5"))  # resumed: warm-up as saved
    lrs = [r["lr"] for r in _records(out, "step")]
    assert lrs == pytest.approx([4e-3 * (k + 1) / 4 / (1 + 0.5 * k) if k < 4 else 4e-3 / (1 + 0.5 * k)
                                 for k in range(5)])
    args = torch.load(out / "last.pt", weights_only=False)["args"]
    assert args["warmup_steps"] == 4
    assert args["init_from"] == str(base / "last.pt")  # still a fine-tune after a call that resumed it
    assert train.learning_rate(1e-3, 0.0, 0, 0) == 1e-3  # no warm-up: LPCNet's schedule unchanged


def test_resume_without_adam_moments_ramps_the_lr_up_again(data, tmp_path):
    # Round 12 resumed the baselines and three fine-tunes without their Adam moments (a pack lost them) at
    # lr ~4e-4: fresh moments make each weight's first updates about lr whatever its gradient.
    out = tmp_path / "run"
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "3", "--lr", "4e-3", "--warmup-steps", "2"))
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "5"))  # moments kept: no second ramp
    (out / "last-optim.pt").unlink()
    train.main(_args(data, out, "--epochs", "3", "--max-steps", "8"))  # moments lost: ramps from step 5
    lrs = [r["lr"] for r in _records(out, "step")]
    assert lrs == pytest.approx([2e-3, 4e-3, 4e-3, 4e-3, 4e-3, 2e-3, 4e-3, 4e-3])
    assert train.learning_rate(1e-3, 0.0, 4, 10, rewarm_from=9) == pytest.approx(0.5e-3)
    assert train.learning_rate(1e-3, 0.0, 0, 10, rewarm_from=9) == 1e-3  # no warm-up asked: none after a resume


def test_ema_validates_and_ships_the_averaged_weights(data, tmp_path, capsys):
    from pnsc.training.lpcnet import state as durable
    from pnsc.training.lpcnet import validate_runs
    from pnsc.training.lpcnet.export import load_checkpoint

    out = tmp_path / "runs" / "lpcnet-bl-s"
    assert train.main(_args(data, out, "--epochs", "2", "--lr", "5e-3", "--ema-decay", "0.5")) == 0
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["args"]["ema_decay"] == 0.5 and set(ck["ema"]) <= set(ck["model"])
    assert any(not torch.allclose(ck["ema"][k], ck["model"][k]) for k in ck["ema"])
    # the recorded validation loss is the average's: validate_runs scores what a checkpoint ships
    report = tmp_path / "val.json"
    validate_runs.main([str(tmp_path / "runs"), "--val-data", str(data), "--groups", str(data / "speaker_groups.json"),
                        "--splits", str(data / "speaker_splits.json"), "--features", ck["args"]["val_features"],
                        "--json", str(report)])
    last_val = [r for r in _records(out, "epoch") if r["val_loss"] is not None][-1]["val_loss"]
    assert json.loads(report.read_text())["runs"]["lpcnet-bl-s"]["total"] == pytest.approx(last_val, rel=1e-4)
    model, _ = load_checkpoint(out / "last.pt")  # export takes the average
    assert all(torch.equal(model.state_dict()[k], ck["ema"][k]) for k in ck["ema"])
    # resumed, the average goes on from the saved one (it would restart from the weights otherwise)
    before = {k: v.clone() for k, v in ck["ema"].items()}
    assert train.main(_args(data, out, "--epochs", "3")) == 0
    after = torch.load(out / "last.pt", weights_only=False)["ema"]
    fresh = torch.load(out / "last.pt", weights_only=False)["model"]
    assert any(not torch.allclose(after[k], fresh[k]) for k in after)
    assert any(not torch.allclose(after[k], before[k]) for k in after)
    # the durable state carries the average (float16), and brings it back as float32
    tar = tmp_path / "state.tar"
    durable.save_state(tmp_path / "runs", tar)
    durable.load_state(tar, tmp_path / "back")
    back = torch.load(tmp_path / "back" / "lpcnet-bl-s" / "last.pt", weights_only=False)["ema"]
    assert all(back[k].dtype == torch.float32 and torch.allclose(back[k], after[k], atol=1e-2) for k in after)
    # the committed state keeps the average only: resumed from it, training and averaging both start there
    durable.save_state(tmp_path / "runs", tmp_path / "committed", averaged_only=True)
    durable.load_state(tmp_path / "committed", tmp_path / "lean")
    lean = tmp_path / "lean" / "lpcnet-bl-s"
    start = torch.load(lean / "last.pt", weights_only=False)
    assert "ema" not in start and all(torch.allclose(start["model"][k], after[k], atol=1e-2) for k in after)
    capsys.readouterr()
    assert train.main(_args(data, lean, "--epochs", "4")) == 0
    said = capsys.readouterr()
    assert "no averaged weights in the checkpoint" in said.out + said.err
    resumed = torch.load(lean / "last.pt", weights_only=False)
    assert resumed["step"] > start["step"] and resumed["args"]["ema_decay"] == 0.5
    assert any(not torch.allclose(resumed["ema"][k], resumed["model"][k]) for k in resumed["ema"])
    for bad in ("1", "-0.5"):
        with pytest.raises(SystemExit, match=r"--ema-decay must be in \[0, 1\)"):
            train.main(_args(data, tmp_path / "bad", "--epochs", "1", "--ema-decay", bad))
    # with sparsity the average takes the trained weights' mask: the weights that ship are as sparse
    sp = tmp_path / "sp"
    assert train.main(_args(data, sp, "--epochs", "2", "--ema-decay", "0.9", "--sparse-density", "0.5",
                            "--sparse-start", "0", "--sparse-end", "2", "--sparse-every", "1")) == 0
    ck = torch.load(sp / "last.pt", weights_only=False)
    mask = ck["sparse"]["mask"]
    assert ck["sparse"]["mask_density"] == 0.5 and not mask.all()
    trained, averaged = ck["model"]["gru_a.weight_hh_l0"], ck["ema"]["gru_a.weight_hh_l0"]
    assert not torch.equal(trained, averaged)
    assert (trained[~mask] == 0).all() and (averaged[~mask] == 0).all()
    assert averaged[mask].abs().sum() > 0
    # resumed (the next GPU call): the saved mask and average go on together
    assert train.main(_args(data, sp, "--epochs", "3", "--ema-decay", "0.9", "--sparse-density", "0.5",
                            "--sparse-start", "0", "--sparse-end", "2", "--sparse-every", "1")) == 0
    again = torch.load(sp / "last.pt", weights_only=False)
    assert again["step"] > ck["step"] and torch.equal(again["sparse"]["mask"], mask)
    assert not torch.equal(again["ema"]["gru_a.weight_hh_l0"], averaged)
    assert (again["ema"]["gru_a.weight_hh_l0"][~mask] == 0).all()


def test_validation_builds_no_autograd_graph(data):
    """validate() runs under no_grad: its loss carries no graph (a validation pass at training batch size
    would otherwise hold a training step's activations on the GPU)."""
    from pnsc.training.lpcnet.data import ShardSet
    from pnsc.training.lpcnet.model import LPCNet, config_for

    model = LPCNet(config_for("tiny"))
    seen = []
    forward = model.forward

    def recording_forward(*args, **kwargs):
        out = forward(*args, **kwargs)
        seen.append((torch.is_grad_enabled(), out.requires_grad))
        return out

    model.forward = recording_forward
    val = ShardSet(data, None, device="cpu")
    loss, groups = train.validate(model, val, "features", 8, train.Dist("cpu"), None, 2)
    assert seen and all(s == (False, False) for s in seen)
    assert loss is not None and loss > 0
    assert model.training  # back in training mode afterwards


def test_patience_finishes_a_run_that_stops_improving_on_its_best_weights(data, tmp_path, capsys):
    out = tmp_path / "run"
    # lr 1e-9: the weights move by rounding-sized steps, so no validation beats the first by a real margin and
    # the best weights stay measurably different from the last ones unless the run restores them
    train.main(_args(data, out, "--epochs", "10", "--batch", "48", "--lr", "1e-9", "--patience", "2"))
    hist = json.loads((out / "history.json").read_text())
    status = json.loads((out / "status.json").read_text())
    assert status["done"] and len(hist) < 10  # stopped by patience, not by --epochs
    vals = [h["val_loss"] for h in hist]
    best_at = vals.index(min(vals))
    assert len(hist) == best_at + 3  # the best, then 2 validations without a better one
    last, best = (torch.load(out / n, weights_only=False) for n in ("last.pt", "best.pt"))
    assert all(torch.equal(last["model"][k], best["model"][k]) for k in best["model"])
    assert last["since_best"] == 2 and "finished on its best weights" in capsys.readouterr().err
    # and says so: the checkpoint's loss and status.json's epoch are the best validation's, not the last one's
    assert last["val_loss"] == min(vals)
    assert status["weights_epoch"] == hist[best_at]["epoch"] == best["epoch"]
    # resuming a finished run changes nothing, and it still says where its weights are from
    train.main(_args(data, out, "--epochs", "10", "--batch", "48", "--lr", "1e-9", "--patience", "2"))
    assert len(json.loads((out / "history.json").read_text())) == len(hist)
    assert json.loads((out / "status.json").read_text())["weights_epoch"] == best["epoch"]
    assert torch.load(out / "last.pt", weights_only=False)["val_loss"] == min(vals)
    # also without best.pt (a lease brings back last.pt only, and so does the committed state)
    (out / "best.pt").unlink()
    train.main(_args(data, out, "--epochs", "10", "--batch", "48", "--lr", "1e-9", "--patience", "2"))
    assert json.loads((out / "status.json").read_text())["weights_epoch"] == best["epoch"]
    assert torch.load(out / "last.pt", weights_only=False)["val_loss"] == min(vals)


def _speakers_of_epoch(train_set, epoch):
    return [int(i) for _, b in train_set.iter_epoch(epoch, 8) for i in b["speaker_index"]]


def test_a_focus_fraction_mixes_a_fresh_draw_of_other_speakers_into_every_epoch(data):
    """ShardSet(focus=..., focus_fraction=0.75): every epoch holds each focus sequence once and a new draw of
    the others making a quarter of it; the draw is fixed by seed and epoch; non-resident data is refused."""
    from pnsc.training.lpcnet.data import DataError, ShardSet, load_group_map, select_speakers

    gm = load_group_map(data / "speaker_groups.json")
    splits = data / "speaker_splits.json"
    every, group0 = select_speakers(splits, "train", gm, None), select_speakers(splits, "train", gm, 0)
    ts = ShardSet(data, every, group_map=gm, focus=group0, focus_fraction=0.75, seed=3)
    focus_idx = {ts.speaker_ids.index(s) for s in group0}
    assert ts.epoch_batches(0, 8) == 4  # 24 group-0 sequences + 8 others = 32
    e0, e1 = _speakers_of_epoch(ts, 0), _speakers_of_epoch(ts, 1)
    for e in (e0, e1):
        assert len(e) == 32 and sum(s in focus_idx for s in e) == 24
    others = lambda e: sorted(s for s in e if s not in focus_idx)  # noqa: E731
    assert others(e0) != others(e1) or e0 != e1  # a new draw and order each epoch
    again = ShardSet(data, every, group_map=gm, focus=group0, focus_fraction=0.75, seed=3)
    assert _speakers_of_epoch(again, 1) == e1
    assert ts.summary()["focus_sequences"] == 24 and ts.summary()["other_sequences_per_epoch"] == 8
    plain = ShardSet(data, group0, group_map=gm)
    assert plain.epoch_batches(0, 8) == 3 and "focus_fraction" not in plain.summary()
    with pytest.raises(DataError, match="resident"):
        ShardSet(data, every, group_map=gm, focus=group0, focus_fraction=0.5, max_resident_mb=1e-6)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(DataError, match="focus fraction"):
            ShardSet(data, every, group_map=gm, focus=group0, focus_fraction=bad)


def test_group_mix_fine_tunes_on_the_group_plus_others_and_validates_on_the_group(data, tmp_path):
    out = tmp_path / "run"
    assert train.main(_args(data, out, "--group", "0", "--group-mix", "0.75", "--epochs", "1")) == 0
    assert json.loads((out / "status.json").read_text())["step"] == 4  # 32 sequences // 8, not 24 // 8
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["data_summary"]["train"]["focus_fraction"] == 0.75
    assert ck["data_summary"]["train"]["speakers"] == 6  # every training speaker, group 0 in focus
    assert set(_records(out, "epoch")[0]["val_groups"]) == {"0"}
    for bad in ("0", "1.5"):  # an error for every run, a baseline's too
        with pytest.raises(SystemExit, match="group-mix"):
            train.main(_args(data, tmp_path / f"bad{bad}", "--group-mix", bad, "--epochs", "1"))


def test_a_reopened_run_trains_on_from_its_best_weights(data, tmp_path, capsys):
    """state.py reopen: a run patience finished trains again (new data) from the weights it ended on; its best
    loss and history stay, so only a better validation counts; and a run not finished is refused."""
    from pnsc.training.lpcnet.state import main as state_main

    out = tmp_path / "runs" / "run"
    args = _args(data, out, "--epochs", "20", "--batch", "48", "--lr", "1e-9", "--patience", "2")
    train.main(args)
    hist = json.loads((out / "history.json").read_text())
    before = torch.load(out / "last.pt", weights_only=False)
    assert json.loads((out / "status.json").read_text())["done"] and before["since_best"] == 2
    assert state_main(["reopen", str(out.parent), "run"]) == 0
    assert "patience count 2 -> 0" in capsys.readouterr().out
    assert not json.loads((out / "status.json").read_text())["done"]
    train.main(args)
    after = json.loads((out / "history.json").read_text())
    assert len(after) > len(hist) and after[: len(hist)] == hist  # it trained on, history kept
    last = torch.load(out / "last.pt", weights_only=False)
    assert last["step"] > before["step"] and last["best_val"] <= before["best_val"]
    with pytest.raises(SystemExit):  # a run that is not finished is refused
        (out / "status.json").write_text(json.dumps({**json.loads((out / "status.json").read_text()),
                                                     "done": False}))
        state_main(["reopen", str(out.parent), "run"])
    with pytest.raises(SystemExit):
        state_main(["reopen", str(out.parent), "nosuchrun"])


def test_logged_steps_say_where_their_time_goes(data, tmp_path):
    """Every logged step carries phase_ms: the host time of each phase in step order (and on a GPU its device time);
    steps between logs are not timed."""
    from pnsc.training.lpcnet.step_phases import StepPhases

    out = tmp_path / "run"
    assert train.main(_args(data, out, "--epochs", "1", "--log-every", "2", "--ema-decay", "0.99")) == 0
    steps = _records(out, "step")
    assert [r["step"] for r in steps] == [2, 4, 6]
    for r in steps:
        ph = r["phase_ms"]
        assert list(ph) == ["batch", "inputs", "forward", "backward", "optimizer", "average", "sync"], ph
        assert all(v["host_ms"] >= 0 and "gpu_ms" not in v for v in ph.values())  # CPU: no device times
        # the timed phases of the step proper fit inside its wall time (step_s is a moving average: bound loosely)
        assert 0 < sum(v["host_ms"] for k, v in ph.items() if k != "batch") < 1000 * 60
    assert train.main(_args(data, tmp_path / "plain", "--epochs", "1", "--log-every", "3")) == 0
    assert all("average" not in r["phase_ms"] for r in _records(tmp_path / "plain", "step"))
    off = StepPhases(torch.device("cpu"), on=False)
    off.start()
    off.mark("batch")
    assert off.result() == {}


def _soft_ce(student_ckpt, teacher_ckpt, data):
    """Mean CE of the student's sample distribution against the teacher's on one fixed tiny batch."""
    from pnsc.training.lpcnet.ema import deployed_weights
    from pnsc.training.lpcnet.model import LPCNet, config_for
    models = []
    for ck in (student_ckpt, teacher_ckpt):
        m = LPCNet(config_for("tiny"))
        m.load_state_dict(deployed_weights(torch.load(ck, weights_only=False)))
        models.append(m.eval())
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(4, 6, 20, generator=g)
    feats[..., 18] = 60 + 100 * torch.rand(4, 6, generator=g)
    sig, pred, exc = (torch.randint(0, 256, (4, 320), generator=g) for _ in range(3))
    with torch.no_grad():
        zs, zt = (m(feats, sig, pred, exc).reshape(-1, 256) for m in models)
    return float(-(torch.softmax(zt, -1) * torch.log_softmax(zs, -1)).sum(-1).mean())


def test_distillation_pulls_the_student_towards_its_teacher_and_resumes_as_saved(data, tmp_path, capsys):
    teacher, student, plain = tmp_path / "teacher", tmp_path / "student", tmp_path / "plain"
    train.main(_args(data, teacher, "--epochs", "2", "--max-steps", "6", "--seed", "5"))
    train.main(_args(data, plain, "--epochs", "1", "--max-steps", "1"))  # the student's start
    before = _soft_ce(plain / "last.pt", teacher / "last.pt", data)
    train.main(_args(data, student, "--epochs", "3", "--max-steps", "6", "--lr", "3e-3",
                     "--init-from", plain / "last.pt", "--teacher", teacher / "last.pt", "--kd-weight", "1.0"))
    assert f"distilling from {teacher / 'last.pt'}" in capsys.readouterr().err
    after = _soft_ce(student / "last.pt", teacher / "last.pt", data)
    assert after < before - 1e-3, (before, after)
    saved = torch.load(student / "last.pt", weights_only=False)["args"]
    assert saved["teacher"] == str(teacher / "last.pt") and saved["kd_weight"] == 1.0
    # resumed without the options: the saved teacher and weight again
    train.main(_args(data, student, "--epochs", "3", "--max-steps", "7"))
    assert "distilling from" in capsys.readouterr().err
    assert torch.load(student / "last.pt", weights_only=False)["args"]["kd_weight"] == 1.0


def test_distillation_settings_are_checked(data, tmp_path):
    with pytest.raises(SystemExit, match="needs --teacher"):
        train.main(_args(data, tmp_path / "a", "--kd-weight", "0.5", "--max-steps", "1"))
    with pytest.raises(SystemExit, match="must be in"):
        train.main(_args(data, tmp_path / "b", "--teacher", tmp_path, "--kd-weight", "2", "--max-steps", "1"))
    with pytest.raises(SystemExit, match="not a usable checkpoint"):
        train.main(_args(data, tmp_path / "c", "--teacher", tmp_path / "missing", "--max-steps", "1"))


def test_impl_option_picks_the_path_over_the_environment(data, tmp_path, capsys, monkeypatch):
    """--impl fold beats PNSC_LPCNET_IMPL; an unknown path is refused."""
    monkeypatch.setenv("PNSC_LPCNET_IMPL", "old")
    train.main(_args(data, tmp_path / "run", "--epochs", "1", "--max-steps", "1", "--impl", "fold"))
    out = capsys.readouterr()
    assert "path fold+" in out.err + out.out
    with pytest.raises(SystemExit):
        train.main(_args(data, tmp_path / "bad", "--impl", "nope"))
