"""scripts/validation_table.py: Fig. 5 joins a restarted baseline to the run it restarted from."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("validation_table", REPO / "scripts" / "validation_table.py")
vt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vt)


def _run(root: Path, name: str, own: list[float], total: list[float]) -> None:
    d = root / name
    d.mkdir(parents=True)
    recs = [{"kind": "epoch", "step": i, "val_groups": {"0": 2.5}, "audio_hours": a, "audio_hours_total": t}
            for i, (a, t) in enumerate(zip(own, total))]
    (d / "log.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")


def test_predecessor_is_the_set_aside_run_that_ends_where_the_restart_began(tmp_path):
    _run(tmp_path, "lpcnet-bl-l", [3.6, 50.0], [131.7, 178.1])  # own counting began at 128.1 audio-hours
    _run(tmp_path, "lpcnet-bl-l.before-lr5e-4", [100.0, 125.1], [100.0, 125.1])  # last validated at 125.1
    _run(tmp_path, "lpcnet-bl-l.before-r4base", [130.0, 189.7], [130.0, 189.7])  # a continuation set aside
    curves = {n: [(r["audio_hours_total"], 2.5, True) for r in vt.epochs(tmp_path / n)]
              for n in ("lpcnet-bl-l", "lpcnet-bl-l.before-lr5e-4", "lpcnet-bl-l.before-r4base")}
    assert vt.predecessor(tmp_path, "lpcnet-bl-l", curves) == "lpcnet-bl-l.before-lr5e-4"
    # a run that started from scratch has no predecessor, and neither has one with no matching history
    _run(tmp_path, "lpcnet-bl-s", [1.0, 9.0], [1.0, 9.0])
    assert vt.predecessor(tmp_path, "lpcnet-bl-s", curves) is None
    del curves["lpcnet-bl-l.before-lr5e-4"]
    assert vt.predecessor(tmp_path, "lpcnet-bl-l", curves) is None


def test_predecessor_may_end_past_its_last_validation(tmp_path):
    # round 15: BL-S's averaging branch began at 651.6 audio-hours, where round 13's run stopped, 11.6 after
    # that run's last validation (a baseline epoch is long): its recorded end joins them
    _run(tmp_path, "lpcnet-bl-s", [12.0, 100.9], [663.6, 752.6])
    _run(tmp_path, "lpcnet-bl-s.before-ema0.999.lr2e-4", [100.0, 267.1], [473.0, 640.0])
    names = ("lpcnet-bl-s", "lpcnet-bl-s.before-ema0.999.lr2e-4")
    curves = {n: [(r["audio_hours_total"], 2.5, True) for r in vt.epochs(tmp_path / n)] for n in names}
    assert vt.predecessor(tmp_path, "lpcnet-bl-s", curves) is None  # 11.6 h: past the tolerance
    (tmp_path / names[1] / "status.json").write_text(json.dumps({"audio_hours": 651.637}))
    assert vt.predecessor(tmp_path, "lpcnet-bl-s", curves) == names[1]
    (tmp_path / names[1] / "status.json").write_text(json.dumps({"audio_hours": 700.0}))  # ended elsewhere
    assert vt.predecessor(tmp_path, "lpcnet-bl-s", curves) is None


def test_lineage_follows_restarts_of_restarts(tmp_path):
    _run(tmp_path, "lpcnet-bl-s", [2.0, 115.0], [375.0, 488.0])  # round 10: began at 373
    _run(tmp_path, "lpcnet-bl-s.before-lr5e-4", [5.0, 238.0], [140.0, 372.9])  # round 6: began at 135
    _run(tmp_path, "lpcnet-bl-s.before-decay5e-5", [10.0, 134.9], [10.0, 134.9])  # rounds 1-4, from scratch
    _run(tmp_path, "lpcnet-bl-s.control", [3.0, 60.0], [138.0, 195.0])  # a branch set aside, not a predecessor
    names = ("lpcnet-bl-s", "lpcnet-bl-s.before-lr5e-4", "lpcnet-bl-s.before-decay5e-5", "lpcnet-bl-s.control")
    curves = {n: [(r["audio_hours_total"], 2.5, True) for r in vt.epochs(tmp_path / n)] for n in names}
    assert vt.lineage(tmp_path, "lpcnet-bl-s", curves) == ["lpcnet-bl-s.before-lr5e-4", "lpcnet-bl-s.before-decay5e-5"]
    assert vt.lineage(tmp_path, "lpcnet-bl-s.before-decay5e-5", curves) == []


def test_a_run_that_ended_on_its_best_weights_is_tabled_at_that_validation(tmp_path):
    d = tmp_path / "plpcnet-s-g0-ft"
    d.mkdir()
    recs = [{"kind": "epoch", "epoch": e, "step": 10 * e, "val_groups": {"0": v}} for e, v in
            enumerate([2.43, 2.41, 2.44, 2.45])]
    (d / "log.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    ep = vt.epochs(d)
    assert vt.held(d, ep) == 3  # no status: the last validation's weights
    (d / "status.json").write_text(json.dumps({"done": True, "weights_epoch": None}))
    assert vt.held(d, ep) == 3
    (d / "status.json").write_text(json.dumps({"done": True, "weights_epoch": 1}))  # train.py --patience
    assert vt.held(d, ep) == 1 and ep[vt.held(d, ep)]["val_groups"]["0"] == 2.41


def test_each_fine_tune_is_weighed_against_its_size_s_baseline_group_by_group():
    rows = {"lpcnet-bl-s": {"per_group": [2.40, 2.27, 2.98, 2.27]},
            "plpcnet-s-ft": {"per_group": [2.41, 2.26, 2.98, 2.27]},
            "plpcnet-l-ft": {"per_group": [2.39, 2.27, 2.97, 2.26]}}  # no L baseline in the folder: not weighed
    rel = vt.against_baseline(rows)
    assert list(rel) == ["plpcnet-s-ft"]
    assert [round(100 * v, 2) for v in rel["plpcnet-s-ft"]] == [0.42, -0.44, 0.0, 0.0]


def test_a_branch_is_drawn_after_its_parent_up_to_where_it_began_and_the_parent_s_own_history(tmp_path):
    # round 23: the float32 BL-L branched at 1,214.6 audio-hours from a bf16 run that trained on to 1,400
    _run(tmp_path, "lpcnet-bl-l", [3.0, 50.0], [1217.6, 1264.6])
    _run(tmp_path, "lpcnet-bl-l.bf16", [100.0, 200.0, 300.0, 400.0], [1100.0, 1200.0, 1300.0, 1400.0])  # began at 1000
    _run(tmp_path, "lpcnet-bl-l.before-r21", [500.0, 999.9], [500.0, 999.9])  # the run the bf16 one restarted
    names = ("lpcnet-bl-l", "lpcnet-bl-l.bf16", "lpcnet-bl-l.before-r21")
    curves = {n: [(r["audio_hours_total"], 2.5, True) for r in vt.epochs(tmp_path / n)] for n in names}
    points, chain = vt.branch_curve(tmp_path, "lpcnet-bl-l", "lpcnet-bl-l.bf16", curves)
    assert chain == ["lpcnet-bl-l.bf16", "lpcnet-bl-l.before-r21"]
    assert [p[0] for p in points] == [500.0, 999.9, 1100.0, 1200.0, 1217.6, 1264.6]  # not the parent past 1214.6


def test_a_malformed_parent_is_refused_with_its_form(tmp_path):
    import subprocess
    import sys
    for bad in ("lpcnet-bl-l", "plpcnet-s-g0-ft=x", "lpcnet-bl-l="):
        r = subprocess.run([sys.executable, str(REPO / "scripts" / "validation_table.py"), str(tmp_path),
                            "--parent", bad], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "BASELINE=RUN" in r.stderr, (bad, r.stderr)


def test_a_baseline_s_convergence_is_the_change_over_the_last_fifth_of_its_audio_hours():
    curve = [(h, 2.6 - 0.001 * h, True) for h in range(0, 101, 10)]  # 2.6 at 0 h down to 2.5 at 100 h
    lf = vt.last_fifth(curve, 2.5)
    assert lf["from_hours"] == 80 and lf["to_hours"] == 100 and lf["at_cut"] == 2.6 - 0.08
    assert abs(lf["change"] - (2.5 - 2.52) / 2.52) < 1e-12 and not lf["converged"]  # -0.79 %
    flat = [(h, 2.5 + (0.01 if h < 80 else 0.0), True) for h in range(0, 101, 10)]
    assert vt.last_fifth(flat, 2.5)["converged"]  # -0.40 %
    # interpolated (uncounted) hours are not used, and a branch without its parent's history has no verdict
    assert vt.last_fifth([(50.0, 2.6, False)] + curve[9:], 2.5) is None
    assert vt.last_fifth(curve[9:], 2.5) is None
    assert vt.last_fifth([], 2.5) is None
