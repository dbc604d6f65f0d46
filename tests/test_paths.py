"""Where models and shared data are found: the source tree, the environment overrides."""
from __future__ import annotations

from pathlib import Path

from pnsc.shared import paths
from tests.conftest import REPO


def test_source_tree_locations(monkeypatch):
    monkeypatch.delenv(paths.SHARED_ENV, raising=False)
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    assert paths.repo_root() == REPO
    assert paths.models_dir() == REPO / "models" and (paths.models_dir() / "manifest.json").is_file()
    assert paths.shared_data_dir() == REPO.parent / "shared"  # beside the checkout, never an absolute path
    assert paths.shared_path(paths.LIBRISPEECH_EXCERPTS) == REPO.parent / "shared" / "data" / "librispeech-excerpts"


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path / "s"))
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "m"))
    assert paths.shared_data_dir() == tmp_path / "s"
    assert paths.shared_path("data/x") == tmp_path / "s" / "data" / "x"
    assert paths.models_dir() == tmp_path / "m"


def test_no_code_uses_an_absolute_shared_path():
    """Neither the shared folder nor the development checkout by this machine's absolute paths (scripts once
    defaulted to /work/main/...): both are found relative to the repository root."""
    offenders = []
    for folder in ("pnsc", "shared", "sender", "receiver", "training", "scripts", "tests"):
        for f in [*(REPO / folder).rglob("*.py"), *(REPO / folder).rglob("*.sh")]:
            text = f.read_text(errors="replace")
            if any(p in text for p in ("/work/shared", "/work/main")) and f != Path(__file__).resolve():
                offenders.append(str(f.relative_to(REPO)))
    assert offenders == []
