"""Audio sources for the sender: a file paced in real time (or as fast as possible), or a sound device.

Each source is an async iterator of ``(pcm float32 16 kHz mono, capture_time)`` where
``capture_time`` is the ``time.time()`` of the chunk's first sample. ``FileSource(pace=False)``
gives virtual capture times (``start + offset``) so timestamps stay meaningful in fast tests.
"""
from __future__ import annotations

import asyncio
import time
from math import gcd
from pathlib import Path

import numpy as np

from pnsc.shared.constants import SAMPLE_RATE

BLOCK = 160  # 10 ms capture blocks


class FileSource:
    def __init__(self, path: str | Path | None = None, *, pcm: np.ndarray | None = None, pace: bool = True,
                 block: int = BLOCK, loop: bool = False, start: float | None = None):
        if pcm is None:
            from pnsc.shared.audio import load_audio

            pcm = load_audio(path)
        self.pcm = np.asarray(pcm, np.float32)
        self.pace, self.block, self.loop = pace, block, loop
        self.start = start
        self.done = False

    async def __aiter__(self):
        t0 = time.time() if self.start is None else self.start
        n = 0
        while True:
            for i in range(0, len(self.pcm), self.block):
                chunk = self.pcm[i:i + self.block]
                t_first = t0 + n / SAMPLE_RATE
                n += len(chunk)
                if self.pace:
                    delay = t0 + n / SAMPLE_RATE - time.time()  # a chunk exists once its last sample is in
                    if delay > 0:
                        await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)
                yield chunk, t_first
            if not self.loop:
                break
        self.done = True


class StreamingResampler:
    """Polyphase resampling of a stream (device rate -> 16 kHz) carrying the FIR history between
    blocks, so chunked output equals resampling the whole signal."""

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE, taps_per_phase: int = 24):
        from scipy.signal import firwin

        g = gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g
        self.h = firwin(taps_per_phase * self.up, 0.95 / max(self.up, self.down)) * self.up
        self._keep = -(-len(self.h) // self.up)
        self._hist = np.zeros(self._keep)
        self._n_in = 0  # input samples seen
        self._m = 0  # output samples made

    def process(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import upfirdn

        x = np.asarray(x, np.float64).ravel()
        if self.up == self.down == 1:
            return x.astype(np.float32)
        buf = np.concatenate([self._hist, x])
        b = self._n_in - len(self._hist)  # global input index of buf[0]
        self._n_in += len(x)
        v = upfirdn(self.h, buf, self.up, 1)
        js = np.arange(self._m * self.down, self._n_in * self.up, self.down)
        self._m += len(js)
        self._hist = buf[-self._keep:]
        return v[js - b * self.up].astype(np.float32)


class DeviceSource:
    """sounddevice input stream; a device that cannot run at 16 kHz is opened at its default rate and
    resampled."""

    def __init__(self, device=None, block: int = BLOCK):
        import sounddevice as sd

        self.sd, self.device, self.block = sd, device, block
        try:
            sd.check_input_settings(device=device, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
            self.rate = SAMPLE_RATE
        except Exception:
            info = sd.query_devices(device, "input")
            self.rate = int(info["default_samplerate"])
        self.resampler = StreamingResampler(self.rate) if self.rate != SAMPLE_RATE else None
        self.overflows = 0
        self.latency_s = 0.0

    async def __aiter__(self):
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=200)

        def callback(indata, frames, tinfo, status):  # audio thread
            if status.input_overflow:
                self.overflows += 1
            t_first = time.time() - frames / self.rate - self.latency_s
            data = indata[:, 0].copy()
            try:
                loop.call_soon_threadsafe(q.put_nowait, (data, t_first))
            except RuntimeError:
                pass

        blk = self.block * self.rate // SAMPLE_RATE
        with self.sd.InputStream(device=self.device, samplerate=self.rate, channels=1, dtype="float32",
                                 blocksize=blk, latency="low", callback=callback) as stream:
            self.latency_s = float(stream.latency)
            while True:
                data, t = await q.get()
                if self.resampler is not None:
                    data = self.resampler.process(data)
                yield data, t
