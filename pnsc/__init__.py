"""pnsc: personalized neural speech codec.

The repository keeps the codec's parts in top-level folders (``shared/``, ``sender/``, ``receiver/``,
``training/``, ``models/``); they are imported as ``pnsc.shared`` and so on. An installed wheel holds
them inside this package; in a source tree (editable install, or ``python -m`` from the checkout)
the repository root is added to this package's search path so the same names resolve there.
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.2.0"

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
if (_SOURCE_ROOT / "shared" / "features.py").is_file() and not (Path(__file__).parent / "shared").is_dir():
    __path__.append(str(_SOURCE_ROOT))  # type: ignore[name-defined]  # noqa: F821
