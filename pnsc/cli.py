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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from pnsc.shared.audio import AudioError
    from pnsc.shared.pnscfile import PnscFormatError
    from pnsc.shared.quantizer import CodebookError

    try:
        return int(args.func(args) or 0)
    except (CommandError, AudioError, FileNotFoundError, PnscFormatError, CodebookError) as exc:
        print(f"pnsc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
