"""Where one training step's time goes, phase by phase, for the step records of ``log.jsonl``.

Training steps in three runs per GPU take 0.28-0.31 s where the benchmark of the same step takes 0.17-0.21 s
(README, Known problems). A logged step is split at fixed points (``mark``). Each phase gets the host's wall time
and, on a GPU, the device time between the same points (CUDA events, read after the step's own sync, so timing
adds no sync of its own). Steps that are not logged are not timed: ``StepPhases(on=False)`` does nothing.
"""
from __future__ import annotations

import time

import torch


class StepPhases:
    """Marks along one step; ``result()`` gives ``{phase: {"host_ms": .., "gpu_ms": ..}}`` in mark order."""

    def __init__(self, device: torch.device, on: bool = True) -> None:
        self.on = on
        self.cuda = on and device.type == "cuda"
        self._marks: list[tuple[str, float, torch.cuda.Event | None]] = []

    def start(self, at: float | None = None) -> None:
        """Begin at host time ``at`` (``time.monotonic()``; default now). A start in the past, such as the end of
        the previous step, times the first phase on the host only: no device event exists for it."""
        if self.on:
            self._marks = [("start", time.monotonic() if at is None else at, None)]

    def mark(self, phase: str) -> None:
        """End the phase ``phase`` here."""
        if not self.on:
            return
        event = None
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
        self._marks.append((phase, time.monotonic(), event))

    def result(self) -> dict[str, dict[str, float]]:
        """The phases' times in milliseconds; empty when off or never started."""
        if not self.on or len(self._marks) < 2:
            return {}
        last = self._marks[-1][2]
        if last is not None:
            last.synchronize()
        out = {}
        for (_, t0, e0), (phase, t1, e1) in zip(self._marks, self._marks[1:]):
            rec = {"host_ms": round((t1 - t0) * 1000.0, 3)}
            if e0 is not None and e1 is not None:
                rec["gpu_ms"] = round(e0.elapsed_time(e1), 3)
            out[phase] = rec
        return out
