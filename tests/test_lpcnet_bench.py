"""The training throughput benchmark runs on CPU with tiny sizes and writes its JSON."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from pnsc.training.lpcnet import bench  # noqa: E402


def test_bench_cli_writes_results_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = bench.main(["--device", "cpu", "--size", "tiny", "--batch", "2", "--impl", "old,fast", "--procs", "1",
                     "--steps", "2", "--frames", "2", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())["results"]
    assert [(r["impl"], r["batch"], r["procs"]) for r in res] == [("old", 2, 1), ("fast", 2, 1)]
    for r in res:
        assert r["audio_h_per_min"] > 0 and r["peak_gib_each"] > 0, r
    # same seeded model and data: both paths report the same loss
    assert abs(res[0]["runs"][0]["loss"] - res[1]["runs"][0]["loss"]) < 1e-3
    assert "audio-h/min total" in capsys.readouterr().out


def test_processes_of_a_configuration_time_the_same_stretch(tmp_path):
    """--procs 2: both warm up, then time their steps from one start signal for --window-s seconds, so their
    summed throughput is that of processes running at once (overlap near 1), not of each alone in turn."""
    out = tmp_path / "b.json"
    rc = bench.main(["--device", "cpu", "--size", "tiny", "--batch", "2", "--impl", "fast", "--procs", "2",
                     "--steps", "3", "--frames", "2", "--window-s", "1.5", "--out", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())["results"][0]
    assert r["procs"] == 2 and len(r["runs"]) == 2
    starts = [x["t0"] for x in r["runs"]]
    assert max(starts) - min(starts) < 0.5  # one start signal
    assert all(x["t1"] - x["t0"] >= 1.5 for x in r["runs"])  # the window, not just --steps
    assert r["overlap"] > 0.6
    assert r["audio_h_per_min"] == pytest.approx(sum(x["audio_h_per_min"] for x in r["runs"]), rel=1e-3)


@pytest.mark.parametrize("args", [["--impl", "nope"], ["--batch", "0"], ["--frames", "0"], ["--device", "cuda"],
                                  ["--window-s", "-1"]])
def test_bench_bad_arguments_exit_2(args, capsys):
    if args == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert bench.main(args) == 2
    assert capsys.readouterr().err.startswith("pnsc: error: ")
