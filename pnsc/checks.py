"""Checks the commands run before doing any work, so bad arguments fail at once with one line."""
from __future__ import annotations

import os
from pathlib import Path

from .cli import CommandError

AUDIO_OUTPUT_SUFFIXES = (".wav", ".flac")  # 16-bit PCM, format from the extension


def check_output_path(path: str | Path, suffixes: tuple[str, ...] | None = None, what: str = "output") -> Path:
    """The output file's folder must exist and be writable, the path must not be a folder, and
    (when ``suffixes`` is given) its extension must be one of them."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"{what} {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"cannot write {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CommandError(f"cannot write {what} {path}: folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise CommandError(f"cannot write {what} {path}: the file is not writable")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise CommandError(f"cannot tell the format of {what} {path} from its extension: "
                           f"use one of {', '.join(suffixes)}")
    return path
