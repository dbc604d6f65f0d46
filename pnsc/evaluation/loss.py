"""Packet loss: seeded loss patterns and quality-versus-loss curves.

Patterns are per 40 ms packet: independent (random) loss, or bursty loss from a two-state
Gilbert-Elliott chain whose long-run loss rate is ``rate`` and whose mean run of consecutive
losses is ``burst`` packets.  Opus is measured with the same time pattern (both of its 20 ms
packets in a lost 40 ms slot are lost) through libopus' own concealment.  pnsc is measured through
the real receiver path (jitter buffer, concealment, redundancy) when that path is available in
this checkout (:func:`receiver_path_available`); without it no pnsc loss curve is produced.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLOT_S = 0.04  # one pnsc packet


@dataclass(frozen=True)
class LossCondition:
    rate: float  # long-run loss rate 0..1
    burst: float  # mean burst length in packets; <= 1: independent loss
    seed: int = 0

    @property
    def kind(self) -> str:
        return "bursty" if self.burst > 1 else "random"


def loss_mask(n: int, cond: LossCondition) -> np.ndarray:
    """Boolean mask of lost 40 ms packets (True = lost), reproducible for a seed."""
    rng = np.random.default_rng(cond.seed)
    p = float(cond.rate)
    if n <= 0 or p <= 0:
        return np.zeros(max(n, 0), bool)
    if cond.burst <= 1:
        return rng.random(n) < p
    # Gilbert-Elliott: bad state loses everything; P(bad->good) = 1/burst; stationary P(bad) = p.
    q = 1.0 / cond.burst
    r = q * p / (1.0 - p) if p < 1 else 1.0
    out = np.zeros(n, bool)
    bad = rng.random() < p
    u = rng.random(n)
    for i in range(n):
        out[i] = bad
        bad = (u[i] >= q) if bad else (u[i] < r)
    return out


def expand_mask(mask: np.ndarray, n_packets: int, packet_s: float) -> np.ndarray:
    """Map a 40 ms slot mask onto packets of ``packet_s`` seconds (a packet is lost if its slot is)."""
    t = (np.arange(n_packets) * packet_s / SLOT_S).astype(int)
    t = np.minimum(t, len(mask) - 1) if len(mask) else t
    return mask[t] if len(mask) else np.zeros(n_packets, bool)


def receiver_path_available() -> tuple[bool, str]:
    """Whether the in-process receiver (jitter buffer + concealment + redundancy) is in this checkout."""
    try:
        from pnsc.receiver import concealment, jitter_buffer  # noqa: F401
        from pnsc.receiver.offline import decode_events  # noqa: F401
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""
