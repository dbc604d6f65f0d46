"""scripts/judge_round.sh: which decoders each judging job compares (DRY=1 prints the jobs instead of running them)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "judge_round.sh"


def _runs(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True)
    for n in names:
        (root / n).mkdir()
        (root / n / "status.json").write_text("{}")
    return root


def _judge(cand: Path, out: Path, *args: str, shipped: Path, dry: bool = True,
           env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, SHIPPED=str(shipped), **(env or {}))
    if dry:
        env["DRY"] = "1"
    return subprocess.run(["bash", str(SCRIPT), str(cand), str(out), *args], env=env, text=True,
                          capture_output=True, timeout=60)


def _clips_line(stdout: str, group: int) -> list[str]:
    lines = [l for l in stdout.splitlines() if "compare_branches.py" in l and f"/clips/g{group}.json" in l]
    assert len(lines) == 1, stdout
    words = lines[0].split()
    return words[2:words.index("--train-shard")]


def test_all_exports_evaluates_and_compares_each_group(tmp_path: Path) -> None:
    shipped = _runs(tmp_path / "shipped", ["lpcnet-bl-s", "lpcnet-bl-l", "plpcnet-s-g0-ft", "plpcnet-l-g0-ft",
                                           "plpcnet-s-g1-ft", "plpcnet-l-g1-ft", "plpcnet-s-g2-ft"])
    cand = _runs(tmp_path / "cand", ["lpcnet-bl-s", "lpcnet-bl-l", "plpcnet-s-g0-ft", "plpcnet-l-g2-ft",
                                     "plpcnet-s-g3-ft"])
    out = tmp_path / "out"
    r = _judge(cand, out, "all", shipped=shipped)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"cp -r models {out}/cand"
    assert f"scripts/export_decoders.py {cand} --models-dir {out}/cand --keep-others" in lines[1]
    evals = [l for l in lines if " eval " in l]
    assert [l.split("--seed ")[1].split()[0] for l in evals] == ["0", "1", "2", "0"]
    assert all(f"--models-dir {out}/cand" in l and "--no-wrong-group" in l for l in evals)
    assert "--per-speaker 10" in evals[3] and evals[3].endswith(f"--out {out}/ev/cand-55")
    assert not any("--per-speaker" in l for l in evals[:3])
    assert not out.exists()  # DRY runs nothing
    # group 0: shipped S, candidate S, shipped L (no L candidate), both candidate baselines
    assert _clips_line(r.stdout, 0) == [f"{shipped}/plpcnet-s-g0-ft", f"{cand}/plpcnet-s-g0-ft",
                                        f"{shipped}/plpcnet-l-g0-ft", f"{cand}/lpcnet-bl-s", f"{cand}/lpcnet-bl-l"]
    # group 2: no shipped L run of its own -> its size's baseline stands in
    assert _clips_line(r.stdout, 2) == [f"{shipped}/plpcnet-s-g2-ft", f"{shipped}/lpcnet-bl-l",
                                        f"{cand}/plpcnet-l-g2-ft", f"{cand}/lpcnet-bl-s", f"{cand}/lpcnet-bl-l"]
    # group 3's slots fall back to the baselines
    assert _clips_line(r.stdout, 3) == [f"{shipped}/lpcnet-bl-s", f"{cand}/plpcnet-s-g3-ft",
                                        f"{shipped}/lpcnet-bl-l", f"{cand}/lpcnet-bl-s", f"{cand}/lpcnet-bl-l"]


def test_dropout_scans_the_exported_candidates(tmp_path: Path) -> None:
    cand = _runs(tmp_path / "cand", ["lpcnet-bl-s"])
    r = _judge(cand, tmp_path / "out", "dropout", "lpcnet-bl-s", "plpcnet-s-g1", shipped=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"--decoders lpcnet-bl-s plpcnet-s-g1 --models-dir {tmp_path}/out/cand --seeds 4" in r.stdout


def test_bad_arguments_fail_with_a_reason(tmp_path: Path) -> None:
    cand = _runs(tmp_path / "cand", ["lpcnet-bl-s"])
    cases = [((tmp_path / "nowhere", tmp_path / "out", "heldout"), "no candidate folder"),
             ((cand, tmp_path / "out", "judge"), "unknown step 'judge'"),
             ((cand, tmp_path / "out", "clips"), "clips needs groups"),
             ((cand, tmp_path / "out", "clips", "g1"), "group 'g1' is not a number"),
             ((cand, tmp_path / "out", "dropout"), "dropout needs decoder names")]
    for args, message in cases:
        r = _judge(*args, shipped=tmp_path, dry=False)
        assert r.returncode == 2 and message in r.stdout, (args, r.stdout, r.stderr)
    r = subprocess.run(["bash", str(SCRIPT)], text=True, capture_output=True, timeout=60)
    assert r.returncode == 2 and "bash scripts/judge_round.sh CANDRUNS OUT STEP" in r.stdout


def test_a_failing_job_is_logged_with_its_status(tmp_path: Path) -> None:
    cand = _runs(tmp_path / "cand", ["lpcnet-bl-s"])
    out = tmp_path / "out"
    env = dict(os.environ, SHIPPED=str(tmp_path), PY="false")
    r = subprocess.run(["bash", str(SCRIPT), str(cand), str(out), "dropout", "lpcnet-bl-s"], env=env, text=True,
                       capture_output=True, timeout=60)
    assert r.returncode == 1
    line = (out / "progress.txt").read_text().split()
    assert line[:3] == ["dropout", "rc", "1"]
    assert (out / "dropout.log").exists()


def test_compare_pairs_the_reports_with_the_release(tmp_path: Path) -> None:
    cand = _runs(tmp_path / "cand", ["lpcnet-bl-s"])
    out = tmp_path / "out"
    ref = tmp_path / "ref"
    ref.mkdir()
    r = _judge(cand, out, "compare", str(ref), shipped=tmp_path)
    assert r.returncode == 2 and f"no {ref}/s0.json" in r.stdout
    for f in ("s0", "s1", "s2", "55"):
        (ref / f"{f}.json").write_text("{}")
    r = _judge(cand, out, "compare", str(ref), shipped=tmp_path)
    assert r.returncode == 0, r.stderr
    seeds, fifty_five = r.stdout.splitlines()
    assert (f"compare_reports.py {ref}/s0.json,{ref}/s1.json,{ref}/s2.json {out}/ev/cand-s0/scores.json,"
            f"{out}/ev/cand-s1/scores.json,{out}/ev/cand-s2/scores.json --by-group --markdown {out}/heldout_seeds.md"
            in seeds)
    assert f"compare_reports.py {ref}/55.json {out}/ev/cand-55/scores.json --by-group" in fifty_five


def test_extra_runs_join_their_groups_clips(tmp_path: Path) -> None:
    shipped = _runs(tmp_path / "shipped", ["lpcnet-bl-s", "lpcnet-bl-l", "plpcnet-s-g1-ft", "plpcnet-l-g1-ft"])
    cand = _runs(tmp_path / "cand", ["lpcnet-bl-s", "plpcnet-s-g1-ft"])
    extra = _runs(tmp_path / "r20", ["plpcnet-s-g1-ft", "lpcnet-bl-s.b1024"])
    env = {"EXTRA_G1": f"{extra}/plpcnet-s-g1-ft {extra}/lpcnet-bl-s.b1024"}
    r = _judge(cand, tmp_path / "out", "clips", "1", "2", shipped=shipped, env=env)
    assert r.returncode == 0, r.stderr
    assert _clips_line(r.stdout, 1) == [f"{shipped}/plpcnet-s-g1-ft", f"{cand}/plpcnet-s-g1-ft",
                                        f"{shipped}/plpcnet-l-g1-ft", f"{cand}/lpcnet-bl-s",
                                        f"{extra}/plpcnet-s-g1-ft", f"{extra}/lpcnet-bl-s.b1024"]
    assert f"{extra}/" not in " ".join(_clips_line(r.stdout, 2))  # only the group it names
    r = _judge(cand, tmp_path / "out", "clips", "1", shipped=shipped, env={"EXTRA_G1": f"{extra}/missing"})
    assert r.returncode == 2 and "EXTRA_G1 names" in r.stdout and "missing" in r.stdout


def test_verdict_runs_round_verdict_on_the_release_scores(tmp_path: Path) -> None:
    cand = _runs(tmp_path / "cand", ["plpcnet-s-g1-ft"])
    out = tmp_path / "out"
    r = _judge(cand, out, "verdict", shipped=tmp_path)
    assert r.returncode == 2 and "verdict needs the release's scores folder" in r.stdout
    r = _judge(cand, out, "verdict", "docs/figures/round19/release_scores", shipped=tmp_path / "shipped")
    assert r.returncode == 0, r.stderr
    assert (f"scripts/round_verdict.py {cand} {out} docs/figures/round19/release_scores --shipped "
            f"{tmp_path}/shipped --markdown {out}/verdict.md --json {out}/verdict.json") in r.stdout


def test_release_composes_the_new_release_and_writes_the_pairings_a_round_reports(tmp_path: Path) -> None:
    shipped = _runs(tmp_path / "shipped", ["lpcnet-bl-s"])
    cand = _runs(tmp_path / "cand", ["lpcnet-bl-l"])
    ref = tmp_path / "figures" / "round24" / "release_scores"
    ref.mkdir(parents=True)
    for f in ("s0", "s1", "s2", "55"):
        (ref / f"{f}.json").write_text("{}")
    out, dest = tmp_path / "out", tmp_path / "round25"
    r = _judge(cand, out, "release", str(ref), str(dest), "lpcnet-bl-l", "plpcnet-l:3,none", shipped=shipped)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    composed = [l for l in lines if "compose_release_scores.py" in l]
    assert [l.split()[2:5] for l in composed] == [
        [f"{ref}/{f}.json", f"{out}/ev/cand-{f}/scores.json", f"{dest}/release_scores/{f}.json"]
        for f in ("s0", "s1", "s2", "55")]
    assert all(" lpcnet-bl-l plpcnet-l:3,none --old-label " in l for l in composed)
    written = [l.split("--markdown ")[1] for l in lines if "compare_reports.py" in l]
    assert [Path(w).name for w in written] == [
        "release_vs_round24_seeds.md", "release_vs_round24_55.md",
        "plpcnet_s_vs_baseline_seeds.md", "plpcnet_s_vs_baseline_55.md",
        "plpcnet_l_vs_baseline_seeds.md", "plpcnet_l_vs_baseline_55.md",
        "plpcnet_s_vs_bll_seeds.md", "plpcnet_s_vs_bll_55.md"]
    fam = next(l for l in lines if "plpcnet_l_vs_baseline_seeds.md" in l)
    assert "--old-system lpcnet-bl-l --systems plpcnet-l --by-group" in fam
    new3 = ",".join(f"{dest}/release_scores/{f}.json" for f in ("s0", "s1", "s2"))
    assert fam.split()[2:4] == [new3, new3]  # the family and its baseline, both from the new release
    assert not dest.exists()
    missing = _judge(cand, out, "release", str(tmp_path), str(dest), "lpcnet-bl-l", shipped=shipped)
    assert missing.returncode == 2 and "no " in missing.stdout
