"""Where the shipped models live."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    """``$PNSC_MODELS_DIR`` if set, else the repository's ``models/`` folder."""
    env = os.environ.get("PNSC_MODELS_DIR")
    return Path(env) if env else REPO_ROOT / "models"
