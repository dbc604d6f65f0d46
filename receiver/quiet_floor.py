"""An energy-dependent sampling floor: a larger ``pdf_floor`` in quiet frames (experimental, off by default).

The decoders sample each excitation value from ``max(softmax(boost * logits) - pdf_floor, 0)`` renormalised
(``pnsc.receiver.sampling``).  In silent frames the sampled excitation is pure hiss; a larger floor there
collapses the draws towards the most probable level.  :class:`QuietFloor` maps a frame's (dequantized)
features to its floor from the frame energy, the first cepstral coefficient ``c0`` (feature index 0)::

    floor = base                          if c0 >= loud_c0
    floor = quiet_floor                   if c0 <= quiet_c0
    floor = linear in c0 between them     otherwise

:func:`decode_with_floor` decodes a feature sequence with a ``StreamingDecoder`` whose ``pdf_floor`` is set
per frame.  Nothing in the runtime uses this by default; ``scripts/tune_quiet_floor.py`` measures it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pnsc.receiver.sampling import check_pdf_floor
from pnsc.shared.constants import FEATURE_DIM, PDF_FLOOR

C0_INDEX = 0  # the frame energy: the first cepstral coefficient of the feature layout (NB_CEPS cepstra first)


@dataclass(frozen=True)
class QuietFloor:
    """Per-frame sampling floor from the frame energy ``c0`` (see the module docstring).

    ``base`` and ``quiet_floor`` must lie in [0, 1/256); ``quiet_c0 < loud_c0`` (finite)."""

    quiet_floor: float
    quiet_c0: float
    loud_c0: float
    base: float = PDF_FLOOR

    def __post_init__(self) -> None:
        for name in ("base", "quiet_floor"):
            try:
                check_pdf_floor(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        for name in ("quiet_c0", "loud_c0"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not self.quiet_c0 < self.loud_c0:
            raise ValueError(f"thresholds must be ordered quiet_c0 < loud_c0, got {self.quiet_c0} >= {self.loud_c0}")

    def floor_of_c0(self, c0: float | np.ndarray) -> np.ndarray:
        """Floor(s) for energy value(s) ``c0`` (float64 array of ``c0``'s shape)."""
        x = np.asarray(c0, np.float64)
        t = np.clip((x - self.quiet_c0) / (self.loud_c0 - self.quiet_c0), 0.0, 1.0)
        return self.quiet_floor + t * (self.base - self.quiet_floor)

    def floors(self, features: np.ndarray) -> np.ndarray:
        """(T, 20) feature frames (or one (20,) frame) -> (T,) (or scalar-shaped) floors."""
        f = np.asarray(features, np.float32)
        if f.shape[-1:] != (FEATURE_DIM,) or f.ndim not in (1, 2):
            raise ValueError(f"features must be ({FEATURE_DIM},) or (T, {FEATURE_DIM}), got {f.shape}")
        return self.floor_of_c0(f[..., C0_INDEX])

    def __call__(self, frame: np.ndarray) -> float:
        """One (20,) frame -> its floor (a valid ``StreamingDecoder.pdf_floor``)."""
        return float(self.floors(np.asarray(frame).reshape(-1)))


def parse_quiet_floor(spec: str) -> tuple[float, float, float] | None:
    """``"off"`` -> None; ``"FLOOR,QUIET_C0,LOUD_C0"`` (e.g. ``"0.002,-2,1.5"``) -> the checked triple."""
    from pnsc.receiver.specs import parse_off_or_triple

    triple = parse_off_or_triple(spec, "quiet floor", "FLOOR,QUIET_C0,LOUD_C0", "0.002,-2,1.5")
    if triple is not None:
        QuietFloor(*triple)  # checks the values
    return triple


def decode_with_floor(dec, features: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """Decode (T, 20) ``features`` with ``dec`` (a ``StreamingDecoder``), frame ``t`` sampled with ``floors[t]``;
    int16 (T*160,) like ``dec.decode`` (push every frame, then flush).

    Timing: ``push`` of frame ``k`` synthesizes frame ``k - CONTEXT`` (the centre of the 2*CONTEXT+1 frame
    window; ``CONTEXT`` = ``dec.lookahead_frames`` = 2 lookahead frames), and the first CONTEXT pushes only fill
    the window.  The floor is read when a frame is synthesized, so ``dec.pdf_floor`` is set to
    ``floors[k - CONTEXT]`` just before pushing frame ``k``.  ``flush`` synthesizes the last CONTEXT frames in
    one call, so they share one floor: the smaller of theirs (the louder frame's, the conservative choice).
    The decoder's ``pdf_floor`` is restored afterwards.
    """
    feats = np.asarray(features, np.float32)
    fl = np.asarray(floors, np.float64).reshape(-1)
    if feats.ndim != 2 or feats.shape[1] != FEATURE_DIM:
        raise ValueError(f"features must be (T, {FEATURE_DIM}), got {feats.shape}")
    if fl.shape != (len(feats),):
        raise ValueError(f"need one floor per frame ({len(feats)}), got {fl.shape[0]}")
    ctx = int(dec.lookahead_frames)
    saved = dec.pdf_floor
    out = []
    try:
        for k, f in enumerate(feats):
            if k >= ctx:
                dec.pdf_floor = fl[k - ctx]
            out.append(dec.push(f))
        tail = fl[max(0, len(fl) - ctx):]
        if tail.size:
            dec.pdf_floor = float(tail.min())
        out.append(dec.flush())
    finally:
        dec.pdf_floor = saved
    return np.concatenate(out)
