"""Each codec constant has one home, ``pnsc.shared.constants``: no module defines its own copy."""
from __future__ import annotations

import re

import pytest

from pnsc.shared import constants
from tests.conftest import REPO

NAMES = [n for n in vars(constants) if n.isupper()]
# training/lpcnet/model.py still defines FRAME_SIZE, LPC_ORDER, CORR_INDEX, PERIOD_INDEX, FEATURE_DIM (the
# GPU training code was being changed elsewhere); until it imports them, its values must at least agree.
KNOWN_COPIES = {"training/lpcnet/model.py"}


def test_no_module_redefines_a_codec_constant():
    pattern = re.compile(rf"^({'|'.join(NAMES)})\s*(:[^=]+)?=", re.M)
    copies = {}
    for folder in ("pnsc", "shared", "sender", "receiver", "training", "scripts"):
        for f in sorted((REPO / folder).rglob("*.py")):
            rel = str(f.relative_to(REPO))
            if rel == "shared/constants.py" or rel in KNOWN_COPIES:
                continue
            found = pattern.findall(f.read_text())
            if found:
                copies[rel] = sorted({m[0] for m in found})
    assert copies == {}


def test_known_copies_agree_with_the_constants():
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    from pnsc.training.lpcnet import model

    for name in NAMES:
        if hasattr(model, name):
            assert getattr(model, name) == getattr(constants, name), name
