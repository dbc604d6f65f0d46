"""Where the shipped models live."""
from __future__ import annotations

import os
from pathlib import Path

# Source tree: <repo>/shared/paths.py -> <repo>; wheel: <site>/pnsc/shared/paths.py -> <site>/pnsc.
# Either way the models folder is ``<that>/models``.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_ROOT


def models_dir() -> Path:
    """``$PNSC_MODELS_DIR`` if set, else the shipped ``models/`` folder."""
    env = os.environ.get("PNSC_MODELS_DIR")
    return Path(env) if env else PACKAGE_ROOT / "models"
