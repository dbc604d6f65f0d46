"""scripts/compare_reports.py: two eval reports paired per utterance."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("compare_reports", REPO / "scripts" / "compare_reports.py")
cr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cr)


def _report(path: Path, shift: float, utts: int = 6) -> Path:
    per = {"sys-a": {f"u{i}": {"pesq_wb": 1.0 + 0.1 * i + shift * (i % 2 + 1), "stoi": 0.8} for i in range(utts)},
           "sys-b": {f"u{i}": {"pesq_wb": 2.0, "stoi": None} for i in range(utts)}}
    path.write_text(json.dumps({"per_utterance": per}))
    return path


def test_paired_difference_of_two_reports(tmp_path, capsys):
    old, new = _report(tmp_path / "old.json", 0.0), _report(tmp_path / "new.json", 0.1)
    out_md = tmp_path / "d.md"
    assert cr.main([str(old), str(new), "--metrics", "pesq_wb", "stoi", "--markdown", str(out_md)]) == 0
    rows = {line.split("|")[1].strip(): line for line in out_md.read_text().splitlines() if line.startswith("| sys")}
    assert "+0.150 ± " in rows["sys-a"] and "(6/6)" in rows["sys-a"]  # mean of 0.1 and 0.2 shifts
    assert "+0.000 ± 0.000 (0/6)" in rows["sys-a"].split("|")[3]  # stoi unchanged
    assert rows["sys-b"].split("|")[3].strip() == "–"  # no finite pairs: no number invented
    assert "sys-a" in capsys.readouterr().out


def test_refuses_what_is_not_a_report_and_unknown_systems(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    good = _report(tmp_path / "g.json", 0.0)
    with pytest.raises(SystemExit, match="not a pnsc eval scores.json"):
        cr.main([str(bad), str(good)])
    with pytest.raises(SystemExit) as e:
        cr.main([str(good), str(good), "--systems", "nope"])
    assert e.value.code == 2


def test_seed_pooling_averages_each_utterance_before_pairing(tmp_path):
    old = _report(tmp_path / "old.json", 0.0)
    # two "seeds" of the new release: shifts 0.0 and 0.2 average to 0.1 per utterance (x1 or x2 by parity)
    n0, n1 = _report(tmp_path / "n0.json", 0.0), _report(tmp_path / "n1.json", 0.2)
    out_md = tmp_path / "d.md"
    assert cr.main([str(old), f"{n0},{n1}", "--metrics", "pesq_wb", "--markdown", str(out_md)]) == 0
    row = next(line for line in out_md.read_text().splitlines() if line.startswith("| sys-a"))
    assert "+0.150 ± " in row and "(6/6)" in row
    # a metric missing in one seed's report is missing in the pool, not averaged over the others
    pooled = cr._mean_reports([{"s": {"u": {"m": 1.0}}}, {"s": {"u": {"m": None}}}])
    assert pooled["s"]["u"]["m"] is None
    assert cr._mean_reports([{"s": {"u": {"m": 1.0}}}, {"s": {"u": {"m": 3.0}}}])["s"]["u"]["m"] == 2.0


def test_seed_pooling_keeps_the_report_s_order_so_the_tables_come_out_the_same_every_run():
    names = [f"system-{k:02d}" for k in range(20)]  # a set of 20 names would come out in insertion order ~never
    rep = {n: {f"u{j}": {"m": 1.0} for j in (3, 1, 2)} for n in names}
    pooled = cr._mean_reports([rep, rep])
    assert list(pooled) == names and list(pooled["system-05"]) == ["u3", "u1", "u2"]


def test_old_system_pairs_every_new_system_with_one_baseline(tmp_path):
    rep = _report(tmp_path / "r.json", 0.0)
    out_md = tmp_path / "d.md"
    # the same report on both sides: sys-a against sys-b (2.0 everywhere) is sys-a's PESQ-WB minus 2.0
    args = [str(rep), str(rep), "--old-system", "sys-b", "--metrics", "pesq_wb", "--markdown", str(out_md)]
    assert cr.main(args) == 0
    rows = [line for line in out_md.read_text().splitlines() if line.startswith("| sys-")]
    assert len(rows) == 1 and rows[0].startswith("| sys-a")
    assert "-0.750 ± " in rows[0] and "(0/6)" in rows[0]  # mean of 1.0..1.5 is 1.25
    with pytest.raises(SystemExit) as e:
        cr.main([str(rep), str(rep), "--old-system", "nope"])
    assert e.value.code == 2


def test_by_group_splits_the_pairs_by_the_classifier_s_group(tmp_path):
    old, new = _report(tmp_path / "old.json", 0.0), _report(tmp_path / "new.json", 0.1)
    d = json.loads(new.read_text())
    d["classification"] = {"utterance_group": {f"u{i}": (0 if i < 4 else 2) for i in range(6)}}
    new.write_text(json.dumps(d))
    out_md = tmp_path / "d.md"
    assert cr.main([str(old), str(new), "--systems", "sys-a", "--metrics", "pesq_wb", "--by-group",
                    "--markdown", str(out_md)]) == 0
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in out_md.read_text().splitlines()
            if line.startswith("| sys")}
    # shifts: 0.1 x (1 for even i, 2 for odd i): u0..u3 -> 0.15 on average, u4, u5 -> 0.15 too; counts split 4 / 2
    assert rows["sys-a"].endswith("(6/6)") and rows["sys-a, group 0"].endswith("(4/4)")
    assert rows["sys-a, group 2"].startswith("+0.150") and rows["sys-a, group 2"].endswith("(2/2)")
    with pytest.raises(SystemExit, match="no per-utterance speaker groups"):
        cr.main([str(new), str(old), "--by-group"])  # NEW (the first report of it) must carry the groups
