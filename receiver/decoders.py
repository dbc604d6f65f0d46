"""Which streaming decoder the receiver runs: names of the generic and personalized decoders of one
size, and opening them (all decoders of the size loaded up front, so group switches are instant)."""
from __future__ import annotations

from pnsc.shared.constants import GROUP_UNKNOWN

SIZES = ("s", "l")


def baseline_family(size: str) -> str:
    return f"lpcnet-bl-{size}"


def personalized_family(size: str) -> str:
    return f"plpcnet-{size}"


def choose(size: str, personalized: bool, group: int | None) -> tuple[str, int | None]:
    """(family, group) to decode with: the generic decoder until a group is known or when asked."""
    if not personalized or group is None or group == GROUP_UNKNOWN:
        return baseline_family(size), None
    return personalized_family(size), int(group)


def open_decoder(size: str, *, seed: int = 0, models_dir=None, precision: str | None = None, kernel: str | None = None,
                 postfilter: tuple[float, float, float] | None = None):
    """A runtime ``StreamingDecoder`` on the generic decoder of ``size``, drawing from a
    ``DecoderBank`` that loaded every decoder of that size up front (instant group switches).
    ``postfilter``: None (default, the plain output) or a formant postfilter spec ``(g_n, g_d, mu)``."""
    from pnsc.receiver.runtime import DecoderBank

    if size not in SIZES:
        raise ValueError(f"decoder size must be one of {SIZES}, got {size!r}")
    kw = {"models_dir": models_dir, "kernel": kernel, "postfilter": postfilter}
    if precision is not None:
        kw["precision"] = precision
    bank = DecoderBank(size, **kw)
    return bank.get(baseline_family(size), None, seed=seed)
