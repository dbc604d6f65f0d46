"""Where a run folder's weights are: ``best.pt`` (the best validation), else ``last.pt``.

Torch-free on purpose: the launcher (:mod:`.multi`) resolves starts and teachers without loading anything.
"""
from __future__ import annotations

from pathlib import Path


def run_checkpoint(run: Path) -> Path | None:
    """The checkpoint a run starts others from or ships: ``best.pt``, else ``last.pt``; None without either."""
    for f in ("best.pt", "last.pt"):
        if (run / f).is_file():
            return run / f
    return None
