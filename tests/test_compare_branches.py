"""scripts/compare_branches.py: the pitch-line setting per run reaches the feature coding, labels stay unique."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import pnsc.shared.quantizer as q
from pnsc.shared.constants import PITCH_MIN
from pnsc.shared.quantizer import quantize_features
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("compare_branches", REPO / "scripts" / "compare_branches.py")
cb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cb)


def _onset() -> np.ndarray:
    """One superframe of a voicing onset: frame 0 unvoiced (period PITCH_MIN), frames 1-3 at period 100."""
    feats = np.zeros((4, 20), np.float32)
    feats[:, q.PERIOD_INDEX] = [PITCH_MIN, 100.0, 100.0, 100.0]
    feats[:, q.CORR_INDEX] = [0.05, 0.8, 0.8, 0.8]
    return feats


def test_pitch_line_switches_the_encoder_and_restores_the_flag():
    shipped = q.PITCH_LINE_VOICED_ONLY
    with cb.pitch_line("voiced"):
        assert q.PITCH_LINE_VOICED_ONLY is True
        voiced = quantize_features(_onset())[1][1:, q.PERIOD_INDEX]
    with cb.pitch_line("all"):
        assert q.PITCH_LINE_VOICED_ONLY is False
        every = quantize_features(_onset())[1][1:, q.PERIOD_INDEX]
    assert np.all(np.abs(voiced / 100.0 - 1.0) < 0.02) and np.all(every < 90.0)
    with cb.pitch_line(None):
        assert q.PITCH_LINE_VOICED_ONLY is shipped
    with pytest.raises(RuntimeError), cb.pitch_line("voiced" if not shipped else "all"):
        raise RuntimeError
    assert q.PITCH_LINE_VOICED_ONLY is shipped


def test_pitch_modes_one_for_all_or_one_per_run():
    assert cb.pitch_modes(None, 3) == [None, None, None]
    assert cb.pitch_modes(["voiced"], 2) == ["voiced", "voiced"]
    assert cb.pitch_modes(["all", "voiced"], 2) == ["all", "voiced"]
    assert "one per run" in cb.pitch_modes(["all", "voiced"], 3)


def test_labels_of_same_named_runs_and_repeated_runs(tmp_path):
    r4, r6 = tmp_path / "r4" / "lpcnet-bl-s", tmp_path / "r6" / "lpcnet-bl-s"
    assert cb.run_labels([r4, r6], ["all", "voiced"]) == ["r4/lpcnet-bl-s", "r6/lpcnet-bl-s"]
    assert cb.run_labels([r4, r6, r6], ["all", "voiced", "all"]) == \
        ["r4/lpcnet-bl-s", "r6/lpcnet-bl-s[voiced]", "r6/lpcnet-bl-s[all]"]
    assert cb.run_labels([r4, tmp_path / "x"], [None, None]) == ["lpcnet-bl-s", "x"]
    assert "twice" in cb.run_labels([r6, r6], ["voiced", "voiced"])


def test_cli_rejects_a_wrong_number_of_settings(tmp_path, capsys):
    runs = [tmp_path / "r4" / "lpcnet-bl-s", tmp_path / "r6" / "lpcnet-bl-s"]
    with pytest.raises(SystemExit) as e:
        cb.main([*map(str, runs), "--pitch-line", "all", "voiced", "all"])
    assert e.value.code == 2 and "one per run (2), got 3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cb.main([*map(str, runs), "--pitch-line", "some"])
    assert e.value.code == 2


def test_compare_pool_pairs_clips_within_groups(tmp_path):
    spec = importlib.util.spec_from_file_location("compare_pool", REPO / "scripts" / "compare_pool.py")
    cp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cp)

    def res(g: int, old: list[float], new: list[float]) -> dict:
        sc = lambda v: {m: v for m in cp.METRICS}  # noqa: E731
        return {"runs": {}, "validation": {"clips": [], "scores": {f"r4/plpcnet-s-g{g}-ft": sc(old),
                                                                   f"r6/plpcnet-s-g{g}-ft": sc(new)}}}
    pooled = cp.pool([res(0, [1.0, 2.0], [1.5, 2.5]), res(3, [3.0], [2.0])])["validation"]
    assert list(pooled) == ["r4/plpcnet-s-ft", "r6/plpcnet-s-ft"]
    assert pooled["r4/plpcnet-s-ft"]["pesq_wb"] == [1.0, 2.0, 3.0]
    assert pooled["r6/plpcnet-s-ft"]["stoi"] == [1.5, 2.5, 2.0]
    with pytest.raises(SystemExit):
        cp.pool([res(0, [1.0], [1.0]), {"validation": {"scores": {"a": {}, "b": {}}}}])
    # a group whose file also compares a branch pools with the others on the roles they share (--first 2)
    extra = res(1, [4.0], [5.0])
    extra["validation"]["scores"]["r6/plpcnet-s-g1-ft.sparse0.1"] = {m: [0.0] for m in cp.METRICS}
    with pytest.raises(SystemExit, match="do not match"):
        cp.pool([res(0, [1.0], [1.0]), extra])
    pooled = cp.pool([res(0, [1.0], [1.5]), extra], first=2)["validation"]
    assert list(pooled) == ["r4/plpcnet-s-ft", "r6/plpcnet-s-ft"] and pooled["r6/plpcnet-s-ft"]["stoi"] == [1.5, 5.0]
    with pytest.raises(SystemExit):
        cp.main([str(tmp_path / "x.json"), "--first", "1"])


def test_from_json_pairs_a_saved_judgement_against_another_run(tmp_path, capsys):
    import json

    scores = {"r10/lpcnet-bl-s": {"pesq_wb": [1.0, 1.1, 1.2], "stoi": [0.8, 0.8, 0.8]},
              "r7/plpcnet-s-g1-ft": {"pesq_wb": [1.1, 1.2, 1.3], "stoi": [0.8, 0.8, 0.8]},
              "r12/plpcnet-s-g1-ft": {"pesq_wb": [1.3, 1.4, 1.5], "stoi": [0.81, 0.81, 0.81]}}
    saved = {"runs": {k: {"path": k, "pitch_line": "voiced"} for k in scores},
             "training": {"clips": ["a", "b", "c"], "scores": {k: {**v, "estoi": v["stoi"], "dnsmos_ovrl": v["stoi"]}
                                                               for k, v in scores.items()}}}
    path = tmp_path / "g1.json"
    path.write_text(json.dumps(saved))
    out_md = tmp_path / "g1_vs_r7.md"
    assert cb.main(["--from-json", str(path), "--reference", "r7/plpcnet-s-g1-ft", "--markdown", str(out_md)]) == 0
    rows = {line.split("|")[1].strip(): line for line in out_md.read_text().splitlines()
            if line.startswith("| r") and "/" in line.split("|")[1]}
    assert list(rows)[0] == "r7/plpcnet-s-g1-ft"  # the new reference leads
    assert "(+0.200 ± 0.000, 3/3)" in rows["r12/plpcnet-s-g1-ft"]
    assert "(-0.100 ± 0.000, 0/3)" in rows["r10/lpcnet-bl-s"]
    for bad in (["--from-json", str(path), "--reference", "nope"], ["--from-json", str(tmp_path / "none.json")], []):
        with pytest.raises(SystemExit) as e:
            cb.main(bad)
        assert e.value.code == 2
