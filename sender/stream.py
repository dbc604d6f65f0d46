"""Sender core without sockets: 16 kHz audio -> streaming analysis -> 8-byte packets -> messages.

    core = SenderCore(SenderConfig(redundancy=2))
    msgs = core.push(pcm_chunk, capture_time)   # any chunk size; -> list of message bytes
    msgs += core.flush(now)                     # zero-pad the last partial 40 ms packet
    bye = core.bye()
    core.snapshot()                             # SenderStats (.to_dict())

``capture_time`` is the wall-clock time (``time.time()``, or any clock shared with the receiver)
of the chunk's first sample; every message's ``ts`` is the capture time of its packet's first
sample in ms, so the receiver can estimate the mouth-to-ear delay.

The analysis is the codec core's streaming :class:`FeatureExtractor` (40 ms blocks, no lookahead)
and the stateful :class:`PacketEncoder`. The speaker group comes from the streaming
:class:`GroupTracker` (decides after 3 s of active speech, follows talker changes with hysteresis)
unless a fixed ``group`` is configured; it rides in the stream every ``group_every_s`` and at once
after a change (255 until decided). ``redundancy`` = K previous packets carried in each message.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from pnsc.shared.audio import to_int16_scale
from pnsc.shared.constants import GROUP_UNKNOWN, NUM_GROUPS, PACKET_SAMPLES, SAMPLE_RATE
from pnsc.shared.features import FeatureExtractor
from pnsc.shared.protocol import MAX_REDUNDANCY, encode_audio, encode_bye, encode_hello
from pnsc.shared.quantizer import PacketEncoder, load_codebooks

DEFAULT_REDUNDANCY = 2  # 2 x 8 bytes more per 40 ms (+3.2 kb/s of a ~20 kb/s websocket stream)
PACKET_S = PACKET_SAMPLES / SAMPLE_RATE
GROUP_REPEAT = 4  # a new group rides in this many consecutive messages (survives short bursts)


@dataclass
class SenderConfig:
    redundancy: int = DEFAULT_REDUNDANCY
    group: int | None = None  # fixed speaker group; None: the GroupTracker decides
    classify: bool = True  # run the GroupTracker (when no fixed group)
    group_every_s: float = 1.0
    start_seq: int = 0

    def validate(self) -> "SenderConfig":
        if not 0 <= self.redundancy <= MAX_REDUNDANCY:
            raise ValueError(f"--redundancy must be 0..{MAX_REDUNDANCY}, got {self.redundancy}")
        if self.group is not None and not 0 <= self.group < NUM_GROUPS:
            raise ValueError(f"--group must be 0..{NUM_GROUPS - 1}, got {self.group}")
        return self


@dataclass
class SenderStats:
    packets: int = 0  # packets made by the encoder
    sent: int = 0  # messages handed to the network (set by the client)
    bytes_sent: int = 0  # websocket payload bytes of those messages (set by the client)
    dropped_offline: int = 0  # made while disconnected (set by the client)
    netem_dropped: int = 0  # dropped by the injected impairments (set by the client)
    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    seq: int = 0  # next sequence number
    group: int | None = None
    confidence: float | None = None
    input_dbfs: float = -120.0
    analysis_rtf: float = 0.0  # analysis + quantization (+ classifier) time / audio time
    redundancy: int = 0
    bitrate_payload_bps: int = 1600
    loss: float = 0.0  # injected loss probability (live)
    last_error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class SenderCore:
    def __init__(self, config: SenderConfig | None = None, *, codebooks=None, tracker=None, sid: int | None = None):
        self.config = c = (config or SenderConfig()).validate()
        cb = codebooks or load_codebooks()
        self._fe = FeatureExtractor()
        self._enc = PacketEncoder(cb)
        self.seq = c.start_seq
        self.sid = sid if sid is not None else int.from_bytes(np.random.default_rng().bytes(7), "big")
        self._tracker = tracker
        if self._tracker is None and c.group is None and c.classify:
            from pnsc.sender.speaker_classifier import GroupTracker, SpeakerClassifier

            self._tracker = GroupTracker(SpeakerClassifier())
        self._red: deque[bytes] = deque(maxlen=max(1, c.redundancy))
        self._group_sent: int | None = None
        self._group_sent_seq = -10**9
        self._group_repeat = 0
        self._samples = 0  # samples pushed so far
        self._anchors: deque[tuple[int, float]] = deque(maxlen=64)  # (sample index, capture time)
        self.stats = SenderStats(redundancy=c.redundancy)

    # -- group -----------------------------------------------------------------------------------
    def current_group(self) -> tuple[int, float | None]:
        if self.config.group is not None:
            return self.config.group, 1.0
        t = self._tracker
        if t is None or t.group is None:
            return GROUP_UNKNOWN, None
        conf = t.events[-1].confidence if t.events else None
        return int(t.group), conf

    def hello(self) -> bytes:
        return encode_hello(self.sid)

    # -- audio -----------------------------------------------------------------------------------
    def _time_of(self, sample: int) -> float:
        idx, t = self._anchors[0]
        for i, tt in self._anchors:
            if i <= sample:
                idx, t = i, tt
        return t + (sample - idx) / SAMPLE_RATE

    def push(self, pcm: np.ndarray, capture_time: float | None = None) -> list[bytes]:
        """Audio chunk (float in [-1, 1] or int16, 16 kHz mono) -> messages of completed packets."""
        x = np.ravel(pcm)
        if capture_time is None:
            capture_time = time.time() - len(x) / SAMPLE_RATE
        self._anchors.append((self._samples, float(capture_time)))
        t0 = time.perf_counter()
        if len(x):
            xi = to_int16_scale(x)
            rms = float(np.sqrt(np.mean(np.square(xi.astype(np.float64)))))
            lvl = max(-120.0, 20 * np.log10(max(rms, 1e-9) / 32768.0))
            self.stats.input_dbfs = float(0.8 * self.stats.input_dbfs + 0.2 * lvl)
        feats = self._fe.push(x)
        if self._tracker is not None and len(x):
            self._tracker.push(x if x.dtype != np.int16 else x.astype(np.float32) / 32768.0)
        out = self._packetize(feats)
        self._samples += len(x)
        dt = time.perf_counter() - t0
        if len(x):
            rtf = dt / (len(x) / SAMPLE_RATE)
            self.stats.analysis_rtf = rtf if self.stats.analysis_rtf == 0 else 0.95 * self.stats.analysis_rtf + 0.05 * rtf
        return out

    def flush(self) -> list[bytes]:
        """Zero-pad the last partial packet and return its message (if any)."""
        return self._packetize(self._fe.flush())

    def _packetize(self, feats: np.ndarray) -> list[bytes]:
        if len(feats) == 0:
            return []
        packets = self._enc.encode(feats)
        out = []
        for p in packets:
            seq = self.seq
            first_sample = (seq - self.config.start_seq) * PACKET_SAMPLES
            ts = int(round(self._time_of(first_sample) * 1000))
            g, conf = self.current_group()
            grp = None
            if g != self._group_sent:
                self._group_sent, self._group_sent_seq, self._group_repeat = g, seq, GROUP_REPEAT
            if self._group_repeat > 0 or seq - self._group_sent_seq >= round(self.config.group_every_s / PACKET_S):
                grp = g
                self._group_repeat = max(0, self._group_repeat - 1)
                if self._group_repeat == 0:
                    self._group_sent_seq = seq
            red = list(self._red)[::-1] if self.config.redundancy else []
            out.append(encode_audio(seq, ts, p.tobytes(), grp, conf if grp is not None else None, red))
            if self.config.redundancy:
                self._red.append(p.tobytes())
            self.seq += 1
            self.stats.packets += 1
        self.stats.seq = self.seq
        self.stats.group, self.stats.confidence = (None, None) if self.current_group()[0] == GROUP_UNKNOWN \
            else self.current_group()
        return out

    def bye(self) -> bytes:
        return encode_bye(self.seq)

    def snapshot(self) -> SenderStats:
        return SenderStats(**asdict(self.stats))
