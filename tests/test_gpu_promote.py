"""scripts/gpu.sh promote, retire and carry-groups: recipe branches become base runs, runs set aside, group slices."""
from __future__ import annotations

import subprocess
from pathlib import Path

GPU_SH = Path(__file__).resolve().parent.parent / "scripts" / "gpu.sh"


def _promote(runs: Path, branch: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(GPU_SH), "promote", str(runs), branch], capture_output=True, text=True)


def test_promote_moves_the_branch_into_the_base_and_keeps_the_old_base(tmp_path):
    for name, text in (("lpcnet-bl-s", "round 4"), ("lpcnet-bl-s.decay5e-5", "branch")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "last.pt").write_text(text)
    p = _promote(tmp_path, "lpcnet-bl-s.decay5e-5")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "lpcnet-bl-s" / "last.pt").read_text() == "branch"
    assert (tmp_path / "lpcnet-bl-s.before-decay5e-5" / "last.pt").read_text() == "round 4"
    assert not (tmp_path / "lpcnet-bl-s.decay5e-5").exists()


def test_promote_refuses_what_it_cannot_do_and_moves_nothing(tmp_path):
    (tmp_path / "lpcnet-bl-s").mkdir()
    (tmp_path / "lpcnet-bl-s" / "last.pt").write_text("base")
    for branch in ("lpcnet-bl-s.nonoise", "lpcnet-bl-s"):  # no such branch; a base is no branch
        p = _promote(tmp_path, branch)
        assert p.returncode == 2 and "no branch checkpoint" in p.stdout
    (tmp_path / "lpcnet-bl-s.nonoise").mkdir()
    (tmp_path / "lpcnet-bl-s.nonoise" / "last.pt").write_text("x")
    (tmp_path / "lpcnet-bl-s.before-nonoise").mkdir()
    p = _promote(tmp_path, "lpcnet-bl-s.nonoise")
    assert p.returncode == 2 and "exists already" in p.stdout
    assert (tmp_path / "lpcnet-bl-s" / "last.pt").read_text() == "base"


def _retire(runs: Path, tag: str, *names: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(GPU_SH), "retire", str(runs), tag, *names], capture_output=True, text=True)


def test_retire_sets_runs_aside_so_fine_tunes_start_afresh(tmp_path):
    for name in ("plpcnet-s-g0-ft", "plpcnet-s-g1-ft"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "last.pt").write_text(name)
    p = _retire(tmp_path, "refit", "plpcnet-s-g0-ft", "plpcnet-s-g1-ft")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "plpcnet-s-g0-ft.before-refit" / "last.pt").read_text() == "plpcnet-s-g0-ft"
    assert not (tmp_path / "plpcnet-s-g0-ft").exists() and not (tmp_path / "plpcnet-s-g1-ft").exists()


def test_retire_sets_aside_a_run_kept_as_logs_only(tmp_path):
    # the committed state keeps concluded runs without weights; one left under its name would outrank (by its
    # step) the afresh run of that name when a call's tars are unpacked
    (tmp_path / "plpcnet-s-g3-ft").mkdir()
    (tmp_path / "plpcnet-s-g3-ft" / "status.json").write_text('{"step": 5170}')
    p = _retire(tmp_path, "r15g3", "plpcnet-s-g3-ft")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "plpcnet-s-g3-ft.before-r15g3" / "status.json").is_file()
    assert not (tmp_path / "plpcnet-s-g3-ft").exists()
    (tmp_path / "plpcnet-s-g2-ft").mkdir()  # an empty folder is no run
    assert _retire(tmp_path, "x", "plpcnet-s-g2-ft").returncode == 2


def test_retire_checks_every_run_before_moving_any(tmp_path):
    (tmp_path / "plpcnet-s-g0-ft").mkdir()
    (tmp_path / "plpcnet-s-g0-ft" / "last.pt").write_text("x")
    p = _retire(tmp_path, "refit", "plpcnet-s-g0-ft", "plpcnet-s-g9-ft")  # the second does not exist
    assert p.returncode == 2 and "no run" in p.stdout
    assert (tmp_path / "plpcnet-s-g0-ft" / "last.pt").is_file()
    for bad in (("", "plpcnet-s-g0-ft"), ("a.b", "plpcnet-s-g0-ft"), ("refit",)):
        assert _retire(tmp_path, *bad).returncode == 2


def test_carry_groups_needs_one_slice_count_per_group():
    for parts in ("1 3", "1 3 3 3 3"):
        p = subprocess.run(["bash", str(GPU_SH), "carry-groups", parts], capture_output=True, text=True)
        assert p.returncode == 2 and "4 slice counts" in p.stdout
