"""Command-line values of the receiver's optional stages: ``off`` or three comma-separated numbers."""
from __future__ import annotations


def parse_off_or_triple(spec: str, what: str, form: str, example: str) -> tuple[float, float, float] | None:
    """``"off"`` / ``"none"`` / ``""`` -> None; ``"A,B,C"`` -> three floats (unchecked: the stage checks its own);
    ValueError ``<what> must be 'off' or <form> (e.g. <example>), got ...`` otherwise."""
    if spec.strip().lower() in ("off", "none", ""):
        return None
    try:
        a, b, c = (float(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(f"{what} must be 'off' or {form} (e.g. {example}), got {spec!r}") from None
    return a, b, c
