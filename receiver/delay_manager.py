"""Target playout delay from measured arrival jitter (in the spirit of WebRTC NetEq's DelayManager).

For every arriving packet the relative delay ``r = (arrival - seq * 40 ms) - min(...)`` is taken
against the fastest packet of the window (so clock offsets between the two ends cancel). The
target delay is a high percentile of ``r`` over the last ``window`` packets plus a small safety
margin; until one second of arrivals is measured, ``initial_ms`` is a floor (then the measurement
replaces the guess). It grows at once when the percentile rises (fast attack) and shrinks slowly
(``shrink_ms_per_s``), so a single spike does not make the buffer oscillate.

``extra_ms`` is added on top of the measured percentile: the receiver sets it to one packet interval while
redundant copies are worth waiting for (a lost packet's copy rides in the next message, which sees the same
jitter as any other, so recovering it needs the jitter target *plus* one packet, not instead of it).

``playout_delay(now, stream_pos)`` measures how late the playout runs behind the earliest
possible arrival of the sample being played; the receiver compares it with ``target_ms`` to decide
whether to stretch (insert frames in silence) or shrink (drop frames in silence).
"""
from __future__ import annotations

from collections import deque

import numpy as np

PACKET_S = 0.040
MEASURED = 25  # packets (1 s) of arrivals before the measurement replaces the initial guess


class DelayManager:
    def __init__(self, *, initial_ms: float = 40.0, min_ms: float = 0.0, max_ms: float = 1000.0,
                 quantile: float = 0.95, window: int = 125, margin_ms: float = 5.0,
                 shrink_ms_per_s: float = 20.0) -> None:
        self.initial_ms, self.min_ms, self.max_ms = initial_ms, min_ms, max_ms
        self.quantile, self.margin_ms, self.shrink_ms_per_s = quantile, margin_ms, shrink_ms_per_s
        self._win: deque[tuple[int, float]] = deque(maxlen=window)
        self.target_ms = float(np.clip(initial_ms, min_ms, max_ms))
        self._last_update: float | None = None
        self.jitter_ms = 0.0  # the percentile of relative delay (without margin)
        self.extra_ms = 0.0  # added to the measured percentile (one packet while waiting for redundant copies)

    def reset(self) -> None:
        self._win.clear()
        self.target_ms = float(np.clip(self.initial_ms, self.min_ms, self.max_ms))
        self._last_update = None
        self.jitter_ms = 0.0
        self.extra_ms = 0.0

    @property
    def base(self) -> float | None:
        """min over the window of (arrival - seq * 40 ms): the earliest-arrival clock of seq 0."""
        if not self._win:
            return None
        return min(a - s * PACKET_S for s, a in self._win)

    def on_arrival(self, seq: int, arrival: float) -> None:
        self._win.append((seq, arrival))
        base = self.base
        rel = np.array([a - s * PACKET_S - base for s, a in self._win]) * 1000.0
        self.jitter_ms = float(np.quantile(rel, self.quantile)) if len(rel) >= 4 else float(rel.max())
        want = float(np.clip(self.jitter_ms + self.margin_ms + self.extra_ms, self.min_ms, self.max_ms))
        measured = min(MEASURED, self._win.maxlen or MEASURED)
        if len(self._win) < measured:  # too few packets to measure: the initial guess is a floor
            want = max(want, float(np.clip(self.initial_ms, self.min_ms, self.max_ms)))
        if want >= self.target_ms or len(self._win) == measured:  # the first measurement replaces the guess
            self.target_ms = want
        elif self._last_update is not None:
            dt = max(0.0, arrival - self._last_update)
            self.target_ms = max(want, self.target_ms - self.shrink_ms_per_s * dt)
        self._last_update = arrival

    def playout_delay_ms(self, now: float, stream_pos_s: float) -> float | None:
        """How far (ms) the playout of stream time ``stream_pos_s`` (seq * 40 ms + frame offset)
        runs behind that packet's earliest possible arrival."""
        base = self.base
        if base is None:
            return None
        return (now - base - stream_pos_s) * 1000.0
