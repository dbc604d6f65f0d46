"""training.lpcnet.multi: model-name grammar, recipe branches, a real two-stage run on the CPU, the backlog and
--resume-only (scheduling with a stand-in trainer), and scripts/gpu.sh train's options for them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

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
    assert multi.split_branch("plpcnet-s-g1-ft.ema0.999.lr2e-4") == (
        "plpcnet-s-g1-ft", ["--ema-decay", "0.999", "--lr", "2e-4"])
    assert multi.split_branch("plpcnet-s-g2-ft.mix0.5") == ("plpcnet-s-g2-ft", ["--group-mix", "0.5"])
    with pytest.raises(SystemExit, match="unknown recipe tag"):
        multi.split_branch("lpcnet-bl-s.ltpgate")
    for bad in ("lpcnet-bl-s.fast", "lpcnet-bl-x.control", "lpcnet-bl-s.noise"):
        with pytest.raises(SystemExit):
            multi.expand(bad, 4)


def _usage_error(capsys, argv: list[str]) -> str:
    """What ``multi.main(argv)`` printed when it refused its arguments (argparse's exit status 2)."""
    with pytest.raises(SystemExit) as exc:
        multi.main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


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
    # --resume-only: a baseline without a checkpoint starts only when --fresh names it
    assert multi.main(args + ["--models", "lpcnet-bl-s", "--resume-only"] + common) == 1
    assert not (root / "lpcnet-bl-s" / "last.pt").exists()
    assert multi.main(args + ["--models", "lpcnet-bl-s", "--resume-only", "--fresh", "lpcnet-bl-s"] + common) == 0
    assert (root / "lpcnet-bl-s" / "best.pt").is_file() or (root / "lpcnet-bl-s" / "last.pt").is_file()
    # branches start from their base run: --resume-only never refuses them
    assert multi.main(args + ["--models", "lpcnet-bl-s.control,lpcnet-bl-s.lr2e-3.noise3", "--resume-only"]
                      + common) == 0
    for name, lr in (("lpcnet-bl-s.control", 5e-4), ("lpcnet-bl-s.lr2e-3.noise3", 2e-3)):
        out = root / name
        log = (out / "stdout.log").read_text()
        assert "initialised from" in log and "lpcnet-bl-s/" in log, log[-2000:]
        steps = [r for r in _records(out) if r["kind"] == "step"]
        assert steps and abs(steps[0]["lr"] - lr) / lr < 0.01, steps[0]
    # --ft-patience reaches the plain fine-tunes only (not the baselines' branches), in a wave or the backlog
    capsys.readouterr()
    assert multi.main(args + ["--models", "lpcnet-bl-s.noise3", "--backlog", "plpcnet-s-g0-ft", "--ft-patience", "3",
                              "--backlog-min-left", "0"] + common) == 0
    starts = {ln.split()[2].rstrip(":"): ln for ln in capsys.readouterr().err.splitlines()
              if ln.startswith("multi: start")}
    assert "from the backlog" in starts["plpcnet-s-g0-ft"] and starts["plpcnet-s-g0-ft"].endswith("--patience 3")
    assert "--patience" not in starts["lpcnet-bl-s.noise3"]
    assert _records(root / "plpcnet-s-g0-ft"), "the backlog fine-tune trained"


def test_models_that_would_not_fit_together_train_in_waves():
    # six S branches at batch 512 on an 80 GB GPU: three fit (round 13: 20.5-22.5 GiB each), the rest wait
    six = [(n, multi.estimate_gib(n, 512)) for n in
           ("lpcnet-bl-s.control", "lpcnet-bl-s.noise3", "lpcnet-bl-s.nonoise", "lpcnet-bl-s.decay5e-5",
            "lpcnet-bl-s.lr1e-3", "lpcnet-bl-s.lr2e-4")]
    waves = multi.plan_waves(six, 79.6)
    assert [len(w) for w in waves] == [3, 3] and sum(waves, []) == [n for n, _ in six]
    four = six[:4]
    # round 13's third call: an L beside three S ran out of memory on one GPU; the estimate must not put it there
    mixed = [(n, multi.estimate_gib(n, 512)) for n in
             ("lpcnet-bl-s", "plpcnet-s-g0-ft", "plpcnet-s-g2-ft", "plpcnet-l-g1-ft")]
    assert [len(w) for w in multi.plan_waves(mixed, 79.6)] == [3, 1]
    assert multi.plan_waves(mixed, 79.6, n_gpus=2) == [[n for n, _ in mixed]]  # two GPUs: one wave
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
    assert multi.throughput_lines({"a": 1.0}, {}, 0.0) == [] and multi.throughput_lines({}, {}, 1.0) == []
    # a DDP run over four GPUs counts on all four
    lines = multi.throughput_lines({"a": 60.0}, {"a": "0,1,2,3"}, 5.0)
    assert lines[0].startswith("throughput GPU 0,1,2,3: 60.0 audio-h in 5.00 min = 12.00 audio-h/min = 3.00 per "
                               "GPU-minute over 4 GPUs (DDP)")
    assert lines[1].endswith("3.00 per GPU-minute over 4 GPU(s)")


def test_ddp_runs_each_model_under_torchrun_on_all_its_gpus(tmp_path, capsys):
    """--ddp 2 on the CPU (gloo): one real model, two processes, the global batch split between them."""
    data = tmp_path / "data"
    write_fixture(data, speakers=6, per_speaker=4, shards=1, seed=0, n_groups=2, frames=2)
    root = tmp_path / "runs"
    common = ["--", "--device", "cpu", "--threads", "1", "--groups", str(data / "speaker_groups.json"),
              "--splits", str(data / "speaker_splits.json"), "--log-every", "1", "--max-steps", "2"]
    args = ["--data", str(data), "--out-root", str(root), "--batch", "8", "--stagger-s", "0", "--budget-min", "5"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    assert multi.main(args + ["--models", "lpcnet-bl-s", "--ddp", "2"] + common) == 0
    err = capsys.readouterr().err
    start = next(ln for ln in err.splitlines() if ln.startswith("multi: start lpcnet-bl-s"))
    assert "torch.distributed.run --standalone --nproc_per_node 2 -m pnsc.training.lpcnet.train" in start
    log = (root / "lpcnet-bl-s" / "stdout.log").read_text()
    assert " x2," in log and "finished at step 2" in log, log[-2000:]  # two ranks, both steps taken
    assert "per GPU-minute over 2 GPU(s)" in err
    for bad, msg in ((["--ddp", "0"], "--ddp must be at least 1"),
                     (["--ddp", "2", "--backlog", "lpcnet-bl-l"], "no --backlog"),
                     (["--ddp", "4", "--gpus", "0,1"], "--ddp 4 needs as many GPUs")):
        assert msg in _usage_error(capsys, args + ["--models", "lpcnet-bl-s", *bad] + common)


# A stand-in for train.py where the scheduling is what is tested: it sleeps as long as FAKE_TRAIN says for its
# run folder, records when and where (CUDA_VISIBLE_DEVICES) it ran, and adds audio-hours to status.json.
FAKE_TRAIN = """
import json, os, sys, time
from pathlib import Path
argv = sys.argv[1:]
out = Path(argv[argv.index("--out") + 1])
plan = json.loads(os.environ["FAKE_TRAIN"]).get(out.name, {})
t_start = time.time()
time.sleep(plan.get("s", 0.1))
st = out / "status.json"
before = json.loads(st.read_text()).get("own_audio_hours", 0.0) if st.is_file() else 0.0
st.write_text(json.dumps({"done": False, "own_audio_hours": before + plan.get("h", 1.0)}))
(out / "call.json").write_text(json.dumps({"argv": argv, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                           "t_start": t_start, "t_end": time.time()}))
print("fake: trained", out.name)
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """multi.main running the fake trainer; returns run(root, plan, *argv) -> (exit status, stderr)."""
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    monkeypatch.setattr(multi, "TRAINER", "fake_train")
    monkeypatch.setattr(multi, "POLL_S", 0.05)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))

    def run(root, plan, *argv):
        monkeypatch.setenv("FAKE_TRAIN", json.dumps(plan))
        rc = multi.main(["--data", str(tmp_path), "--out-root", str(root), "--stagger-s", "0", *argv])
        return rc
    return run


def _call(root, name):
    return json.loads((root / name / "call.json").read_text())


def _budget(call):
    return float(call["argv"][call["argv"].index("--budget-min") + 1])


def _base(root, name, file="best.pt"):
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / file).write_text("weights")


def test_backlog_refills_the_gpu_slot_that_comes_free_first(tmp_path, fake, capsys):
    root = tmp_path / "runs"
    _base(root, "lpcnet-bl-s")
    (root / "plpcnet-s-g3-ft").mkdir()
    (root / "plpcnet-s-g3-ft" / "status.json").write_text('{"done": true}')
    # the first run (GPU 4) trains long; the second (GPU 5) stops early: the backlog goes to GPU 5, in order,
    # without waiting for the first; a done run and a branch without its base are skipped
    plan = {"plpcnet-s-g0-ft": {"s": 6.0, "h": 5.0}, "plpcnet-s-g1-ft": {"s": 0.1, "h": 1.0},
            "plpcnet-s-g2-ft": {"s": 0.1, "h": 2.0}, "lpcnet-bl-s.control": {"s": 0.1, "h": 3.0}}
    rc = fake(root, plan, "--models", "plpcnet-s-g0-ft,plpcnet-s-g1-ft", "--gpus", "4,5", "--budget-min", "1",
              "--backlog", "plpcnet-s-g3-ft,lpcnet-bl-l.nonoise,plpcnet-s-g2-ft,lpcnet-bl-s.control",
              "--backlog-min-left", "0.1", "--ft-patience", "2")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "multi: plpcnet-s-g3-ft already done" in err and "multi: skip lpcnet-bl-l.nonoise: needs a trained" in err
    first, second = _call(root, "plpcnet-s-g0-ft"), _call(root, "plpcnet-s-g1-ft")
    b1, b2 = _call(root, "plpcnet-s-g2-ft"), _call(root, "lpcnet-bl-s.control")
    assert (first["gpu"], second["gpu"], b1["gpu"], b2["gpu"]) == ("4", "5", "5", "5")
    assert second["t_end"] <= b1["t_start"] and b1["t_end"] <= b2["t_start"] and b2["t_start"] < first["t_end"]
    # a backlog run gets what is left of the wave, and the same options as the wave's runs
    assert _budget(b2) < _budget(b1) < _budget(first) <= 1.0 and _budget(b2) > 0.8
    assert b1["argv"][-2:] == ["--patience", "2"] and "--patience" not in b2["argv"]
    assert "--init-from" in b2["argv"] and b2["argv"][b2["argv"].index("--name") + 1] == "lpcnet-bl-s.control"
    assert "backlog not started" not in err
    lines = [ln for ln in err.splitlines() if "throughput" in ln]
    assert lines[0].startswith("multi: throughput GPU 4: 5.0 audio-h") and "(1 run(s): plpcnet-s-g0-ft 5.0)" in lines[0]
    assert lines[1].startswith("multi: throughput GPU 5: 6.0 audio-h") and "(3 run(s)" in lines[1]
    assert lines[2].startswith("multi: throughput all: 11.0 audio-h")


def test_backlog_waits_for_memory_and_stops_near_the_wave_end(tmp_path, fake, capsys):
    root = tmp_path / "runs"
    _base(root, "lpcnet-bl-s")
    _base(root, "lpcnet-bl-l")
    # batch 64 on an 8.5 GiB GPU: two S fit (4.1 GiB each), an S and an L (4.6 GiB) do not
    assert multi.estimate_gib("plpcnet-s-g0-ft", 64) * 2 < 8.5 < (multi.estimate_gib("plpcnet-s-g0-ft", 64)
                                                                  + multi.estimate_gib("plpcnet-l-g0-ft", 64))
    plan = {"plpcnet-s-g0-ft": {"s": 4.0}, "plpcnet-s-g1-ft": {"s": 0.1}, "plpcnet-s-g2-ft": {"s": 0.1},
            "plpcnet-l-g0-ft": {"s": 0.1}}
    common = ["--gpus", "0", "--gpu-mem-gib", "8.5", "--batch", "64", "--budget-min", "1"]
    rc = fake(root, plan, "--models", "plpcnet-s-g0-ft,plpcnet-s-g1-ft", "--backlog", "plpcnet-l-g0-ft,plpcnet-s-g2-ft",
              "--backlog-min-left", "0.1", *common)
    err = capsys.readouterr().err
    assert rc == 0 and "waves" not in err, err
    # the L waits (next to the long S it would not fit); the S behind it takes the slot; the L starts once
    # the GPU is empty
    long_s, small, big = (_call(root, n) for n in ("plpcnet-s-g0-ft", "plpcnet-s-g2-ft", "plpcnet-l-g0-ft"))
    assert small["t_start"] < long_s["t_end"] <= big["t_start"]
    # less than --backlog-min-left of the wave left: nothing more starts, and the backlog says so
    root2 = tmp_path / "runs2"
    _base(root2, "lpcnet-bl-s")
    rc = fake(root2, plan, "--models", "plpcnet-s-g1-ft", "--backlog", "plpcnet-s-g2-ft", "--backlog-min-left", "1",
              *common)
    err = capsys.readouterr().err
    assert rc == 0 and "multi: backlog not started: plpcnet-s-g2-ft" in err
    assert not (root2 / "plpcnet-s-g2-ft").exists()
    with pytest.raises(SystemExit) as exc:
        fake(root2, plan, "--models", "ft-s", "--backlog", "plpcnet-s-g1-ft,lpcnet-bl-s", *common)
    assert exc.value.code == 2 and "plpcnet-s-g1-ft: in both --models and --backlog" in capsys.readouterr().err


def test_resume_only_refuses_runs_that_would_start_from_random_weights(tmp_path, fake, capsys):
    root = tmp_path / "runs"
    _base(root, "lpcnet-bl-s", "last.pt")  # carried: it resumes
    models = "lpcnet-bl-s,lpcnet-bl-l,plpcnet-s-g0-scratch,plpcnet-s-g1-scratch,plpcnet-s-g0-ft,lpcnet-bl-s.control"
    rc = fake(root, {}, "--models", models, "--backlog", "plpcnet-l-g0-scratch", "--resume-only",
              "--fresh", "plpcnet-s-g1-scratch", "--budget-min", "1")
    err = capsys.readouterr().err
    assert rc == 3, err  # exit status: the refused runs count as failed
    for name in ("lpcnet-bl-l", "plpcnet-s-g0-scratch", "plpcnet-l-g0-scratch"):
        assert (f"multi: refuse {name}: no checkpoint in {root / name} and not in --fresh "
                f"(it would start from random weights)") in err
        assert not (root / name / "call.json").exists()
    # the rest trained: a resumed baseline, a scratch run named in --fresh, a fine-tune and a branch
    for name in ("lpcnet-bl-s", "plpcnet-s-g1-scratch", "plpcnet-s-g0-ft", "lpcnet-bl-s.control"):
        assert (root / name / "call.json").is_file(), name
    # without --resume-only every run starts, as before
    rc = fake(root, {}, "--models", "lpcnet-bl-l,plpcnet-s-g0-scratch", "--budget-min", "1")
    assert rc == 0 and (root / "lpcnet-bl-l" / "call.json").is_file()
    assert [n for n in multi.expand("all10,ft-s", 1) if multi.starts_from_random(n)] == [
        "lpcnet-bl-s", "lpcnet-bl-l", "plpcnet-s-g0-scratch", "plpcnet-l-g0-scratch"]
    assert not multi.starts_from_random("plpcnet-s-g0-scratch.control")


def _gpu_sh_train(tmp_path, **env):
    """scripts/gpu.sh train in a copy of the script, its python a stand-in that logs each call's arguments;
    returns (exit status, output, the argument lists multi.py was called with)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "scripts" / "gpu.sh", repo / "scripts" / "gpu.sh")
    py = tmp_path / "py"
    py.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$(mktemp -p "$PY_LOG")"; '
                  '[ "$2" = pnsc.training.lpcnet.multi ] && sleep "${MULTI_SLEEP:-0}"; '
                  'case "$*" in *ex.next*) sleep "${NEXT_SLEEP:-0}";; esac; '
                  '[ "$1" = -c ] && echo 5.0; exit 0\n')
    py.chmod(0o755)
    (tmp_path / "log").mkdir()
    mine = ("MODELS", "REQUIRE_RUNS", "FRESH", "BACKLOG", "BACKLOG_MIN_LEFT")
    full = {**{k: v for k, v in os.environ.items() if k not in mine},
            "PY": str(py), "PY_LOG": str(tmp_path / "log"), "OUT": str(tmp_path / "out"), **env}
    p = subprocess.run(["bash", str(repo / "scripts" / "gpu.sh"), "train"], capture_output=True, text=True,
                       env=full, timeout=60)
    calls = [f.read_text().splitlines() for f in (tmp_path / "log").iterdir()]
    return p.returncode, p.stdout + p.stderr, [c for c in calls if c[:2] == ["-m", "pnsc.training.lpcnet.multi"]]


def test_gpu_sh_train_passes_resume_only_fresh_and_backlog(tmp_path):
    rc, out, calls = _gpu_sh_train(tmp_path / "a", MODELS="ft-s")
    assert rc == 0 and len(calls) == 1, out  # no REQUIRE_RUNS: the call goes on
    head = calls[0][:calls[0].index("--")]
    assert "--resume-only" in head and "--fresh" not in head and "--backlog" not in head and "--ddp" not in head
    rc, out, calls = _gpu_sh_train(tmp_path / "d", MODELS="lpcnet-bl-l", DDP="4", BATCH="2048")
    head = calls[0][:calls[0].index("--")]
    assert rc == 0 and head[head.index("--ddp") + 1] == "4" and head[head.index("--batch") + 1] == "2048", out
    rc, out, calls = _gpu_sh_train(tmp_path / "b", MODELS="baselines", FRESH="lpcnet-bl-s, lpcnet-bl-l",
                                   BACKLOG="ft-s,plpcnet-l-g0-ft", BACKLOG_MIN_LEFT="2")
    head = calls[0][:calls[0].index("--")]
    assert rc == 0 and head[head.index("--fresh") + 1] == "lpcnet-bl-s, lpcnet-bl-l", out
    assert head[head.index("--backlog") + 1:head.index("--backlog") + 4] == [
        "ft-s,plpcnet-l-g0-ft", "--backlog-min-left", "2"]
    pair = "plpcnet-l-g1-ft.mix0.5.fp32.kd0.3=lpcnet-bl-l.fp32"
    rc, out, calls = _gpu_sh_train(tmp_path / "e", MODELS="plpcnet-l-g1-ft.mix0.5.fp32.kd0.3", TEACHER_FROM=pair,
                                   START_FROM="plpcnet-l-g3-ft.fp32=lpcnet-bl-l.fp32")
    head = calls[0][:calls[0].index("--")]
    assert rc == 0 and head[head.index("--teacher") + 1] == pair, out
    assert head[head.index("--start") + 1] == "plpcnet-l-g3-ft.fp32=lpcnet-bl-l.fp32"
    rc, out, calls = _gpu_sh_train(tmp_path / "c", REQUIRE_RUNS="lpcnet-bl-s,lpcnet-bl-l")
    assert rc == 3 and "no runs/gpu/lpcnet-bl-s/last.pt" in out and calls == []


def test_gpu_sh_train_ex_next_builds_the_next_seed_beside_the_training(tmp_path):
    """EX_SEED=K builds the call's training slices with seed K; EX_NEXT=1 builds seed K+1's in data/ex.next (the
    validation set not again) while multi.py trains, stops that build when training ends and says how far it got."""
    (tmp_path / "e" / "repo" / ".carry" / "tg0p1").mkdir(parents=True)
    (tmp_path / "e" / "repo" / ".carry" / "val").mkdir(parents=True)
    # a slice of the next seed finished already (the stand-in builds nothing): counted as complete
    (tmp_path / "e" / "repo" / "data" / "ex.next" / "tg0p1").mkdir(parents=True)
    (tmp_path / "e" / "repo" / "data" / "ex.next" / "tg0p1" / "index.json").write_text('{"complete": true}')
    rc, out, calls = _gpu_sh_train(tmp_path / "e", MODELS="ft-s", EX_SEED="4", EX_NEXT="1", MULTI_SLEEP="3")
    assert rc == 0 and len(calls) == 1, out
    builds = [f.read_text().splitlines() for f in (tmp_path / "e" / "log").iterdir()]
    builds = [b for b in builds if b[:1] == ["scripts/build_examples.py"]]

    def arg(b, k):
        return b[b.index(k) + 1]
    now = {(arg(b, "--out"), arg(b, "--seed")) for b in builds}
    assert ("data/ex/tg0p1", "4") in now and ("data/ex/val", "0") in now
    assert ("data/ex.next/tg0p1", "5") in now and not any(o == "data/ex.next/val" for o, _ in now)
    assert "examples for the next call (seed 5) building in data/ex.next" in out
    assert "examples for the next call (seed 5): 1 slice(s) complete by the end of training" in out
    # without EX_NEXT nothing is built ahead
    (tmp_path / "f" / "repo" / ".carry" / "tg0p1").mkdir(parents=True)
    rc, out, _ = _gpu_sh_train(tmp_path / "f", MODELS="ft-s")
    assert rc == 0 and "next call" not in out
    # nor with EX_NEXT=0 (a session's last call)
    (tmp_path / "h" / "repo" / ".carry" / "tg0p1").mkdir(parents=True)
    rc, out, _ = _gpu_sh_train(tmp_path / "h", MODELS="ft-s", EX_NEXT="0")
    assert rc == 0 and "next call" not in out


def test_gpu_sh_train_stops_an_unfinished_next_build_with_the_call(tmp_path):
    """A next-seed build still running when training ends is stopped, workers and all: nothing may write into
    data/ex.next once the call is over (the next call moves those folders)."""
    import time

    (tmp_path / "g" / "repo" / ".carry" / "tg0p1").mkdir(parents=True)
    t0 = time.monotonic()
    rc, out, _ = _gpu_sh_train(tmp_path / "g", MODELS="ft-s", EX_NEXT="1", MULTI_SLEEP="2", NEXT_SLEEP="45")
    assert rc == 0 and time.monotonic() - t0 < 30, out
    assert "examples for the next call (seed 1): 0 slice(s) complete" in out
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(tmp_path / "g").encode() in a for a in args) and any(b"ex.next" in a for a in args):
            left.append(args)
    assert left == []


def _ckpt_dirs(root: Path, names: list[str], f: str = "best.pt") -> None:
    for n in names:
        (root / n).mkdir(parents=True)
        (root / n / f).write_bytes(b"")


def test_kd_branches_take_the_l_run_of_their_slot_as_teacher(tmp_path):
    assert multi.split_branch("lpcnet-bl-s.kd0.5") == ("lpcnet-bl-s", ["--kd-weight", "0.5"])
    _ckpt_dirs(tmp_path, ["lpcnet-bl-s", "lpcnet-bl-l", "plpcnet-s-g1-ft.mix0.5", "plpcnet-l-g1-ft"])
    (tmp_path / "plpcnet-s-g1-ft").mkdir()  # kept as logs only: no weights to start from
    args, last = multi.train_args("lpcnet-bl-s.kd0.5", tmp_path)
    assert args[args.index("--init-from") + 1] == str(tmp_path / "lpcnet-bl-s" / "best.pt")
    assert last == ["--kd-weight", "0.5", "--teacher", str(tmp_path / "lpcnet-bl-l" / "best.pt")]
    # a branch of a branch starts from the branch; group 1's L fine-tune teaches
    args, last = multi.train_args("plpcnet-s-g1-ft.mix0.5.kd0.3", tmp_path)
    assert args[args.index("--init-from") + 1] == str(tmp_path / "plpcnet-s-g1-ft.mix0.5" / "best.pt")
    assert last == ["--group-mix", "0.5", "--kd-weight", "0.3", "--teacher",
                    str(tmp_path / "plpcnet-l-g1-ft" / "best.pt")]
    # group 2 has no L fine-tune on the machine: the L baseline teaches; no ancestor but the base -> the base
    _ckpt_dirs(tmp_path, ["plpcnet-s-g2-ft"], "last.pt")
    args, last = multi.train_args("plpcnet-s-g2-ft.lr1e-4.kd0.5", tmp_path)
    assert args[args.index("--init-from") + 1] == str(tmp_path / "plpcnet-s-g2-ft" / "last.pt")
    assert last[-1] == str(tmp_path / "lpcnet-bl-l" / "best.pt")
    with pytest.raises(SystemExit, match="distils an L teacher into an S run"):
        multi.train_args("lpcnet-bl-l.kd0.5", tmp_path)
    (tmp_path / "lpcnet-bl-l" / "best.pt").unlink()
    with pytest.raises(SystemExit, match="no teacher checkpoint"):
        multi.train_args("lpcnet-bl-s.kd0.5", tmp_path)
    # the teacher's pass is counted in the memory estimate
    assert multi.estimate_gib("lpcnet-bl-s.kd0.5", 512) > multi.estimate_gib("lpcnet-bl-s.lr1e-4", 512) + 3


def test_gpu_sh_train_batch_check_runs_before_the_training(tmp_path):
    rc, out, calls = _gpu_sh_train(tmp_path / "a", MODELS="ft-s", BATCH_CHECK="lpcnet-bl-s.lr1e-4")
    assert rc == 0 and len(calls) == 1, out
    logged = sorted((f.stat().st_mtime_ns, f.read_text().splitlines()) for f in (tmp_path / "a" / "log").iterdir())
    order = [c[1] for _, c in logged if c[:1] == ["-m"]]
    checks = [c for _, c in logged if c[:2] == ["-m", "pnsc.training.lpcnet.batch_check"]]
    assert [c[c.index("--batch") + 1] for c in checks] == ["512", "1024"]
    assert all(c[c.index("--run") + 1] == "runs/gpu/lpcnet-bl-s.lr1e-4" for c in checks)
    assert checks[1][checks[1].index("--json") + 1] == f"{tmp_path / 'a' / 'out'}/batch_check_1024.json"
    assert order.index("pnsc.training.lpcnet.multi") > order.index("pnsc.training.lpcnet.batch_check")
    assert "batch_check done after" in out
    assert all(c[c.index("--impl") + 1] == "fast" for c in checks)
    rc, out, _ = _gpu_sh_train(tmp_path / "b", MODELS="ft-s")
    assert rc == 0 and "batch_check done" not in out and "batch_check 512" not in out
    # several training paths: each at each size, the default path's files keeping their names
    rc, out, _ = _gpu_sh_train(tmp_path / "c", MODELS="ft-s", BATCH_CHECK="lpcnet-bl-s", BATCH_CHECK_IMPLS="fast,fold",
                               BATCH_CHECK_SIZES="512")
    checks = [c for c in (f.read_text().splitlines() for f in (tmp_path / "c" / "log").iterdir())
              if c[:2] == ["-m", "pnsc.training.lpcnet.batch_check"]]
    assert rc == 0 and sorted((c[c.index("--impl") + 1], Path(c[c.index("--json") + 1]).name) for c in checks) == [
        ("fast", "batch_check_512.json"), ("fold", "batch_check_512_fold.json")], out


def test_a_kd_branch_trains_from_its_ancestor_with_the_l_baseline_as_teacher(tmp_path):
    """The whole chain on the CPU: baselines, a recipe branch, then its kd branch (the student starts from the
    branch, the L baseline teaches)."""
    data = tmp_path / "data"
    write_fixture(data, speakers=6, per_speaker=4, shards=1, seed=0, n_groups=2, frames=2)
    root = tmp_path / "runs"
    common = ["--", "--device", "cpu", "--threads", "1", "--groups", str(data / "speaker_groups.json"),
              "--splits", str(data / "speaker_splits.json"), "--log-every", "1", "--max-steps", "2"]
    args = ["--data", str(data), "--out-root", str(root), "--batch", "4", "--stagger-s", "0", "--budget-min", "5",
            "--resume-only"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    assert multi.main(args + ["--models", "baselines", "--fresh", "baselines"] + common) == 0
    assert multi.main(args + ["--models", "lpcnet-bl-s.lr1e-4"] + common) == 0
    assert multi.main(args + ["--models", "lpcnet-bl-s.lr1e-4.kd0.5"] + common) == 0
    log = (root / "lpcnet-bl-s.lr1e-4.kd0.5" / "stdout.log").read_text()
    assert f"initialised from {root / 'lpcnet-bl-s.lr1e-4'}/" in log
    assert f"distilling from {root / 'lpcnet-bl-l'}/" in log and "(size L," in log
    saved = json.loads((root / "lpcnet-bl-s.lr1e-4.kd0.5" / "status.json").read_text())
    assert saved["step"] == 2


def test_fp32_branches_train_without_autocast_and_need_their_measured_memory(tmp_path):
    assert multi.split_branch("lpcnet-bl-s.lr1e-4.fp32") == ("lpcnet-bl-s", ["--lr", "1e-4", "--amp", "none"])
    assert multi.split_branch("lpcnet-bl-s.lr1e-4.fold") == ("lpcnet-bl-s", ["--lr", "1e-4", "--impl", "fold"])
    bf16, fp32 = multi.estimate_gib("lpcnet-bl-s.lr1e-4", 512), multi.estimate_gib("lpcnet-bl-s.lr1e-4.fp32", 512)
    # round 23's measured peaks (S 31.1 GiB float32 against 16.7 bf16 at batch 512) lie under the estimates
    assert 31.1 < fp32 < 31.1 * 1.1 and fp32 > bf16 > 16.7
    # two fp32 S runs share an 80 GB H100 (measured 62 GiB together), an fp32 L and an fp32 S too; two fp32 L do not
    names = ["lpcnet-bl-s.fp32", "plpcnet-s-g1-ft.mix0.5.fp32", "lpcnet-bl-s.lr1e-4", "plpcnet-s-g1-ft.mix0.5"]
    assert multi.place([(n, multi.estimate_gib(n, 512)) for n in names], 2) == [0, 1, 0, 1]
    need = lambda ns: [(n, multi.estimate_gib(n, 512)) for n in ns]  # noqa: E731
    assert len(multi.plan_waves(need(names[:2]), 79.6, n_gpus=1)) == 1
    assert len(multi.plan_waves(need(["lpcnet-bl-l.fp32", "lpcnet-bl-s.fp32"]), 79.6, n_gpus=1)) == 1
    assert len(multi.plan_waves(need(["lpcnet-bl-l.fp32", "plpcnet-l-g1-ft.fp32"]), 79.6, n_gpus=1)) == 2
    # the tag's --amp comes after gpu.sh's "--amp bf16" in the trainer's command line, so it wins
    (tmp_path / "lpcnet-bl-s").mkdir()
    (tmp_path / "lpcnet-bl-s" / "last.pt").write_bytes(b"x")
    args, last = multi.train_args("lpcnet-bl-s.fp32", tmp_path)
    assert last == ["--amp", "none"] and "--amp" not in args


def test_start_puts_a_new_run_on_another_run_s_weights_and_only_a_new_one(tmp_path):
    root = tmp_path / "runs"
    for run in ("lpcnet-bl-l", "lpcnet-bl-l.fp32", "plpcnet-l-g0-ft"):
        (root / run).mkdir(parents=True)
        (root / run / "last.pt").write_bytes(b"")

    def init(args):
        assert args.count("--init-from") == 1, args
        return Path(args[args.index("--init-from") + 1]).parent.name

    branch = "plpcnet-l-g0-ft.mix0.5.fp32"
    assert init(multi.train_args(branch, root)[0]) == "plpcnet-l-g0-ft"  # its ancestor
    args, last = multi.train_args(branch, root, "lpcnet-bl-l.fp32")
    assert init(args) == "lpcnet-bl-l.fp32" and "--group-mix" in last and "--group" in args
    assert init(multi.train_args("plpcnet-l-g2-ft", root)[0]) == "lpcnet-bl-l"  # a fine-tune: its baseline
    assert init(multi.train_args("plpcnet-l-g2-ft", root, "lpcnet-bl-l.fp32")[0]) == "lpcnet-bl-l.fp32"
    (root / branch).mkdir()
    (root / branch / "last.pt").write_bytes(b"")
    assert "--init-from" not in multi.train_args(branch, root, "lpcnet-bl-l.fp32")[0]  # resumes its own
    with pytest.raises(FileNotFoundError, match="--start needs a trained lpcnet-bl-s.fp32"):
        multi.train_args("plpcnet-s-g0-ft.fp32", root, "lpcnet-bl-s.fp32")


def test_start_is_checked_before_anything_trains(tmp_path, capsys):
    assert multi.parse_pairs("a.fp32=b, c=d") == {"a.fp32": "b", "c": "d"}
    for bad in ("a", "a=", "=b", "a=../b", "a=b,a=c"):
        with pytest.raises(ValueError):
            multi.parse_pairs(bad)
    with pytest.raises(ValueError, match="--teacher: 'x' is not NAME=RUN"):
        multi.parse_pairs("x", "--teacher")
    base = ["--data", str(tmp_path), "--out-root", str(tmp_path / "runs"), "--models", "plpcnet-s-g0-ft.fp32"]
    err = _usage_error(capsys, base + ["--start", "plpcnet-s-g1-ft.fp32=lpcnet-bl-s"])
    assert "in neither --models nor --backlog" in err
    assert "is not NAME=RUN" in _usage_error(capsys, base + ["--start", "plpcnet-s-g0-ft.fp32"])


def test_teacher_names_the_run_a_kd_branch_learns_for_either_size(tmp_path, capsys):
    """Round 28's anchoring branches: a fine-tune held to its own baseline's distribution (an L run too)."""
    root = tmp_path / "runs"
    _ckpt_dirs(root, ["lpcnet-bl-l.fp32", "lpcnet-bl-s.lr1e-4.fp32", "plpcnet-l-g1-ft.mix0.5.fp32", "lpcnet-bl-l"])
    branch = "plpcnet-l-g1-ft.mix0.5.fp32.kd0.3"
    args, last = multi.train_args(branch, root, teacher="lpcnet-bl-l.fp32")
    assert args[args.index("--init-from") + 1] == str(root / "plpcnet-l-g1-ft.mix0.5.fp32" / "best.pt")
    assert last == ["--group-mix", "0.5", "--amp", "none", "--kd-weight", "0.3", "--teacher",
                    str(root / "lpcnet-bl-l.fp32" / "best.pt")]
    with pytest.raises(SystemExit, match="distils an L teacher into an S run"):  # no teacher named: the old rule
        multi.train_args(branch, root)
    # a fresh S fine-tune from the S baseline, learning that same baseline
    args, last = multi.train_args("plpcnet-s-g3-ft.mix0.5.fp32.kd0.3", root, "lpcnet-bl-s.lr1e-4.fp32",
                                  "lpcnet-bl-s.lr1e-4.fp32")
    assert args[args.index("--init-from") + 1] == last[-1] == str(root / "lpcnet-bl-s.lr1e-4.fp32" / "best.pt")
    with pytest.raises(SystemExit, match="no teacher checkpoint in"):
        multi.train_args(branch, root, teacher="lpcnet-bl-l.gone")
    with pytest.raises(SystemExit, match="has none"):
        multi.train_args("plpcnet-l-g1-ft.mix0.5.fp32", root, teacher="lpcnet-bl-l.fp32")
    base = ["--data", str(tmp_path), "--out-root", str(root), "--models", "plpcnet-l-g1-ft.mix0.5.fp32," + branch]
    err = _usage_error(capsys, base + ["--teacher", "plpcnet-l-g1-ft.mix0.5.fp32=lpcnet-bl-l.fp32"])
    assert "without a kd tag" in err
    err = _usage_error(capsys, base + ["--teacher", "plpcnet-s-g1-ft.kd0.3=lpcnet-bl-l.fp32"])
    assert "--teacher names plpcnet-s-g1-ft.kd0.3, in neither --models nor --backlog" in err


def test_a_sparse_branch_of_an_averaged_run_keeps_averaging_and_ships_sparse_weights(tmp_path):
    """Round 32's branches (``lpcnet-bl-l.fp32.sparse0.2`` under the recipe's --ema-decay 0.999): the branch
    starts from its base's averaged weights, prunes GRU-A, and its average (what ships) takes the same mask."""
    import torch

    assert multi.split_branch("lpcnet-bl-s.lr1e-4.fp32.sparse0.2") == (
        "lpcnet-bl-s", ["--lr", "1e-4", "--amp", "none", "--sparse-density", "0.2"])
    data = tmp_path / "data"
    write_fixture(data, speakers=6, per_speaker=4, shards=1, seed=0, n_groups=2, frames=2)
    root = tmp_path / "runs"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = ["--data", str(data), "--out-root", str(root), "--batch", "4", "--stagger-s", "0", "--budget-min", "5"]
    common = ["--device", "cpu", "--threads", "1", "--groups", str(data / "speaker_groups.json"),
              "--splits", str(data / "speaker_splits.json"), "--log-every", "1", "--lr", "5e-4",
              "--ema-decay", "0.9"]
    assert multi.main(args + ["--models", "lpcnet-bl-s", "--"] + common + ["--max-steps", "2"]) == 0
    assert "ema" in torch.load(root / "lpcnet-bl-s" / "last.pt", weights_only=False)
    name = "lpcnet-bl-s.fp32.sparse0.2"
    assert multi.main(args + ["--models", name, "--"] + common
                      + ["--max-steps", "4", "--sparse-start", "0", "--sparse-end", "2", "--sparse-every", "1"]) == 0
    log = (root / name / "stdout.log").read_text()
    assert f"initialised from {root / 'lpcnet-bl-s'}/" in log, log[-2000:]
    ck = torch.load(root / name / "last.pt", weights_only=False)
    assert ck["args"]["ema_decay"] == 0.9 and ck["args"]["sparse_density"] == 0.2
    mask = ck["sparse"]["mask"]
    assert ck["sparse"]["mask_density"] == 0.2 and (ck["ema"]["gru_a.weight_hh_l0"][~mask] == 0).all()
    densities = [r["gru_a_density"] for r in _records(root / name) if r["kind"] == "epoch"]
    assert densities and densities[-1] < 0.5, densities


def test_gpu_sh_train_says_when_a_group_s_slices_are_missing_for_runs_that_train_on_every_group(tmp_path):
    """Rounds 29-31 trained LPCNet-BL-L without group 3's speakers: the call now says so."""
    def call(name, models, slices, **env):
        repo = tmp_path / name / "repo"
        (repo / "models").mkdir(parents=True)
        (repo / "models" / "training_groups.json").write_text('{"C": 4, "sizes": [1, 1, 1, 1]}')
        for s in ["val", *slices]:
            (repo / "data" / "ex" / s).mkdir(parents=True)
        rc, out, calls = _gpu_sh_train(tmp_path / name, MODELS=models, **env)
        assert rc == 0 and len(calls) == 1, out
        return [ln for ln in out.splitlines() if "WARNING" in ln]

    three = ["tg0p1", "tg0p2", "tg1p1", "tg2p1"]
    warned = call("a", "lpcnet-bl-l.fp32,plpcnet-l-g1-ft.mix0.5.fp32", three)
    assert len(warned) == 1 and "group(s) 3 " in warned[0], warned
    assert call("b", "plpcnet-l-g1-ft.mix0.5.fp32", three)  # a fine-tune that mixes in the other groups
    assert call("c", "baselines", ["tg1p1"])[0].count("group(s) 0 2 3 ")
    assert not call("d", "lpcnet-bl-l.fp32", three + ["tg3p1"])
    assert not call("e", "plpcnet-l-g1-ft,plpcnet-s-g2-ft.fp32", three)  # their own group's speech only
    assert not call("f", "lpcnet-bl-s", ["t17"])  # an older whole-split slice holds every group
    assert call("g", "plpcnet-l-g1-ft", three, BACKLOG="lpcnet-bl-s.fp32")  # a baseline waiting in the backlog
