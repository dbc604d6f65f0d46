"""Errors of the evaluation tools (all user-facing, one line)."""
from __future__ import annotations


class EvalError(Exception):
    """An evaluation input or step is unusable (message printed as ``pnsc: error: ...``)."""


class MissingToolError(EvalError):
    """A scoring package or codec program is not installed; the message names what to install."""


def require_module(module: str, package: str, what: str):
    """Import ``module`` or raise :class:`MissingToolError` naming the PyPI ``package`` to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingToolError(
            f"{what} needs the Python package '{package}' ({exc}); install the eval extra: "
            f"pip install 'pnsc[eval]'") from None


def require_program(program: str, debian_package: str) -> str:
    """Path of ``program`` or :class:`MissingToolError` naming the Debian package that provides it."""
    import shutil

    path = shutil.which(program)
    if path is None:
        raise MissingToolError(f"program '{program}' not found: install the Debian package {debian_package} "
                               f"(apt-get install {debian_package})")
    return path
