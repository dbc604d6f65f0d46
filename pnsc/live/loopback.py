"""A loopback call in one process: the call's receiver (websockets server, jitter buffer, concealment,
decoder, playback) and its sender (capture or file, analysis, quantizer, impairments, websockets
client) on 127.0.0.1, plus what a viewer needs: one stats snapshot for the live view, live controls
(A/B decoder switch, injected loss), and recordings (sent audio, played audio, packet events).

    call = LoopbackCall(LoopbackOptions(size="s", loss=0.1), source_pcm=pcm)
    result = call.run()     # blocks until the audio has been sent and played out (or stop())

Playback goes to the sound device when ``device`` is given (the device clocks the call), otherwise a
10 ms wall-clock tick pulls the audio (:class:`pnsc.receiver.playback.ClockedPuller`).
Either way every pulled 10 ms frame is kept in memory for the received WAV and the figure.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pnsc.shared.constants import SAMPLE_RATE

PACKET_S = 0.04
PAYLOAD_BPS = 1600
# Per message on the wire besides the msgpack payload: WebSocket client frame header (2 bytes +
# 4-byte mask for payloads < 126 bytes) and TCP/IPv4 headers with the timestamp option (20 + 32).
WIRE_OVERHEAD_BYTES = 6 + 52


def decoder_variant(decoder: str, personalized: bool, serves_as: str | None = None) -> str:
    """What the live view says about the decoder in use."""
    if decoder.startswith("plpcnet"):
        # a group whose fine-tune decoded worse than the baseline is served by it (models/manifest.json says why)
        return f"personalized slot, served by {serves_as}" if serves_as else "personalized"
    return "baseline until the group is known" if personalized else "baseline (A/B)"


@dataclass
class LoopbackOptions:
    size: str = "s"  # decoder size: "s" or "l"
    personalized: bool = True  # False: the generic baseline of the size (the A/B key flips it)
    loss: float = 0.0  # injected message loss probability
    burst: float = 0.0  # mean loss burst length (Gilbert-Elliott) in messages
    jitter_ms: float = 0.0  # mean extra delay (uniform 0..2*jitter)
    seed: int = 0
    redundancy: int | None = None  # None: the sender's default
    group: int | None = None  # fixed speaker group (None: the sender classifies live)
    device: Any = None  # output sound device (index/name); None with play=False: no device
    play: bool = False  # play through ``device`` (None = the default device)
    tail_s: float = 1.0  # keep playing this long after the sender's bye (jitter buffer drains)
    record: bool = True  # keep sent and played audio in memory (off for long soaks)
    postfilter: tuple[float, float, float] | None = None  # receiver's formant postfilter (g_n, g_d, mu); None: off


@dataclass
class PacketLog:
    """What happened to packets at the receiver (from ``ReceiverCore.on_packet``); packets played
    normally are not stored, so the log stays small in long calls without loss."""
    kinds: dict = field(default_factory=dict)  # seq -> "recovered" | "concealed" | "late"
    decoders: list = field(default_factory=list)  # [(seq, decoder name)] whenever the decoder changed
    _last_decoder: str = ""

    def on_packet(self, seq: int, kind: str, decoder: str) -> None:
        if kind != "late" and decoder != self._last_decoder:
            self.decoders.append((seq, decoder))
            self._last_decoder = decoder
        if kind != "ok":  # "late": it was concealed at playout and arrived afterwards
            self.kinds[seq] = kind

    def seqs(self, kind: str, below: int | None = None) -> list[int]:
        """Sequence numbers of ``kind``; ``below``: only packets the sender made (the receiver also
        conceals past the end of a stream while it waits for more)."""
        return sorted(s for s, k in self.kinds.items() if k == kind and (below is None or s < below))


@dataclass
class CallResult:
    sent_pcm: np.ndarray  # float32 16 kHz: what the sender captured
    played_pcm: np.ndarray  # float32 16 kHz: what the receiver played, as played (delay included)
    packets: PacketLog
    history: list  # [(t_s, snapshot dict)] sampled every ``sample_every`` s
    final: dict  # the last snapshot
    wall_s: float
    device_name: str | None
    quit_early: bool


class _Tap:
    """Stands in for the ReceiverCore in the playback: pulls from it and keeps every frame."""

    def __init__(self, core, keep: bool):
        self.core, self.keep = core, keep
        self.frames: list[np.ndarray] = []
        self.pulled = 0

    def pull(self, now: float) -> np.ndarray:
        pcm = self.core.pull(now)
        self.pulled += 1
        if self.keep:
            self.frames.append(pcm)
        return pcm

    def __getattr__(self, name: str):  # stats, config, ... of the real core
        return getattr(self.core, name)

    def audio(self) -> np.ndarray:
        if not self.frames:
            return np.zeros(0, np.float32)
        return np.concatenate(self.frames).astype(np.float32) / 32768.0


class _RecordingSource:
    """Wraps a capture source: keeps the sent audio and stops at ``max_s`` seconds or on request."""

    def __init__(self, source, keep: bool, max_s: float | None):
        self.source, self.keep, self.max_s = source, keep, max_s
        self.chunks: list[np.ndarray] = []
        self.samples = 0
        self.stop_requested = threading.Event()

    async def __aiter__(self):
        limit = None if self.max_s is None else int(round(self.max_s * SAMPLE_RATE))
        async for pcm, t in self.source:
            if self.stop_requested.is_set():
                break
            pcm = np.asarray(pcm, np.float32)
            if limit is not None and self.samples + len(pcm) > limit:
                pcm = pcm[: limit - self.samples]
            if len(pcm):
                if self.keep:
                    self.chunks.append(pcm)
                self.samples += len(pcm)
                yield pcm, t
            if limit is not None and self.samples >= limit:
                break

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)


class LoopbackCall:
    """Receiver and sender of one call on loopback; see the module docstring."""

    def __init__(self, options: LoopbackOptions, *, source_pcm: np.ndarray | None = None, source=None,
                 max_seconds: float | None = None, sample_every: float | None = 0.25, log=None):
        from pnsc.receiver.core import ReceiverConfig, ReceiverCore
        from pnsc.receiver.server import ReceiverServer
        from pnsc.sender.capture import FileSource
        from pnsc.sender.client import SenderClient
        from pnsc.sender.stream import SenderConfig, SenderCore
        from pnsc.shared.netem import Impairments

        if (source_pcm is None) == (source is None):
            raise ValueError("give exactly one of source_pcm (a signal) or source (a capture source)")
        self.options = o = options
        self.log = log or (lambda msg: None)
        self.sample_every = sample_every
        self.core = ReceiverCore(ReceiverConfig(size=o.size, personalized=o.personalized, seed=o.seed,
                                                mode="realtime", postfilter=o.postfilter))
        self.packets = PacketLog()
        self.core.on_packet = lambda seq, kind: self.packets.on_packet(seq, kind, self.core.decoder.name)
        self.server = ReceiverServer(self.core, "127.0.0.1", 0, log=self.log)
        scfg = SenderConfig(group=o.group) if o.redundancy is None else SenderConfig(redundancy=o.redundancy,
                                                                                     group=o.group)
        self.sender = SenderCore(scfg.validate())
        self.impairments = Impairments(loss=o.loss, burst=o.burst, jitter=o.jitter_ms, seed=o.seed).validate()
        self._client_cls, self._client = SenderClient, None
        if source is None:
            source = FileSource(pcm=np.asarray(source_pcm, np.float32), pace=True)
        self.source = _RecordingSource(source, o.record, max_seconds)
        self.tap = _Tap(self.core, o.record)
        self.device_name: str | None = None
        self._t0: float | None = None
        self._history: list = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._quit = threading.Event()

    # -- live controls (any thread) -------------------------------------------------------------
    def toggle_personalized(self) -> bool:
        """A/B: switch the receiver between the personalized decoder and the same-size baseline."""
        on = not self.core.config.personalized
        self.core.set_personalized(on)
        return on

    def toggle_postfilter(self) -> bool:
        """A/B: the formant postfilter on (the call's setting, else the recommended one) or off; -> on?"""
        from pnsc.receiver.postfilter import RECOMMENDED

        on = self.core.config.postfilter is None
        self.core.set_postfilter((self.options.postfilter or RECOMMENDED) if on else None)
        return on

    def set_loss(self, percent: float) -> None:
        """Change the injected loss live (0..100 %)."""
        p = max(0.0, min(1.0, percent / 100.0))
        if self._loop is not None and self._client is not None:
            self._loop.call_soon_threadsafe(self._client.set_loss, p)
        else:
            self.impairments.loss = p

    def stop(self) -> None:
        """End the call early (the live view's ``q``): the sender stops and says bye."""
        self._quit.set()
        self.source.stop_requested.set()

    # -- stats -----------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """One flat dict for the live view and the summary (keys of :mod:`pnsc.live.dashboard`)."""
        r = self.core.snapshot()
        s = self._client.snapshot() if self._client is not None else self.sender.snapshot()
        if self._client is None:
            s.loss = self.impairments.loss
        elapsed = 0.0 if self._t0 is None else time.monotonic() - self._t0
        audio_s = self.sender.stats.packets * PACKET_S
        wire_bytes = s.bytes_sent + s.sent * WIRE_OVERHEAD_BYTES
        made = self.sender.stats.packets
        concealed = len(self.packets.seqs("concealed", made)) + len(self.packets.seqs("late", made))
        dec = r.decoder or ""
        variant = decoder_variant(dec, r.personalized, getattr(self.core.decoder, "serves_as", None))
        group = r.group if r.group is not None else s.group
        conf = r.confidence if r.group is not None else s.confidence
        return {
            "elapsed_s": elapsed, "audio_s": audio_s, "status": r.state,
            "talker_group": group, "group_confidence": conf, "sender_group": s.group,
            "decoder": dec, "variant": variant, "personalized": r.personalized, "kernel": r.decoder_kernel,
            "postfilter": r.postfilter or None,
            "payload_bps": PAYLOAD_BPS if audio_s else None,
            "wire_bps": (8.0 * wire_bytes / audio_s) if audio_s > 0 else None,
            "messages_sent": s.sent, "packets_sent": s.packets, "netem_dropped": s.netem_dropped,
            "packets_received": r.received, "packets_lost": r.lost, "packets_late": r.late,
            "packets_recovered": r.redundancy_recovered, "packets_concealed": concealed,
            "concealed_frames": r.concealed_frames, "duplicates": r.duplicates,
            "jitter_depth_ms": r.jb_depth_ms, "jitter_target_ms": r.jb_target_ms, "network_jitter_ms": r.jitter_ms,
            "decoder_rtf": r.decoder_rtf, "analysis_rtf": s.analysis_rtf,
            "mouth_to_ear_ms": r.mouth_to_ear_ms, "input_dbfs": s.input_dbfs, "output_dbfs": r.output_dbfs,
            "loss_percent": 100.0 * s.loss, "burst": self.impairments.burst, "jitter_ms": self.impairments.jitter,
            "underruns": r.underruns, "redundancy": s.redundancy, "reconnects": s.reconnects,
            "accelerated": r.accelerated, "expanded": r.expanded,
        }

    @property
    def history(self) -> list:
        return self._history

    # -- running ---------------------------------------------------------------------------------
    def _open_output(self):
        if not self.options.play:
            from pnsc.receiver.playback import ClockedPuller

            def stalled() -> None:  # a stalled playout clock is an underrun of the (virtual) device
                self.tap.core.stats.underruns += 1

            return ClockedPuller(self.tap, on_stall=stalled, name="pnsc-loopback-playout").start()
        import sounddevice as sd

        from pnsc.receiver.playback import DevicePlayback

        play = DevicePlayback(self.tap, self.options.device)
        self.device_name = str(sd.query_devices(self.options.device, "output")["name"])
        return play.start()

    async def _sampler(self) -> None:
        while True:
            self._history.append((time.monotonic() - self._t0, self.snapshot()))
            await asyncio.sleep(self.sample_every)

    async def _main(self) -> bool:
        self._loop = asyncio.get_running_loop()
        await self.server.start()
        self._client = self._client_cls(f"ws://127.0.0.1:{self.server.port}", self.sender, netem=self.impairments,
                                        pace=True, log=self.log)
        output = self._open_output()
        self._t0 = time.monotonic()
        sampler = asyncio.ensure_future(self._sampler()) if self.sample_every else None
        try:
            await self._client.run(self.source, wait_connected=5.0, linger=1.0)
            # let the jitter buffer play out what is still queued, then a short tail
            end = time.monotonic() + 10.0
            while time.monotonic() < end and not self._quit.is_set():
                st = self.core.snapshot()
                if self.core.ended and st.state == "waiting":
                    break
                await asyncio.sleep(0.02)
            tail_end = time.monotonic() + (0.0 if self._quit.is_set() else self.options.tail_s)
            while time.monotonic() < tail_end and not self._quit.is_set():
                await asyncio.sleep(0.02)
        finally:
            if sampler is not None:
                sampler.cancel()
            output.close()
            await self.server.stop()
        return self._quit.is_set()

    @property
    def started(self) -> bool:
        """The call is running (the sender streams, the playback pulls)."""
        return self._t0 is not None

    def run(self) -> CallResult:
        t = time.monotonic()
        quit_early = asyncio.run(self._main())
        final = self.snapshot()
        if self.sample_every:
            self._history.append((time.monotonic() - self._t0, final))
        return CallResult(self.source.audio(), self.tap.audio(), self.packets, self._history, final,
                          time.monotonic() - t, self.device_name, quit_early)
