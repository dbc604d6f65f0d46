"""scripts/round_verdict.py: the shipping rule "better on new talkers, worse on none" on real paired statistics."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import round_verdict as rv  # noqa: E402

METRICS = ("pesq_wb", "stoi", "dnsmos_ovrl")


def _report(path: Path, systems: dict[str, dict[str, np.ndarray]], groups: dict[str, int]) -> None:
    """A pnsc eval scores.json: per system and metric, per-utterance values in the order of ``groups``."""
    utts = list(groups)
    per = {s: {u: {m: float(v[i]) for m, v in ms.items()} for i, u in enumerate(utts)} for s, ms in systems.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"per_utterance": per, "classification": {"utterance_group": groups}}))


def _clips(path: Path, runs: dict[str, str], val: dict[str, dict], train: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tolist = lambda d: {k: {m: list(map(float, v)) for m, v in ms.items()} for k, ms in d.items()}  # noqa: E731
    path.write_text(json.dumps({"runs": {k: {"path": p} for k, p in runs.items()},
                                "validation": {"clips": [], "scores": tolist(val)},
                                "training": {"clips": [], "scores": tolist(train)}}))


@pytest.fixture
def round_dir(tmp_path: Path):
    """A release (REF), a round's candidate reports (OUT/ev) and group-1 clips (OUT/clips/g1.json).

    Group 1's PLPCNet-S candidate gains PESQ-WB on its 10 held-out utterances; the BL-S candidate loses STOI
    on all 20; PLPCNet-S group 2's candidate changes nothing."""
    rng = np.random.default_rng(0)
    groups = {f"u{i:02d}": (1 if i < 10 else 2) for i in range(20)}
    base = {m: rng.uniform(1.0, 3.0, 20) for m in METRICS}
    noise = lambda: {m: 1e-4 * np.resize([1.0, -1.0], 20) for m in METRICS}  # zero mean in each group  # noqa: E731
    old = {s: dict(base) for s in ("plpcnet-s", "lpcnet-bl-s")}
    new_s = {m: base[m] + noise()[m] for m in METRICS}
    new_s["pesq_wb"] = new_s["pesq_wb"] + np.where(np.arange(20) < 10, rng.uniform(0.02, 0.06, 20), 0)
    new_bl = {m: base[m] + noise()[m] for m in METRICS}
    new_bl["stoi"] = new_bl["stoi"] - rng.uniform(0.005, 0.02, 20)
    ref, out = tmp_path / "ref", tmp_path / "out"
    for name in ("s0", "s1", "s2", "55"):
        _report(ref / f"{name}.json", old, groups)
    for name in ("cand-s0", "cand-s1", "cand-s2", "cand-55"):
        _report(out / "ev" / name / "scores.json", {"plpcnet-s": new_s, "lpcnet-bl-s": new_bl}, groups)
    cand, shipped = tmp_path / "cand", tmp_path / "shipped"
    for d, names in ((cand, ["plpcnet-s-g1-ft", "plpcnet-s-g2-ft", "lpcnet-bl-s"]),
                     (shipped, ["plpcnet-s-g1-ft", "plpcnet-s-g2-ft", "lpcnet-bl-s"])):
        for n in names:
            (d / n).mkdir(parents=True)
    clip = {m: rng.uniform(1.0, 3.0, 8) for m in METRICS}
    _clips(out / "clips" / "g1.json",
           {"shipped/plpcnet-s-g1-ft": str(shipped / "plpcnet-s-g1-ft"),
            "cand/plpcnet-s-g1-ft": str(cand / "plpcnet-s-g1-ft")},
           {"shipped/plpcnet-s-g1-ft": clip, "cand/plpcnet-s-g1-ft": {m: v + 1e-3 * np.resize([1, -1], 8) for m, v in clip.items()}},
           {"shipped/plpcnet-s-g1-ft": clip, "cand/plpcnet-s-g1-ft": clip})
    return cand, out, ref, shipped


def test_slot_verdicts_follow_the_rule(round_dir) -> None:
    cand, out, ref, shipped = round_dir
    v = {s: rv.judge_slot(s, cand, out, ref, shipped, METRICS)
         for s in ("plpcnet-s-g1-ft", "plpcnet-s-g2-ft", "lpcnet-bl-s")}
    g1 = v["plpcnet-s-g1-ft"]
    assert g1.verdict == "ships"
    assert [(e.kind, e.subset, e.n, e.better, e.worse) for e in g1.evidence] == [
        ("heldout-seeds", "group 1", 10, ["pesq_wb"], []), ("heldout-55", "group 1", 10, ["pesq_wb"], []),
        ("validation-clips", "group 1", 8, [], []), ("training-clips", "group 1", 8, [], [])]
    assert v["plpcnet-s-g2-ft"].verdict == "level"  # its utterances changed by noise only; no group-2 clips
    bl = v["lpcnet-bl-s"]
    assert bl.verdict == "worse" and all(e.worse == ["stoi"] and e.n == 20 for e in bl.evidence)
    # the baseline serves no group-1 slot here (a shipped fine-tune does): group 1's clips do not judge it
    assert [e.kind for e in bl.evidence] == ["heldout-seeds", "heldout-55"]


def test_few_items_ship_nothing_and_losses_always_count() -> None:
    gain = rv.Evidence("validation-clips", "group 3", n=4, better=["pesq_wb"])
    assert rv.overall([gain]) == "level" and rv.overall([gain], min_n=4) == "ships"
    loss = rv.Evidence("training-clips", "group 3", n=4, worse=["stoi"])
    assert rv.overall([gain, loss], min_n=4) == "trade"
    assert rv.overall([rv.Evidence("heldout-55", "all", n=55, better=["stoi"]), loss]) == "trade"
    assert rv.overall([rv.Evidence("training-clips", "group 1", n=12, better=["stoi"])]) == "level"  # not new talkers
    assert rv.overall([loss]) == "worse" and rv.overall([]) == "no evidence"


def test_slot_names_are_checked() -> None:
    assert rv.parse_slot("plpcnet-l-g2-ft") == ("plpcnet-l", "l", 2)
    assert rv.parse_slot("lpcnet-bl-s") == ("lpcnet-bl-s", "s", None)
    with pytest.raises(ValueError, match="not a slot name"):
        rv.parse_slot("plpcnet-s-g1-ft.mix0.5")


def test_command_line_writes_markdown_and_json(round_dir, tmp_path: Path) -> None:
    cand, out, ref, shipped = round_dir
    md, js = tmp_path / "v.md", tmp_path / "v.json"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "round_verdict.py"), str(cand), str(out), str(ref),
                        "--shipped", str(shipped), "--markdown", str(md), "--json", str(js)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == md.read_text()
    assert "| plpcnet-s-g1-ft | **ships** |" in r.stdout and "| lpcnet-bl-s | **worse** |" in r.stdout
    assert "| plpcnet-s-g1-ft | heldout-55 | group 1 | 10 | pesq_wb +0." in r.stdout
    data = {d["slot"]: d for d in json.loads(js.read_text())}
    assert data["lpcnet-bl-s"]["evidence"][0]["diffs"]["stoi"]["significant"] is True
    (cand / "not-a-slot").mkdir()
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "round_verdict.py"), str(cand), str(out), str(ref)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not slot names" in r.stderr and "not-a-slot" in r.stderr
