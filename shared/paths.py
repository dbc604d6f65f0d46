"""Where the shipped models and the project's shared data live.

- Models: ``$PNSC_MODELS_DIR`` if set, else the shipped ``models/`` folder (the repository's
  ``models/`` in a source tree, ``pnsc/models`` inside an installed wheel).
- Shared data (reference docs, LibriSpeech excerpts; not shipped): ``$PNSC_SHARED_DIR`` if set,
  else the folder ``shared`` beside the repository checkout (``<repo>/../shared``).
"""
from __future__ import annotations

import os
from pathlib import Path

# Source tree: <repo>/shared/paths.py -> <repo>; wheel: <site>/pnsc/shared/paths.py -> <site>/pnsc.
# Either way the models folder is ``<that>/models``.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

SHARED_ENV = "PNSC_SHARED_DIR"
MODELS_ENV = "PNSC_MODELS_DIR"


def models_dir() -> Path:
    """``$PNSC_MODELS_DIR`` if set, else the shipped ``models/`` folder."""
    env = os.environ.get(MODELS_ENV)
    return Path(env) if env else PACKAGE_ROOT / "models"


def repo_root() -> Path | None:
    """The repository checkout this code runs from, or ``None`` in an installed wheel."""
    if (PACKAGE_ROOT / "pnsc" / "__init__.py").is_file() and (PACKAGE_ROOT / "shared" / "paths.py").is_file():
        return PACKAGE_ROOT
    return None


LIBRISPEECH_EXCERPTS = Path("data") / "librispeech-excerpts"


def shared_data_dir() -> Path | None:
    """``$PNSC_SHARED_DIR`` if set, else ``<repo>/../shared`` (which may not exist: check
    ``.is_dir()``); ``None`` in an installed wheel without the variable."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env)
    root = repo_root()
    return None if root is None else root.parent / "shared"


def shared_path(relative: str | Path) -> Path:
    """``shared_data_dir() / relative`` (e.g. ``LIBRISPEECH_EXCERPTS``), whether it exists or not."""
    base = shared_data_dir()
    if base is None:
        raise FileNotFoundError(f"no shared data folder: set {SHARED_ENV} (needed for {relative})")
    return base / relative
