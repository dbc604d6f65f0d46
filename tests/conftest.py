"""Shared fixtures: real LibriSpeech clips bundled with the project, synthetic voiced signals, and
access to the project's shared data folder (``../shared`` beside the checkout, or ``$PNSC_SHARED_DIR``).

Tests that need shared data call :func:`shared_files`. When the data is missing they skip with a
reason naming what is missing, unless ``PNSC_REQUIRE_SHARED=1`` (``.ci/run`` sets it on CI, where the
shared folder is always present): then they fail, so CI never silently skips them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SR = 16000
REQUIRE_SHARED_ENV = "PNSC_REQUIRE_SHARED"
LIBRISPEECH = "data/librispeech-excerpts"


def missing_shared(what: str) -> None:
    """Skip (or fail, with ``PNSC_REQUIRE_SHARED=1``) because shared data ``what`` is missing."""
    from pnsc.shared.paths import SHARED_ENV, shared_data_dir

    base = shared_data_dir()
    where = "none" if base is None else f"{base}{'' if base.is_dir() else ', which does not exist'}"
    msg = (f"needs shared data {what} (shared folder: {where}; it is ../shared beside the checkout "
           f"or ${SHARED_ENV})")
    if os.environ.get(REQUIRE_SHARED_ENV) == "1":
        pytest.fail(f"{msg}; {REQUIRE_SHARED_ENV}=1 forbids skipping", pytrace=False)
    pytest.skip(msg)


def shared_files(relative: str, pattern: str) -> list[Path]:
    """Sorted files matching ``pattern`` under ``relative`` in the shared data folder; at least one,
    else :func:`missing_shared`."""
    from pnsc.shared.paths import shared_data_dir

    base = shared_data_dir()
    files = sorted((base / relative).glob(pattern)) if base is not None else []
    if not files:
        missing_shared(f"{relative}/{pattern}")
    return files


def harmonic_vowel(f0: float, seconds: float = 1.0, formants=((700, 130), (1220, 70), (2600, 160))) -> np.ndarray:
    """Band-limited glottal-like harmonic source (1/k roll-off) through a cascade of formant resonators."""
    t = np.arange(int(SR * seconds)) / SR
    src = sum(np.cos(2 * np.pi * k * f0 * t) / k for k in range(1, int(7000 / f0) + 1))
    y = src
    for freq, bw in formants:
        r = np.exp(-np.pi * bw / SR)
        y = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], y)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="session")
def speech_clip() -> np.ndarray:
    """A few seconds of real speech from the bundled samples."""
    from pnsc.shared.audio import load_audio

    clips = sorted(SAMPLES.glob("*.flac"))
    if not clips:
        pytest.fail(f"no bundled speech under {SAMPLES}")
    return load_audio(clips[0], quiet=True)[: 4 * SR]


@pytest.fixture(scope="session")
def lpcnet_tiny_data(tmp_path_factory) -> Path:
    """Example shards for tiny CPU training runs: 8 speakers x 8 sequences of 2 frames (the 2,400-step
    recurrence of real data stays out of CI time), 2 shards, 2 groups (read only)."""
    from pnsc.training.lpcnet.synthetic import write_fixture

    d = tmp_path_factory.mktemp("lpcnet_tiny_data")
    write_fixture(d, speakers=8, per_speaker=8, shards=2, seed=0, n_groups=2, frames=2)
    return d


def fake_training_run(root: Path, name: str, with_optim: bool = True, *, done: bool = False, **ckpt_extra):
    """A train.py run folder with a tiny real model: last.pt (step 7, one validation at 2.5, plus
    ``ckpt_extra``), last-optim.pt (``with_optim``) and status.json; returns (model, optimizer)."""
    import json

    import torch

    run = root / name
    run.mkdir(parents=True)
    model = torch.nn.GRU(8, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 2, 8))[0].sum().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "step": 7, "epoch": 1, "batch_in_epoch": 3, "args": {"lr": 1e-3},
                "history": [{"kind": "epoch", "val_loss": 2.5}], **ckpt_extra}, run / "last.pt")
    if with_optim:
        torch.save({"optimizer": opt.state_dict(), "step": 7}, run / "last-optim.pt")
    (run / "status.json").write_text(json.dumps({"done": done, "step": 7}))
    return model, opt
