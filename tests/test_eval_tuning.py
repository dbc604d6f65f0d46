"""pnsc.evaluation.tuning: pooling tuning runs over decoder seeds (per-clip mean, the clip the paired item)."""
from __future__ import annotations

import json

import pytest

from pnsc.evaluation.tuning import pooled_tables


def _run(path, seed, shift, clips=("a", "b", "c")):
    scores = {"fam": {"ref": {"m": [1.0, 2.0, 3.0]}, "x": {"m": [1.0 + shift, 2.0 + shift, 3.0 + 2 * shift]}}}
    if seed == 1:
        scores["fam"]["only-once"] = {"m": [0.0, 0.0, 0.0]}
    path.write_text(json.dumps({"clips": list(clips), "seed": seed, "scores": scores}))
    return path


def test_pooled_tables_average_clips_over_runs_and_keep_common_settings(tmp_path):
    a, b = _run(tmp_path / "s0.json", 0, 0.1), _run(tmp_path / "s1.json", 1, 0.3)
    lines = pooled_tables([a, b], "ref", ("m",), label="setting", ref_text="the reference")
    text = "\n".join(lines)
    assert "per-clip mean over seeds 0, 1; paired difference to the reference" in text
    row = next(line for line in lines if line.startswith("| x "))
    assert "+0.267" in row and "3/3" in row  # clip means +0.2, +0.2, +0.4
    assert "only-once" not in text  # a setting missing from one run is left out


def test_pooling_runs_of_different_clips_is_refused(tmp_path):
    a, b = _run(tmp_path / "s0.json", 0, 0.1), _run(tmp_path / "s1.json", 1, 0.3, clips=("a", "b", "z"))
    with pytest.raises(ValueError, match="different clips"):
        pooled_tables([a, b], "ref", ("m",), label="setting", ref_text="the reference")


def test_saved_runs_pool_back(tmp_path):
    from pnsc.evaluation.tuning import save_run

    clips = [("a", "spk", None), ("b", "spk", None)]
    for seed, shift in ((0, 0.1), (1, 0.3)):
        save_run(tmp_path / "out" / f"s{seed}.json", clips, seed,
                 {"fam": {"ref": {"m": [1.0, 2.0]}, "x": {"m": [1.0 + shift, 2.0 + shift]}}}, note="extra field")
    saved = json.loads((tmp_path / "out" / "s0.json").read_text())
    assert saved["clips"] == ["a", "b"] and saved["seed"] == 0 and saved["note"] == "extra field"
    lines = pooled_tables([tmp_path / "out" / "s0.json", tmp_path / "out" / "s1.json"], "ref", ("m",),
                          label="setting", ref_text="the reference")
    assert "+0.200" in next(line for line in lines if line.startswith("| x "))
