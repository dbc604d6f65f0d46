"""Packaging: a wheel built from this tree holds everything under ``pnsc`` (no generic top-level
packages) with the models as package data, installs into a fresh venv (no system site packages,
runtime dependencies from the package index) and its ``pnsc`` encodes and decodes outside the
repository. About 15-60 s (pip reuses its cache); marked slow, run on CI like every test."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, SAMPLES

pytestmark = pytest.mark.slow

SOURCES = ("pyproject.toml", "setup.py", "README.md", "pnsc", "shared", "sender", "receiver", "training", "models")
GENERIC = ("shared", "sender", "receiver", "training", "models")


def _run(cmd: list[str], cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _clean_env() -> dict:
    drop = {"PYTHONPATH", "PNSC_MODELS_DIR", "PNSC_SHARED_DIR", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a copy of the tree (the build never writes into the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=ignore)
        else:
            shutil.copy2(p, src / name)
    # isolated build, as a user's pip does: the build backend comes from the index (pip's cache)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)],
         cwd=tmp, env=_clean_env())
    wheels = sorted((tmp / "dist").glob("pnsc-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A plain venv (no system site packages) with the wheel and its runtime dependencies; removed
    afterwards (a few hundred MB)."""
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", str(env_dir)], cwd=env_dir.parent, env=_clean_env())
    cfg = (env_dir / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
         cwd=env_dir.parent, env=_clean_env())
    yield env_dir
    shutil.rmtree(env_dir, ignore_errors=True)


def test_wheel_ships_only_pnsc_and_the_models(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"pnsc"}, top
    for generic in GENERIC:
        assert generic not in top
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())["models"]
    needed = {"pnsc/models/manifest.json", "pnsc/models/codebooks-v1.npz", "pnsc/models/speaker_encoder.onnx",
              "pnsc/models/speaker_groups.json", "pnsc/shared/features.py", "pnsc/sender/speaker_classifier.py",
              "pnsc/receiver/reference_decoder.py", "pnsc/training/__init__.py", "pnsc/commands/encode.py"}
    for m in manifest:
        if m.get("kind") == "decoder":
            needed |= {f"pnsc/models/{f}" for f in m["files"].values()}
    assert len([m for m in manifest if m.get("kind") == "decoder"]) == 10  # 2 generic + 2 sizes x 4 groups
    assert needed - set(names) == set()
    for top_level in (n for n in names if n.endswith(".dist-info/top_level.txt")):
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["pnsc"]


def test_installed_pnsc_encodes_and_decodes_outside_the_repo(venv, tmp_path):
    bin_dir = venv / "bin"
    env = _clean_env()
    work = tmp_path / "user"
    work.mkdir()
    probe = _run([str(bin_dir / "python"), "-c",
                  "import importlib.util, json, pnsc, pnsc.shared.paths as p; "
                  "print(json.dumps({'pnsc': pnsc.__file__, 'models': str(p.models_dir()), "
                  "'repo': str(p.repo_root()), 'generic': [n for n in %r if importlib.util.find_spec(n)]}))"
                  % (GENERIC,)], cwd=work, env=env)
    info = json.loads(probe.stdout)
    site = Path(info["pnsc"]).parent.parent
    assert venv.resolve() in Path(info["pnsc"]).resolve().parents, info  # the installed copy, not the checkout
    assert Path(info["models"]) == site / "pnsc" / "models" and info["repo"] == "None"
    assert info["generic"] == []
    assert _run([str(bin_dir / "pnsc"), "--version"], cwd=work, env=env).stdout.strip().startswith("pnsc ")

    from pnsc.shared.audio import load_audio

    x = load_audio(SAMPLES / "1688-142285-0006.flac", quiet=True)[16000:16000 + 17000]  # 1.06 s
    sf.write(work / "in.wav", x, 16000, subtype="PCM_16")
    enc = _run([str(bin_dir / "pnsc"), "encode", "in.wav", "in.pnsc"], cwd=work, env=env)
    assert "talker classified into group" in enc.stderr
    dec = _run([str(bin_dir / "pnsc"), "decode", "in.pnsc", "out.wav"], cwd=work, env=env)
    assert "17000 samples" in dec.stderr and "with plpcnet-s-g" in dec.stderr, dec.stderr
    y, rate = sf.read(work / "out.wav", dtype="float32")
    assert rate == 16000 and len(y) == 17000 and np.isfinite(y).all() and np.abs(y).max() > 0.01
