"""Subcommands of ``pnsc``; one module each, discovered by ``pnsc.cli``."""
