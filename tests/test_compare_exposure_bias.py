"""scripts/compare_exposure_bias.py: two exposure_bias.py results paired per clip, with the gaps."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("compare_exposure_bias", REPO / "scripts" / "compare_exposure_bias.py")
ceb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ceb)


def _result(path: Path, a_shift: float, clips=("c0", "c1", "c2", "c3"), seed: int = 0) -> Path:
    n = len(clips)

    def mode(base: float) -> dict:
        return {"pesq_wb": [base + 0.1 * i for i in range(n)], "stoi": [0.8 + 0.01 * i for i in range(n)]}

    scores = {"A_free_running": mode(1.2 + a_shift), "B_tf_sampled": mode(1.5), "C_tf_mean": mode(2.0)}
    # a per-clip spread in A's shift so that the CI is finite: clip i moves by a_shift * (1 + i / 10)
    scores["A_free_running"]["pesq_wb"] = [1.2 + 0.1 * i + a_shift * (1 + i / 10) for i in range(n)]
    tf = {"cross_entropy": {"per_clip": [2.9 - a_shift / 10 + 0.01 * i for i in range(n)]}}
    tf["cross_entropy"]["mean"] = sum(tf["cross_entropy"]["per_clip"]) / n
    s = {"clips": list(clips), "scores": scores, "teacher_forced_loss": tf}
    path.write_text(json.dumps({"checkpoint": path.stem, "seed": seed, "sets": {"validation": s}}))
    return path


def test_new_decoder_closing_the_free_running_gap(tmp_path, capsys):
    old, new = _result(tmp_path / "old.json", 0.0), _result(tmp_path / "new.json", 0.2)
    md = tmp_path / "d.md"
    assert ceb.main([str(old), str(new), "--metrics", "pesq_wb", "stoi", "--markdown", str(md)]) == 0
    text = md.read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in text.splitlines() if line.startswith("| ")}
    assert rows["A_free_running"][0].strip().startswith("+0.230 ± ") and "(4/4) *" in rows["A_free_running"][0]
    assert rows["B_tf_sampled"][0].strip() == "+0.000 ± 0.000 (0/4)"  # teacher-forced modes unchanged
    gap = rows["free running (B - A)"][0]
    assert gap.strip().startswith("-0.230 ± ") and "[OLD +0.300]" in gap  # NEW loses 0.23 less to free running
    assert rows["sampling (C - B)"][0].strip().startswith("+0.000 ± 0.000 (0/4) [OLD +0.500]")
    assert "cross_entropy 2.8950 / 2.9150 (-0.0200" in text
    assert "validation speakers, 4 clips" in capsys.readouterr().out


def test_refuses_results_that_cannot_be_paired(tmp_path):
    old = _result(tmp_path / "old.json", 0.0)
    with pytest.raises(SystemExit, match="clips differ"):
        ceb.main([str(old), str(_result(tmp_path / "other.json", 0.1, clips=("c0", "c1", "c2", "c9"))), "--metrics", "stoi"])
    with pytest.raises(SystemExit, match="seeds differ"):
        ceb.main([str(old), str(_result(tmp_path / "seed1.json", 0.1, seed=1)), "--metrics", "stoi"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"per_utterance": {}}))
    with pytest.raises(SystemExit, match="not an exposure_bias.py result"):
        ceb.main([str(old), str(bad)])
    with pytest.raises(SystemExit, match="no metric 'visqol'"):
        ceb.main([str(old), str(_result(tmp_path / "new.json", 0.1)), "--metrics", "visqol"])
