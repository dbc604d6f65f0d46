"""scripts/plot_bench.py: bench results grouped into lines per (size, batch, precision), the table, the plot,
bad input."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("plot_bench", REPO / "scripts" / "plot_bench.py")
plot_bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_bench)


def _bench(path: Path, results: list[dict]) -> Path:
    path.write_text(json.dumps({"device_name": "test", "results": results}))
    return path


def test_points_per_size_and_batch_across_files(tmp_path: Path) -> None:
    a = _bench(tmp_path / "a.json", [
        {"size": "S", "batch": 512, "procs": 1, "audio_h_per_min": 8.4},
        {"size": "S", "batch": 512, "procs": 2, "audio_h_per_min": 11.8},
    ])
    b = _bench(tmp_path / "b.json", [
        {"size": "S", "batch": 1024, "procs": 1, "audio_h_per_min": 9.8},
        {"size": "S", "batch": 1024, "procs": 3, "error": "oom"},
        {"size": "S", "batch": 1024, "procs": 4, "error": "skipped"},
        {"size": "L", "batch": 512, "audio_h_per_min": 7.0},  # no procs: one process
    ])
    lines = plot_bench.load_points([a, b])
    assert lines == {("S", 512, "bf16"): {1: 8.4, 2: 11.8}, ("S", 1024, "bf16"): {1: 9.8, 3: None},
                     ("L", 512, "bf16"): {1: 7.0}}
    table = plot_bench.markdown(lines).splitlines()
    assert table[0] == "| size, batch, precision | 1 proc. | 2 proc. | 3 proc. |"
    assert "| S, 1024, bf16 | 9.80 | – | oom |" in table
    assert "| L, 512, bf16 | 7.00 | – | – |" in table


def test_precisions_are_separate_lines(tmp_path: Path) -> None:
    """Round 29 timed S at batch 512 in float32 and in bf16: two lines, not one overwritten by the other."""
    a = _bench(tmp_path / "fp32.json", [
        {"size": "S", "batch": 512, "procs": 3, "amp": "none", "audio_h_per_min": 11.78},
        {"size": "S", "batch": 512, "procs": 4, "amp": "none", "error": "oom"},
    ])
    b = _bench(tmp_path / "bf16.json", [{"size": "S", "batch": 512, "procs": 3, "amp": "bf16", "audio_h_per_min": 14.77}])
    lines = plot_bench.load_points([a, b])
    assert lines == {("S", 512, "fp32"): {3: 11.78, 4: None}, ("S", 512, "bf16"): {3: 14.77}}
    assert "| S, 512, fp32 | 11.78 | oom |" in plot_bench.markdown(lines).splitlines()
    assert plot_bench.devices([a, b]) == ["test"]


def test_writes_a_png(tmp_path: Path) -> None:
    bench = REPO / "docs" / "figures" / "round20" / "bench_procs_b768_b1024.json"
    out = tmp_path / "fig" / "thr.png"
    assert plot_bench.main([str(bench), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("content", ["not json", json.dumps({"results": [{"batch": 512}]}), json.dumps([1, 2])])
def test_bad_files_are_refused_with_the_path(tmp_path: Path, content: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(SystemExit, match="bad.json"):
        plot_bench.load_points([p])


def test_nothing_measured_is_an_error(tmp_path: Path) -> None:
    p = _bench(tmp_path / "skipped.json", [{"size": "S", "batch": 512, "procs": 1, "error": "skipped"}])
    with pytest.raises(SystemExit, match="no measured configuration"):
        plot_bench.load_points([p])
