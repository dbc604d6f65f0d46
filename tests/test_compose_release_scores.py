"""scripts/compose_release_scores.py: a release's per-utterance scores from the old release and candidates."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("compose_release_scores",
                                               REPO / "scripts" / "compose_release_scores.py")
crs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crs)

GROUPS = {"u0": 0, "u1": 1, "u2": 1, "u3": 2, "u4": None}


def _report(path: Path, value: float, groups: dict = GROUPS) -> Path:
    per = {s: {u: {"pesq_wb": value} for u in groups} for s in ("plpcnet-s", "lpcnet-bl-l")}
    path.write_text(json.dumps({"per_utterance": per, "classification": {"utterance_group": groups},
                                "summary": {"old": True}}))
    return path


def test_takes_whole_systems_and_chosen_groups_from_the_candidate(tmp_path, capsys):
    old, cand, out = _report(tmp_path / "o.json", 1.0), _report(tmp_path / "c.json", 2.0), tmp_path / "r.json"
    assert crs.main([str(old), str(cand), str(out), "lpcnet-bl-l", "plpcnet-s:1,2"]) == 0
    per = json.loads(out.read_text())["per_utterance"]
    assert {u: v["pesq_wb"] for u, v in per["lpcnet-bl-l"].items()} == dict.fromkeys(GROUPS, 2.0)
    assert {u: v["pesq_wb"] for u, v in per["plpcnet-s"].items()} == {
        "u0": 1.0, "u1": 2.0, "u2": 2.0, "u3": 2.0, "u4": 1.0}  # group 0 and the undecided one keep the old
    assert "plpcnet-s:1,2: 3 utterance(s)" in capsys.readouterr().out
    # ``none``: the utterance the classifier left without a group (decoded by the family's baseline)
    assert crs.main([str(old), str(cand), str(out), "plpcnet-s:0,none"]) == 0
    per = json.loads(out.read_text())["per_utterance"]
    assert {u: v["pesq_wb"] for u, v in per["plpcnet-s"].items()} == {
        "u0": 2.0, "u1": 1.0, "u2": 1.0, "u3": 1.0, "u4": 2.0}
    with pytest.raises((SystemExit, ValueError)):
        crs.main([str(old), str(cand), str(out), "plpcnet-s:x"])
    # the inputs are untouched
    assert json.loads(old.read_text())["per_utterance"]["plpcnet-s"]["u1"]["pesq_wb"] == 1.0


def test_the_composed_release_pairs_with_compare_reports(tmp_path):
    spec = importlib.util.spec_from_file_location("compare_reports", REPO / "scripts" / "compare_reports.py")
    cr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cr)
    old, cand, out = _report(tmp_path / "o.json", 1.0), _report(tmp_path / "c.json", 1.5), tmp_path / "r.json"
    crs.main([str(old), str(cand), str(out), "plpcnet-s:1"])
    md = tmp_path / "d.md"
    assert cr.main([str(old), str(out), "--metrics", "pesq_wb", "--systems", "plpcnet-s", "--markdown", str(md)]) == 0
    row = next(line for line in md.read_text().splitlines() if line.startswith("| plpcnet-s"))
    assert "+0.200" in row and "(2/5)" in row  # two of five utterances changed by +0.5


def test_refuses_mismatched_reports_bad_specs_and_unknown_systems(tmp_path):
    old = _report(tmp_path / "o.json", 1.0)
    other = _report(tmp_path / "x.json", 2.0, {**GROUPS, "u3": 1})
    out = tmp_path / "r.json"
    for args in ([str(old), str(other), str(out), "plpcnet-s"],     # group decisions differ
                 [str(old), str(old), str(out), "plpcnet-s:"],      # empty group list
                 [str(old), str(old), str(out), "plpcnet-s:a"],     # not a group number
                 [str(old), str(old), str(out), "plpcnet-l:1"]):    # not in the reports
        with pytest.raises(SystemExit) as e:
            crs.main(args)
        assert e.value.code == 2
    assert not out.exists()
    for text in (json.dumps({"per_utterance": {}}), "[1, 2]", "{"):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(SystemExit, match="not a pnsc eval scores.json with group decisions"):
            crs.main([str(bad), str(old), str(out), "plpcnet-s"])
    # a candidate without scores for an utterance of the chosen groups (a failed decode) is refused, not half used
    holes = json.loads(_report(tmp_path / "h.json", 2.0).read_text())
    del holes["per_utterance"]["plpcnet-s"]["u3"]
    (tmp_path / "h.json").write_text(json.dumps(holes))
    with pytest.raises(SystemExit) as e:
        crs.main([str(old), str(tmp_path / "h.json"), str(out), "plpcnet-s:2"])
    assert e.value.code == 2 and not out.exists()


def test_drops_the_old_summaries_and_says_how_it_was_composed(tmp_path):
    old, cand = _report(tmp_path / "o.json", 1.0), _report(tmp_path / "c.json", 2.0)
    first, second = tmp_path / "r1.json", tmp_path / "r2.json"
    crs.main([str(old), str(cand), str(first), "lpcnet-bl-l"])
    crs.main([str(first), str(cand), str(second), "plpcnet-s:1"])
    d = json.loads(second.read_text())
    assert "summary" not in d and "paired" not in d  # OLD's means would no longer match the scores
    assert d["composed"] == {"slots": ["plpcnet-s:1"], "old": str(first), "candidate": str(cand),
                             "old_composed": {"slots": ["lpcnet-bl-l"], "old": str(old), "candidate": str(cand)}}


def test_labels_replace_paths_and_the_models_folder(tmp_path):
    old, cand = _report(tmp_path / "o.json", 1.0), _report(tmp_path / "c.json", 2.0)
    d = json.loads(old.read_text())
    d["config"] = {"models_dir": "/machine/specific/models", "seed": 0}
    old.write_text(json.dumps(d))
    plain, labelled = tmp_path / "plain.json", tmp_path / "labelled.json"
    crs.main([str(old), str(cand), str(plain), "lpcnet-bl-l"])
    assert json.loads(plain.read_text())["config"] == {"models_dir": "composed: see composed", "seed": 0}
    crs.main([str(old), str(cand), str(labelled), "lpcnet-bl-l", "--old-label", "the round-19 release",
              "--candidate-label", "the round-20 candidates (seed 0)", "--models-label", "the round-20 release"])
    out = json.loads(labelled.read_text())
    assert out["composed"] == {"slots": ["lpcnet-bl-l"], "old": "the round-19 release",
                               "candidate": "the round-20 candidates (seed 0)"}
    assert out["config"]["models_dir"] == "the round-20 release"
    assert str(tmp_path) not in labelled.read_text()
