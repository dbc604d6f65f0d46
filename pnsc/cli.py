"""``pnsc`` entry point: each subcommand lives in its own module under ``pnsc.commands``.

A command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int`` returns the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands


class CommandError(Exception):
    """A user-facing failure: printed as ``pnsc: <message>`` with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pnsc", description="Personalized neural speech codec (1.6 kb/s)")
    parser.add_argument("--version", action="version", version=f"pnsc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


# Exceptions that mean "bad input or missing/broken models", by module: printed as one line with exit
# status 2. Looked up in sys.modules so the CLI does not import onnxruntime just to catch them.
USER_ERRORS = {
    "pnsc.shared.audio": ("AudioError",),
    "pnsc.shared.pnscfile": ("PnscFormatError",),
    "pnsc.shared.quantizer": ("CodebookError",),
    "pnsc.receiver.reference_decoder": ("DecoderNotFound", "DecoderError"),
}


def is_user_error(exc: BaseException) -> bool:
    """True for the failures a user can act on (reported in one line, exit status 2)."""
    if isinstance(exc, (CommandError, OSError)):
        return True
    for module, names in USER_ERRORS.items():
        mod = sys.modules.get(module)
        if mod is not None and isinstance(exc, tuple(getattr(mod, n) for n in names)):
            return True
    return False


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"pnsc: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
