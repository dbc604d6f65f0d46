"""Where received audio goes: a sound device, a WAV file written in real time, or (drain mode) a WAV
file written as fast as packets come; plus a periodic JSON stats writer.

- :class:`DevicePlayback`: sounddevice output stream whose callback pulls 10 ms frames from the
  core (underflows counted in ``core.stats.underruns``, never raised).
- :class:`ClockedPuller`: the wall-clock playout thread (a 10 ms frame every 10 ms) without a device.
- :class:`RealtimeWavPlayback`: a :class:`ClockedPuller` that appends each frame to the WAV file
  (flushed as it goes).
- :class:`DrainWavWriter`: for ``mode="drain"``; ``write_available()`` after each message,
  ``close()`` conceals what is missing at the end and flushes the decoder.
- :class:`StatsWriter`: writes ``stats_fn()`` as JSON to a file every ``period`` s (atomic replace).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from pnsc.shared.constants import FRAME_SIZE, SAMPLE_RATE

from .core import ReceiverCore


class _Wav:
    def __init__(self, path: str | Path):
        import soundfile as sf

        self.f = sf.SoundFile(str(path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16")
        self.samples = 0

    def write(self, pcm: np.ndarray) -> None:
        if len(pcm):
            self.f.write(np.asarray(pcm, np.int16))
            self.samples += len(pcm)

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class ClockedPuller:
    """A thread that pulls a 10 ms frame from ``source.pull(now)`` every 10 ms of wall time and hands it
    to ``on_frame``. A stall of more than 200 ms is counted in ``late_ticks`` (and reported to
    ``on_stall``) and the clock restarts from now instead of catching up in a burst."""

    def __init__(self, source, on_frame=None, on_stall=None, name: str = "pnsc-playout"):
        self.source, self.on_frame, self.on_stall = source, on_frame, on_stall
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.late_ticks = 0

    def start(self) -> "ClockedPuller":
        self._thread.start()
        return self

    def _run(self) -> None:
        period = FRAME_SIZE / SAMPLE_RATE
        t_next = time.monotonic()
        while not self._stop.is_set():
            pcm = self.source.pull(time.time())
            if self.on_frame is not None:
                self.on_frame(pcm)
            t_next += period
            wait = t_next - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            elif wait < -0.2:  # fell far behind (machine stalled): do not try to catch up in a burst
                self.late_ticks += 1
                if self.on_stall is not None:
                    self.on_stall()
                t_next = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


class RealtimeWavPlayback:
    def __init__(self, core: ReceiverCore, path: str | Path):
        self.core, self.wav = core, _Wav(path)
        self._frames = 0
        self._clock = ClockedPuller(core, self._write, name="pnsc-wav-playback")

    @property
    def late_ticks(self) -> int:
        return self._clock.late_ticks

    def start(self) -> "RealtimeWavPlayback":
        self._clock.start()
        return self

    def _write(self, pcm: np.ndarray) -> None:
        self.wav.write(pcm)
        self._frames += 1
        if self._frames % 50 == 0:
            self.wav.flush()

    def close(self) -> None:
        self._clock.close()
        self.wav.close()


class DrainWavWriter:
    def __init__(self, core: ReceiverCore, path: str | Path):
        if core.config.mode != "drain":
            raise ValueError("DrainWavWriter needs a drain-mode receiver")
        self.core, self.wav = core, _Wav(path)

    def write_available(self) -> None:
        self.wav.write(self.core.drain())

    def close(self) -> None:
        self.wav.write(self.core.finish())
        self.wav.close()


class DevicePlayback:
    def __init__(self, core: ReceiverCore, device=None):
        import sounddevice as sd

        self.core = core
        sd.check_output_settings(device=device, samplerate=SAMPLE_RATE, channels=1, dtype="int16")
        self.stream = sd.OutputStream(device=device, samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                                      blocksize=FRAME_SIZE, latency="low", callback=self._callback)

    def _callback(self, outdata, frames, tinfo, status) -> None:  # audio thread: never raise
        try:
            if status.output_underflow:
                self.core.stats.underruns += 1
            out = np.zeros(frames, np.int16)
            n = 0
            while n < frames:
                pcm = self.core.pull(time.time())
                k = min(len(pcm), frames - n)
                out[n:n + k] = pcm[:k]
                n += k
            outdata[:, 0] = out
        except Exception:  # noqa: BLE001 - the audio callback must not die
            outdata.fill(0)
            self.core.stats.underruns += 1

    def start(self) -> "DevicePlayback":
        self.stream.start()
        self.core.config.output_latency_ms = float(self.stream.latency) * 1000.0
        return self

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


class StatsWriter:
    def __init__(self, path: str | Path, stats_fn, period: float = 1.0):
        self.path, self.stats_fn, self.period = Path(path), stats_fn, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pnsc-stats", daemon=True)

    def start(self) -> "StatsWriter":
        self._thread.start()
        return self

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"time": time.time(), **self.stats_fn()}, default=str, indent=1))
        os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.write()
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        try:
            self.write()
        except OSError:
            pass
