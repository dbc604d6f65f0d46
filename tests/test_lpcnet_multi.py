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
    for bad in ("lpcnet-bl-s.fast", "lpcnet-bl-x.control", "lpcnet-bl-s.noise"):
        with pytest.raises(SystemExit):
            multi.expand(bad, 4)


def test_a_branch_needs_its_trained_base(tmp_path):
    with pytest.raises(FileNotFoundError, match="needs a trained lpcnet-bl-s"):
        multi.train_args("lpcnet-bl-s.noise3", tmp_path)


def _records(out):
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_branches_start_from_the_base_and_their_options_win(tmp_path):
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
