"""Which streaming decoder the receiver runs: names of the generic and personalized decoders of one
size, and opening them (all decoders of the size loaded up front, so group switches are instant)."""
from __future__ import annotations

from pnsc.shared.constants import GROUP_UNKNOWN, NUM_GROUPS

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


def open_decoder(size: str, *, seed: int = 0, models_dir=None, precision: str | None = None, preload: bool = True):
    """A ``StreamingDecoder`` on the generic decoder of ``size``, with every decoder of that size loaded."""
    if size not in SIZES:
        raise ValueError(f"decoder size must be one of {SIZES}, got {size!r}")
    try:
        from pnsc.receiver.runtime import StreamingDecoder  # the real-time C runtime
    except ImportError:  # pragma: no cover - until the runtime branch is merged
        from pnsc.receiver._interim_decoder import StreamingDecoder
    kw = {"seed": seed, "models_dir": models_dir}
    if precision is not None:
        kw["precision"] = precision
    dec = StreamingDecoder(baseline_family(size), None, **kw)
    if preload:
        for g in range(NUM_GROUPS):
            dec.switch(personalized_family(size), g)
        dec.switch(baseline_family(size), None)
        dec.reset()
    return dec
