"""scripts/gpu.sh commit-state and reopen: what the committed training state keeps, and runs that train on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.conftest import fake_training_run  # noqa: E402

GPU_SH = Path(__file__).resolve().parent.parent / "scripts" / "gpu.sh"


def _gpu(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PY": sys.executable, **env}
    return subprocess.run(["bash", str(GPU_SH), *args], capture_output=True, text=True, env=full, timeout=300)


def _members(tar: Path) -> list[str]:
    with tarfile.open(tar) as t:
        return t.getnames()


def test_commit_state_keeps_moments_only_of_the_runs_named(tmp_path):
    for name in ("lpcnet-bl-s", "plpcnet-s-g0-ft"):
        fake_training_run(tmp_path / "runs", name)
    p = _gpu("commit-state", str(tmp_path / "runs"), STATE_OUT=str(tmp_path / "state"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "lpcnet-bl-s/last.pt" in _members(tmp_path / "state" / "lpcnet-bl-s.tar")
    assert not any(m.endswith("last-optim.pt") for m in _members(tmp_path / "state" / "lpcnet-bl-s.tar"))
    p = _gpu("commit-state", str(tmp_path / "runs"), STATE_OUT=str(tmp_path / "state2"), OPTIM_RUNS="lpcnet-bl-s")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "lpcnet-bl-s/last-optim.pt" in _members(tmp_path / "state2" / "lpcnet-bl-s.tar")
    assert "plpcnet-s-g0-ft/last-optim.pt" not in _members(tmp_path / "state2" / "plpcnet-s-g0-ft.tar")


def test_reopen_clears_done_and_patience_and_refuses_an_unfinished_run(tmp_path):
    fake_training_run(tmp_path, "plpcnet-s-g3-ft", done=True, since_best=30, best_val=2.5)
    fake_training_run(tmp_path, "plpcnet-s-g0-ft")
    p = _gpu("reopen", str(tmp_path), "plpcnet-s-g3-ft")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "patience count 30 -> 0" in p.stdout
    assert not json.loads((tmp_path / "plpcnet-s-g3-ft" / "status.json").read_text())["done"]
    ck = torch.load(tmp_path / "plpcnet-s-g3-ft" / "last.pt", weights_only=False)
    assert ck["since_best"] == 0 and ck["best_val"] == 2.5 and ck["step"] == 7  # only patience changes
    p = _gpu("reopen", str(tmp_path), "plpcnet-s-g0-ft")
    assert p.returncode == 2 and "not finished" in p.stderr
    # every run is checked before any is changed: a refusal leaves the finished one of the batch finished
    fake_training_run(tmp_path, "plpcnet-l-g3-ft", done=True, since_best=30)
    p = _gpu("reopen", str(tmp_path), "plpcnet-l-g3-ft", "plpcnet-s-g0-ft")
    assert p.returncode == 2 and "not finished" in p.stderr
    assert json.loads((tmp_path / "plpcnet-l-g3-ft" / "status.json").read_text())["done"]
    p = _gpu("reopen", str(tmp_path), "nosuchrun")
    assert p.returncode == 2 and "no last.pt" in p.stderr
