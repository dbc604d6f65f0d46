"""training.lpcnet.multi: model-name grammar, recipe branches and a real two-stage run on the CPU."""
from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")

from pnsc.training.lpcnet import multi  # noqa: E402
from pnsc.training.lpcnet.synthetic import write_fixture  # noqa: E402


def test_names_and_recipe_tags():
    assert multi.expand("baselines,ft-s", 2) == ["lpcnet-bl-s", "lpcnet-bl-l", "plpcnet-s-g0-ft", "plpcnet-s-g1-ft"]
    assert multi.split_branch("lpcnet-bl-s") == ("lpcnet-bl-s", [])
    assert multi.split_branch("lpcnet-bl-s.control") == ("lpcnet-bl-s", [])
    assert multi.split_branch("plpcnet-s-g2-ft.noise3.lr1e-3.b1024.decay5e-5") == (
        "plpcnet-s-g2-ft", ["--noise-scale", "3", "--lr", "1e-3", "--batch", "1024", "--lr-decay", "5e-5"])
    assert multi.split_branch("lpcnet-bl-l.nonoise")[1] == ["--noise-domain", "none"]
    assert multi.split_branch("lpcnet-bl-s.ltp5.ltpgate0.5") == (
        "lpcnet-bl-s", ["--ltp-taps", "5", "--ltp-gate", "0.5"])
    assert multi.split_branch("lpcnet-bl-s.ltp5.ltpgate0.35.lr1e-3")[1][-4:] == ["--ltp-gate", "0.35", "--lr", "1e-3"]
    assert multi.split_branch("lpcnet-bl-s.noise0.5")[1] == ["--noise-scale", "0.5"]
    with pytest.raises(SystemExit, match="unknown recipe tag"):
        multi.split_branch("lpcnet-bl-s.ltpgate")
    for bad in ("lpcnet-bl-s.fast", "lpcnet-bl-x.control", "lpcnet-bl-s.noise"):
        with pytest.raises(SystemExit):
            multi.expand(bad, 4)


def test_a_branch_needs_its_trained_base(tmp_path):
    with pytest.raises(FileNotFoundError, match="needs a trained lpcnet-bl-s"):
        multi.train_args("lpcnet-bl-s.noise3", tmp_path)


def _records(out):
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_branches_start_from_the_base_and_their_options_win(tmp_path, capsys):
    data = tmp_path / "data"
    write_fixture(data, speakers=6, per_speaker=4, shards=1, seed=0, n_groups=2, frames=2)
    root = tmp_path / "runs"
    common = ["--", "--device", "cpu", "--threads", "1", "--groups", str(data / "speaker_groups.json"),
              "--splits", str(data / "speaker_splits.json"), "--log-every", "1", "--max-steps", "2",
              "--lr", "5e-4"]
    args = ["--data", str(data), "--out-root", str(root), "--batch", "4", "--stagger-s", "0", "--budget-min", "5"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    assert multi.main(args + ["--models", "lpcnet-bl-s"] + common) == 0
    assert (root / "lpcnet-bl-s" / "best.pt").is_file() or (root / "lpcnet-bl-s" / "last.pt").is_file()
    assert multi.main(args + ["--models", "lpcnet-bl-s.control,lpcnet-bl-s.lr2e-3.noise3"] + common) == 0
    for name, lr in (("lpcnet-bl-s.control", 5e-4), ("lpcnet-bl-s.lr2e-3.noise3", 2e-3)):
        out = root / name
        log = (out / "stdout.log").read_text()
        assert "initialised from" in log and "lpcnet-bl-s/" in log, log[-2000:]
        steps = [r for r in _records(out) if r["kind"] == "step"]
        assert steps and abs(steps[0]["lr"] - lr) / lr < 0.01, steps[0]
    # --ft-patience reaches the plain fine-tunes only (not the baselines' branches)
    capsys.readouterr()
    assert multi.main(args + ["--models", "plpcnet-s-g0-ft,lpcnet-bl-s.noise3", "--ft-patience", "3"] + common) == 0
    starts = {ln.split()[2]: ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("multi: start")}
    assert starts["plpcnet-s-g0-ft:"].endswith("--patience 3") and "--patience" not in starts["lpcnet-bl-s.noise3:"]


def test_models_that_would_not_fit_together_train_in_waves():
    # six S branches at batch 512 on an 80 GB GPU: four fit (round 11 measured 15 GiB each), the rest wait
    six = [(n, multi.estimate_gib(n, 512)) for n in
           ("lpcnet-bl-s.control", "lpcnet-bl-s.noise3", "lpcnet-bl-s.nonoise", "lpcnet-bl-s.decay5e-5",
            "lpcnet-bl-s.lr1e-3", "lpcnet-bl-s.lr2e-4")]
    waves = multi.plan_waves(six, 79.6)
    assert [len(w) for w in waves] == [4, 2] and sum(waves, []) == [n for n, _ in six]
    four = six[:4]
    # round 11's first call: S, L, S, L measured 66 GiB together on one GPU; the estimate must let them run
    mixed = [(n, multi.estimate_gib(n, 512)) for n in
             ("plpcnet-s-g0-ft", "plpcnet-l-g0-ft", "lpcnet-bl-s", "lpcnet-bl-l.sparse0.25")]
    assert len(multi.plan_waves(mixed, 79.6)) == 1
    # what ran side by side before still does: both baselines at 512, eight fine-tunes at 128
    assert len(multi.plan_waves([(n, multi.estimate_gib(n, 512)) for n in multi.expand("baselines", 4)], 79.6)) == 1
    assert len(multi.plan_waves([(n, multi.estimate_gib(n, 128)) for n in multi.expand("ft-s,ft-l", 4)], 79.6)) == 1
    # a branch's own batch counts; no GPU (None) means no waves; max_concurrent caps by hand
    assert multi.estimate_gib("lpcnet-bl-s.b1024", 128) == multi.estimate_gib("lpcnet-bl-s", 1024)
    assert multi.estimate_gib("plpcnet-l-g0-ft", 512) > multi.estimate_gib("plpcnet-s-g0-ft", 512)
    assert multi.plan_waves(four, None) == [[n for n, _ in four]]
    assert [len(w) for w in multi.plan_waves(four, None, max_concurrent=3)] == [3, 1]
    # one model too large for the GPU alone still gets its own wave (train.py reports the error)
    assert multi.plan_waves([("lpcnet-bl-l", 500.0), ("lpcnet-bl-s", 10.0)], 79.6) == [["lpcnet-bl-l"], ["lpcnet-bl-s"]]


def test_waves_and_placement_over_several_gpus():
    four_l = [(n, multi.estimate_gib(n, 512)) for n in multi.expand("ft-l", 4)]
    # one 80 GB GPU holds three L at batch 512; four GPUs hold all four in one wave, one per GPU
    assert [len(w) for w in multi.plan_waves(four_l, 79.6)] == [3, 1]
    assert multi.plan_waves(four_l, 79.6, n_gpus=4) == [[n for n, _ in four_l]]
    assert sorted(multi.place(four_l, 4)) == [0, 1, 2, 3]
    # two GPUs: pairs share a GPU, never three on one
    where = multi.place(four_l, 2)
    assert sorted(where) == [0, 0, 1, 1]
    # a wave is refused when no single GPU has room, though the GPUs together would
    big = [("lpcnet-bl-l", 50.0), ("lpcnet-bl-s", 50.0), ("plpcnet-s-g0-ft", 50.0)]
    assert [len(w) for w in multi.plan_waves(big, 79.6, n_gpus=2)] == [2, 1]


def test_throughput_is_summed_per_gpu_and_over_all(tmp_path):
    run = tmp_path / "plpcnet-l-g0-ft"
    assert multi.own_audio_hours(run) == 0.0  # not started yet
    run.mkdir()
    (run / "status.json").write_text('{"audio_hours": 350.0, "own_audio_hours": 45.5}')
    assert multi.own_audio_hours(run) == 45.5  # its own training, not its baseline's hours
    (run / "status.json").write_text('{"audio_hours": 350.0}')  # an older run: its last validation's count
    (run / "history.json").write_text('[{"audio_hours": 40.0}, {"audio_hours": 44.9}]')
    assert multi.own_audio_hours(run) == 44.9
    lines = multi.throughput_lines({"a": 30.0, "b": 15.0, "c": 20.0}, {"a": "0", "b": "0", "c": "1"}, 5.0)
    assert lines[0].startswith("throughput GPU 0: 45.0 audio-h in 5.00 min = 9.00 audio-h/min (2 run(s): a 30.0, b 15.0)")
    assert lines[1].startswith("throughput GPU 1: 20.0 audio-h in 5.00 min = 4.00 audio-h/min")
    assert lines[2] == "throughput all: 65.0 audio-h in 5.00 min = 13.00 audio-h/min, 6.50 per GPU-minute over 2 GPU(s)"
    assert multi.throughput_lines({"a": 1.0}, {}, 0.0) == []
