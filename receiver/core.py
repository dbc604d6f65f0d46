"""The receive path without sockets: validation -> jitter buffer -> concealment -> decoder -> audio.

The websocket server (:mod:`.server`), the playback (:mod:`.playback`), the evaluation and the demo
all drive this one object::

    core = ReceiverCore(ReceiverConfig(size="s"))
    core.handle(message_bytes, now)        # any thread; now = arrival time in seconds
    pcm = core.pull(now)                   # playback clock, every 10 ms -> int16 (160,)
    stats = core.snapshot()                # ReceiverStats (dataclass; .to_dict() for JSON)
    core.set_personalized(False)           # live switch personalized <-> generic of the same size

``now`` is on the sender's timestamp clock (``time.time()`` for a live call; any virtual clock
in simulation, with the sender's ``ts`` in ms on the same clock) so the mouth-to-ear delay can be
estimated. Two playout modes:

- ``mode="realtime"``: ``pull(now)`` every 10 ms. The adaptive jitter buffer waits for the target
  delay before starting, declares a packet lost when a later one is here or when the playout has
  waited the target delay for it, stretches (conceals without advancing) when the buffer runs dry
  early, and shrinks or grows the delay by dropping or repeating whole 10 ms frames in silence
  (shrinking also drops every 4th unvoiced frame when 60 ms too late, any frame when 200 ms).
- ``mode="drain"``: no clock (tests, ``--no-pace``): ``drain()`` returns every frame that can be
  decoded now; a hole is concealed once ``reorder_window`` later packets are here, or at ``end()``.

:func:`run_events` runs the whole path in-process on ``[(arrival_time_s, message_bytes), ...]``
with a simulated 10 ms playback clock (quality vs loss through the real receiver path).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from pnsc.shared.constants import CORR_INDEX, FRAME_SIZE, FRAMES_PER_PACKET, GROUP_UNKNOWN, NB_CEPS
from pnsc.shared.protocol import Audio, Bye, Hello, ProtocolError, parse_message
from pnsc.shared.quantizer import PacketDecoder, load_codebooks

from . import decoders
from .concealment import C0_PER_DB, Concealer
from .delay_manager import PACKET_S, DelayManager
from .jitter_buffer import Entry, JitterBuffer

FRAME_S = FRAME_SIZE / 16000.0
MAX_CONCEAL_PACKETS = 50  # a hole longer than 2 s before a later packet is skipped, not concealed
SILENCE = np.zeros(FRAME_SIZE, np.int16)


@dataclass
class ReceiverConfig:
    size: str = "s"  # decoder size: "s" (PLPCNet-S / LPCNet-BL-S) or "l"
    personalized: bool = True  # False: always the generic decoder of the size
    seed: int = 0  # decoder sampling seed (same packets + same seed -> same audio)
    models_dir: str | None = None
    precision: str | None = None  # runtime decoder precision ("fp32" default, "int8")
    kernel: str | None = None  # runtime sample-loop kernel (None: best for this CPU)
    postfilter: tuple[float, float, float] | None = None  # formant postfilter (g_n, g_d, mu); None: off
    # (applies when the core opens its decoder; a ``decoder=`` given to ReceiverCore brings its own)
    mode: str = "realtime"  # or "drain"
    initial_delay_ms: float = 40.0
    min_delay_ms: float = 0.0
    max_delay_ms: float = 1000.0
    reorder_window: int = 3  # drain mode: packets past a hole before it counts as lost
    idle_after_s: float = 2.0  # realtime: no packet for this long -> silence, decoder stops
    output_latency_ms: float = 0.0  # playback device latency (for the mouth-to-ear estimate)
    time_scaling: bool = True  # drop / repeat frames in silence to follow the target delay
    trace: bool = False  # keep per-packet timing records in ``core.trace`` (benchmarks)


@dataclass
class ReceiverStats:
    state: str = "waiting"
    sessions: int = 0
    received: int = 0  # unique packets from primary messages
    lost: int = 0  # packets missing at playout time (concealed)
    late: int = 0  # arrived after their playout time (discarded)
    duplicates: int = 0
    redundancy_recovered: int = 0  # packets played from a redundant copy
    concealed_frames: int = 0  # 10 ms frames made by concealment (losses and stretching)
    played_frames: int = 0  # 10 ms frames of decoded audio pulled
    accelerated: int = 0  # frames dropped in silence (shrink delay)
    expanded: int = 0  # frames inserted (grow delay / underrun stretch)
    underruns: int = 0  # playback device underflows (set by the playback)
    invalid: dict = field(default_factory=dict)  # rejected messages by reason
    jb_depth_ms: float = 0.0  # audio buffered ahead of the playout point (holes included)
    jb_target_ms: float = 0.0  # the delay manager's target
    jitter_ms: float = 0.0  # measured arrival-jitter percentile
    playout_delay_ms: float = 0.0  # how far the playout runs behind the earliest possible arrival
    decoder: str = ""  # decoder in use, e.g. plpcnet-s-g2 or lpcnet-bl-s
    decoder_kernel: str = ""  # runtime sample-loop path (avx512-vnni, avx2, generic, onnx)
    postfilter: str = ""  # formant postfilter of the decoder as "g_n,g_d,mu" ("" = off)
    personalized: bool = True  # False: generic decoder forced (set_personalized)
    group: int | None = None  # the sender's speaker group (None until decided)
    confidence: float | None = None  # the sender classifier's confidence in it
    decoder_rtf: float = 0.0  # decode time / audio time (moving average)
    mouth_to_ear_ms: float | None = None  # capture of a packet's first sample -> its playout (+ device latency)
    output_dbfs: float = -120.0  # output level (moving average)

    def to_dict(self) -> dict:
        return asdict(self)


def _dbfs(x: np.ndarray) -> float:
    if len(x) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))
    return max(-120.0, 20 * np.log10(max(rms, 1e-9) / 32768.0))


class ReceiverCore:
    def __init__(self, config: ReceiverConfig | None = None, *, decoder=None, codebooks=None):
        self.config = c = config or ReceiverConfig()
        if c.mode not in ("realtime", "drain"):
            raise ValueError(f"mode must be 'realtime' or 'drain', got {c.mode!r}")
        self._codebooks = codebooks or load_codebooks()
        self.decoder = decoder or decoders.open_decoder(c.size, seed=c.seed, models_dir=c.models_dir,
                                                        precision=c.precision, kernel=c.kernel,
                                                        postfilter=c.postfilter)
        self._lock = threading.RLock()
        self.stats = ReceiverStats(personalized=c.personalized)
        self.jb = JitterBuffer()
        self.dm = DelayManager(initial_ms=c.initial_delay_ms, min_ms=c.min_delay_ms, max_ms=c.max_delay_ms)
        self._sid: int | None = None
        # Packet events for viewers (the demo's figure): on_packet(seq, kind) under the core's lock,
        # kind "ok" / "recovered" (played from a redundant copy) / "concealed" (missing at playout),
        # and "late" when a packet arrives after its playout time. Must be quick and not raise.
        self.on_packet = None
        self.trace: list | None = [] if c.trace else None
        self._trace_open: dict = {}
        self._reset_stream()

    # -- stream state ------------------------------------------------------------------------------
    def _reset_stream(self) -> None:
        self.jb.reset()
        self.dm.reset()
        self.concealer = Concealer()
        self._pd = PacketDecoder(self._codebooks)
        self._frames: deque = deque()  # (features, ts_ms | None) of the current packet
        self._pos = 0.0  # stream time (s) of the next frame to take
        self._state = "waiting"
        self._ended = False
        self._final_seq: int | None = None  # from ``bye``: the stream's packets end before this number
        self._lost_packet = False  # a packet was concealed: next packet decodes against the concealment
        self._last_arrival: float | None = None
        self._since_scale = 99
        self._peak_c0 = -10.0
        self._ts_pipe: deque = deque()
        self._group: int | None = None
        self._confidence: float | None = None
        self._want = decoders.choose(self.config.size, self.config.personalized, None)
        self._current: tuple | None = None
        self._decoder_reset = True  # done by the playout thread before its next frame
        self._loss_ema = 0.0
        self._red_depth = 0  # K: earlier packets each message carries (0: no redundancy seen)
        self._bursts: deque[int] = deque(maxlen=16)  # lengths of recent runs of missing messages
        self._lost_seqs: deque = deque(maxlen=256)  # recently concealed packets counted lost
        self._pending_lost: deque = deque(maxlen=4096)  # concealed past the newest packet
        self._m2e: float | None = None
        self._last_d = 0.0
        self._want_postfilter = False  # set_postfilter asked for a change

    def set_postfilter(self, spec: tuple[float, float, float] | None) -> None:
        """Live switch of the formant postfilter (``None``: off); the decoding path applies it before its next
        frame, with a fresh filter state."""
        from pnsc.receiver.postfilter import check_spec

        spec = check_spec(spec)
        with self._lock:
            self.config.postfilter = spec
            self._want_postfilter = True

    def set_personalized(self, on: bool) -> None:
        """Live switch between the personalized and the generic decoder of the same size."""
        with self._lock:
            self.config.personalized = bool(on)
            self.stats.personalized = bool(on)
            self._want = decoders.choose(self.config.size, self.config.personalized, self._group)

    # -- input -----------------------------------------------------------------------------------
    def handle(self, data, now: float) -> str:
        """Validate and take one received message; -> "ok" or the reason it was rejected (counted)."""
        try:
            msg = parse_message(data)
        except ProtocolError as exc:
            self._count_invalid(exc.reason)
            return exc.reason
        return self.handle_message(msg, now)

    def _count_invalid(self, reason: str) -> None:
        with self._lock:
            self.stats.invalid[reason] = self.stats.invalid.get(reason, 0) + 1

    def handle_message(self, msg, now: float) -> str:
        with self._lock:
            if isinstance(msg, Hello):
                if msg.sid != self._sid:
                    self._sid = msg.sid
                    self._reset_stream()
                    self.stats.sessions += 1
                return "ok"
            if isinstance(msg, Bye):
                self._ended = True
                # ``bye`` names the next sequence number: every packet before it that was concealed
                # without a later packet arriving was lost, not merely pending
                self._final_seq = msg.seq
                while self._pending_lost and self._pending_lost[0] < msg.seq:
                    self.stats.lost += 1
                    self._lost_seqs.append(self._pending_lost.popleft())
                return "ok"
            assert isinstance(msg, Audio)
            return self._take_audio(msg, now)

    @property
    def ended(self) -> bool:
        """A ``bye`` (or ``end()``) was seen and no packet came after it."""
        return self._ended

    def end(self) -> None:
        """The stream is over (bye or final disconnect): holes at the end get concealed, no waiting."""
        with self._lock:
            self._ended = True

    def _take_audio(self, msg: Audio, now: float) -> str:
        if self._sid is None:
            self.stats.sessions += 1
            self._sid = -1
        if self._state == "waiting" and self.jb.next_seq is not None and msg.seq < self.jb.next_seq \
                and self.jb.next_seq - msg.seq > 50:
            self._reset_stream()  # the sender's stream went backwards while we were idle: restart
        before = self.jb.max_seq
        res = self.jb.insert(msg.seq, Entry(msg.packet, msg.ts, msg.group, msg.confidence, False, now))
        if before is not None and res in ("new", "new-after-copy") and 2 <= msg.seq - before <= 50:
            self._bursts.append(msg.seq - before - 1)  # messages missing right before this one
        if res == "range":
            self._count_invalid("sequence")
            return "sequence"
        self._ended = False
        self._final_seq = None
        self._last_arrival = now
        self.dm.on_arrival(msg.seq, now)
        if res in ("new", "new-after-copy"):
            self.stats.received += 1
        elif res == "duplicate":
            self.stats.duplicates += 1
        elif res == "late":
            self.stats.late += 1
            if self.on_packet is not None:
                self.on_packet(msg.seq, "late")
            if msg.seq in self._lost_seqs:  # it was counted lost at playout time: it was late
                self._lost_seqs.remove(msg.seq)
                self.stats.lost -= 1
            elif msg.seq in self._pending_lost:
                self._pending_lost.remove(msg.seq)
        while self._pending_lost and self._pending_lost[0] < msg.seq:
            self.stats.lost += 1
            self._lost_seqs.append(self._pending_lost.popleft())
        if msg.redundancy:
            self._red_depth = max(self._red_depth, len(msg.redundancy))
        for i, p in enumerate(msg.redundancy):
            s = msg.seq - 1 - i
            if s >= 0:
                self.jb.insert(s, Entry(p, None, None, None, True, now))
        return "ok"

    # -- output ----------------------------------------------------------------------------------
    def _load_packet(self, seq: int, now: float = 0.0) -> None:
        """Take packet ``seq`` (or conceal it) into the frame queue."""
        e = self.jb.take(seq)
        if self.on_packet is not None:
            self.on_packet(seq, "concealed" if e is None else "recovered" if e.redundant else "ok")
        self._loss_ema = 0.98 * self._loss_ema + 0.02 * (e is None or e.redundant)
        self.dm.extra_ms = self._redundancy_wait_packets() * PACKET_S * 1000
        if e is None:
            if (self.jb.max_seq is not None and seq <= self.jb.max_seq) or \
                    (self._final_seq is not None and seq < self._final_seq):
                self.stats.lost += 1
                self._lost_seqs.append(seq)
            else:  # nothing after it has arrived (yet): lost only if the stream continues past it
                self._pending_lost.append(seq)
            self._lost_packet = True
            for _ in range(FRAMES_PER_PACKET):
                self._frames.append((None, None))
            return
        if e.redundant:
            self.stats.redundancy_recovered += 1
        if self.trace is not None and e.ts is not None:
            rec = {"seq": seq, "ts": e.ts / 1000.0, "arrival": e.arrival, "taken": now, "out": None}
            self.trace.append(rec)
            self._trace_open[e.ts] = rec
        if e.group is not None:
            self._group = None if e.group == GROUP_UNKNOWN else e.group
            self._confidence = e.confidence
            self._want = decoders.choose(self.config.size, self.config.personalized, self._group)
        if self._lost_packet:
            self._pd.set_reference(self.concealer.reference_frame3())
            self._lost_packet = False
        feats = self._pd.decode(np.frombuffer(e.packet, np.uint8)[None])
        for k in range(FRAMES_PER_PACKET):
            self._frames.append((feats[k], None if e.ts is None else e.ts + 10 * k))

    def _redundancy_wait_packets(self) -> int:
        """How many packets longer than the jitter needs the playout waits for redundant copies.

        A lost packet's copies ride in the next K messages, and each of them sees the same jitter as any
        packet, so the wait adds to the jitter target. Isolated losses need one packet (as Opus LBRR's
        extra frame); a run of L missing messages needs L packets for its first one, so the wait follows
        the typical recent run (the 80th percentile of the last 16, an observed length), at most K, and only
        while losses happen."""
        if not (self._red_depth and self._loss_ema > 0.005):
            return 0
        typical = int(np.quantile(np.array(self._bursts), 0.8, method="nearest")) if self._bursts else 1
        return int(min(self._red_depth, max(1, typical)))

    def _skip_long_gap(self) -> None:
        """A sequence jump far ahead (a misbehaving sender): conceal at most 2 s of it, skip the rest."""
        jb, n = self.jb, self.jb.next_seq
        if n is None or jb.has(n) or not jb.packets:
            return
        m = min(jb.packets)
        if m - n > MAX_CONCEAL_PACKETS:
            skip = m - n - MAX_CONCEAL_PACKETS
            self.stats.lost += skip
            jb.next_seq = n + skip

    def _quiet(self, f: np.ndarray) -> bool:
        self._peak_c0 = max(self._peak_c0 - 0.002, float(f[0]))
        return f[0] < self._peak_c0 - 30 * C0_PER_DB or f[0] < self.concealer.cn[0] + 3 * C0_PER_DB

    def _next_realtime(self, now: float):
        """-> (features | None for concealment, ts_ms | None) for this 10 ms tick, or "silence"."""
        c, jb, dm = self.config, self.jb, self.dm
        if self._state == "waiting":
            if jb.next_seq is None or not jb.packets:
                return "silence"
            first = min(jb.packets)
            if first > jb.next_seq:  # resuming after idle: skip what was never received
                self.stats.lost += sum(1 for q in range(jb.next_seq, first) if q not in self._pending_lost)
                self._pending_lost.clear()
                jb.next_seq = first
            d = dm.playout_delay_ms(now, first * PACKET_S)
            if d is None or d < dm.target_ms:
                return "silence"
            self._state = "playing"
            self._pos = first * PACKET_S
        if not self._frames:
            n = jb.next_seq
            d = dm.playout_delay_ms(now, n * PACKET_S) or 0.0
            if not jb.has(n):
                idle = self._last_arrival is None or now - self._last_arrival > c.idle_after_s
                if idle or (self._ended and not jb.packets and self.concealer.lost_run >= 10):
                    self._state = "waiting"
                    return "silence"
                if not (jb.has_later(n) or d >= dm.target_ms or self._ended):
                    self.stats.expanded += 1  # stretch: the packet is not late yet
                    return None, None
                self._skip_long_gap()
                n = jb.next_seq
            self._load_packet(n, now)
            self._pos = n * PACKET_S
        f, ts = self._frames.popleft()
        pos = self._pos
        self._pos += FRAME_S
        if f is None or not c.time_scaling:
            return f, ts
        d = dm.playout_delay_ms(now, pos)
        self._last_d = 0.0 if d is None else float(d)
        excess = 0.0 if d is None else d - dm.target_ms
        quiet = self._quiet(f)
        self._since_scale += 1
        unvoiced = f[CORR_INDEX] < 0.3
        if self._frames and ((self._since_scale >= 2 and ((excess > 10 and quiet) or excess > 200))
                             or (self._since_scale >= 4 and excess > 60 and unvoiced)):
            self.stats.accelerated += 1  # drop this frame, play the next one
            self._since_scale = 0
            f, ts = self._frames.popleft()
            self._pos += FRAME_S
        elif self._since_scale >= 2 and excess < -10 and quiet:
            self.stats.expanded += 1  # repeat this frame's features, keep its successor for later
            self._since_scale = 0
            self._frames.appendleft((f, None))
            self._pos -= FRAME_S
        return f, ts

    def _next_drain(self):
        if not self._frames:
            jb, n = self.jb, self.jb.next_seq
            if n is None:
                return "silence"
            if not jb.has(n):
                later = jb.max_seq is not None and jb.max_seq >= n + self.config.reorder_window
                if not (later or (self._ended and jb.packets)):
                    return "silence"
                self._skip_long_gap()
                n = jb.next_seq
            self._load_packet(n, time.time())
        return self._frames.popleft()

    def _decode(self, f, ts, now: float) -> np.ndarray:
        if f is None:
            f = self.concealer.conceal()
            self.stats.concealed_frames += 1
        else:
            f = self.concealer.observe(f)
        fresh = self._decoder_reset
        if fresh:
            self._decoder_reset = False
            self.decoder.reset()
            self._ts_pipe.clear()
        if self._want_postfilter:
            self._want_postfilter = False
            from pnsc.receiver.postfilter import FormantPostfilter

            pf = self.config.postfilter
            self.decoder.postfilter = None if pf is None else FormantPostfilter(*pf)
        want = self._want
        if want != self._current:
            self.decoder.switch(*want)
            self._current = want
            if fresh:  # nothing decoded yet: start on the new decoder without a crossfade
                self.decoder.reset()
        t0 = time.perf_counter()
        pcm = self.decoder.push(f)
        dt = time.perf_counter() - t0
        rtf = dt / FRAME_S
        self.stats.decoder_rtf = rtf if self.stats.decoder_rtf == 0 else 0.95 * self.stats.decoder_rtf + 0.05 * rtf
        self._ts_pipe.append(ts)
        if len(pcm) == 0:  # the decoder's lookahead is still filling
            return np.zeros(0, np.int16)
        out_ts = self._ts_pipe.popleft() if len(self._ts_pipe) > self.decoder.lookahead_frames else None
        if out_ts is not None and self._trace_open:
            rec = self._trace_open.pop(out_ts, None)
            if rec is not None:
                rec["out"] = now
        if out_ts is not None and self.config.mode == "realtime":
            m2e = now * 1000.0 + self.config.output_latency_ms - out_ts
            self._m2e = m2e if self._m2e is None else 0.9 * self._m2e + 0.1 * m2e
        return np.asarray(pcm, np.int16)

    def _account(self, pcm: np.ndarray) -> np.ndarray:
        self.stats.played_frames += 1
        lvl = _dbfs(pcm)
        self.stats.output_dbfs = float(0.9 * self.stats.output_dbfs + 0.1 * lvl)
        return pcm

    def pull(self, now: float) -> np.ndarray:
        """Realtime mode: the next 10 ms of audio (int16, 160 samples) at playback time ``now``."""
        with self._lock:
            nxt = self._next_realtime(now)
            self.stats.state = self._state
        if isinstance(nxt, str):
            return SILENCE.copy()
        pcm = self._decode(nxt[0], nxt[1], now)
        return self._account(pcm if len(pcm) else SILENCE.copy())

    def drain(self, now: float | None = None) -> np.ndarray:
        """Drain mode: every frame decodable now (int16, multiple of 160 samples)."""
        now = time.time() if now is None else now
        out = []
        while True:
            with self._lock:
                nxt = self._next_drain()
                self.stats.state = "playing" if not isinstance(nxt, str) else "waiting"
            if isinstance(nxt, str):
                break
            pcm = self._decode(nxt[0], nxt[1], now)
            if len(pcm):
                out.append(self._account(pcm))
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    def finish(self, now: float | None = None) -> np.ndarray:
        """Drain mode at the very end: conceal holes, decode everything, flush the decoder's lookahead."""
        self.end()
        out = self.drain(now)
        tail = np.asarray(self.decoder.flush(), np.int16)
        self._decoder_reset = True
        self._current = None
        return np.concatenate([out, tail])

    # -- stats -----------------------------------------------------------------------------------
    def snapshot(self) -> ReceiverStats:
        """A copy of the counters and gauges (safe to read from any thread)."""
        with self._lock:
            s = self.stats
            s.jb_depth_ms = self.jb.span_packets() * PACKET_S * 1000 + len(self._frames) * FRAME_S * 1000
            s.jb_target_ms = self.dm.target_ms
            s.jitter_ms = self.dm.jitter_ms
            s.playout_delay_ms = round(self._last_d, 1)
            s.decoder = getattr(self.decoder, "name", "")
            s.decoder_kernel = str(getattr(self.decoder, "kernel", "") or "")
            pf = getattr(self.decoder, "postfilter", None)
            s.postfilter = "" if pf is None else f"{pf.g_n:g},{pf.g_d:g},{pf.mu:g}"
            s.group, s.confidence = self._group, self._confidence
            s.mouth_to_ear_ms = None if self._m2e is None else round(self._m2e, 1)
            snap = ReceiverStats(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in asdict(s).items()})
        return snap


def run_events(events, config: ReceiverConfig | None = None, *, core: ReceiverCore | None = None,
               tail_s: float = 1.0, start: float | None = None) -> tuple[np.ndarray, ReceiverStats]:
    """The whole receive path on ``[(arrival_time_s, message_bytes), ...]`` with a simulated 10 ms
    playback clock (realtime mode) -> (int16 audio from ``start``, stats)."""
    core = core or ReceiverCore(config or ReceiverConfig())
    if core.config.mode != "realtime":
        raise ValueError("run_events needs a realtime-mode receiver")
    ev = sorted(events, key=lambda e: e[0])
    if not ev:
        return np.zeros(0, np.int16), core.snapshot()
    t = ev[0][0] if start is None else start
    end = ev[-1][0] + tail_s
    out, i, k = [], 0, 0
    t0 = t
    while t <= end:
        while i < len(ev) and ev[i][0] <= t:
            core.handle(ev[i][1], ev[i][0])
            i += 1
        out.append(core.pull(t))
        k += 1
        t = t0 + k * FRAME_S
    return np.concatenate(out), core.snapshot()
