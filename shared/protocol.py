"""Wire protocol of a pnsc call: msgpack maps in binary websocket messages.

Every message is one msgpack map with short string keys; nothing else is accepted (no ext types,
no pickle, no code paths: msgpack only builds ints, bytes, strings, lists and maps, under hard
size limits). Protocol version :data:`PROTOCOL_VERSION` is carried in every message.

``hello`` (first message of each connection, sender -> receiver)::

    {"v": 1, "t": "hello", "sid": <session id, 0..2**63-1>}

  A sender keeps its session id across reconnects, so the receiver resumes the same stream
  (sequence numbers continue); a new session id starts a new stream.

``a`` (audio, one per 40 ms packet)::

    {"v": 1, "t": "a", "seq": <0..2**32-1>, "ts": <sender clock, ms, 0..2**53>, "pkt": <8 bytes>,
     ["grp": <0..NUM_GROUPS-1 | 255>, "conf": <float 0..1>,] ["red": [<8 bytes>, ...]]}

  ``grp`` (with the classifier's confidence ``conf``) rides every second and right after a group
  change; 255 = not decided yet. ``red`` carries the previous K packets, newest first
  (``red[i]`` is packet ``seq - 1 - i``), like Opus LBRR.

``bye`` (end of stream)::

    {"v": 1, "t": "bye", "seq": <next sequence number>}

:func:`parse_message` turns raw bytes into a :class:`Hello`, :class:`Audio` or :class:`Bye`, or
raises :class:`ProtocolError` whose ``reason`` is one short counter key ("oversize", "msgpack",
"schema", "version", "type", "size", "group", "range").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgpack

from .constants import GROUP_UNKNOWN, NUM_GROUPS, PACKET_BYTES

PROTOCOL_VERSION = 1
MAX_REDUNDANCY = 8  # packets of redundancy a message may carry
MAX_MESSAGE_BYTES = 256  # a message with K = 8 redundancy is ~130 bytes
WS_MAX_SIZE = 4096  # larger websocket frames close the connection (1009) before they are read
SEQ_LIMIT = 1 << 32
TS_LIMIT = 1 << 53
SID_LIMIT = 1 << 63
TOKEN_HEADER = "X-Pnsc-Token"
WS_PATH = "/pnsc"

# Close codes (RFC 6455 + websockets usage).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # keeps violating the protocol, flood, unauthenticated
CLOSE_TOO_BIG = 1009
CLOSE_BUSY = 1013  # another call is active: try again later

_AUDIO_KEYS = {"v", "t", "seq", "ts", "pkt", "grp", "conf", "red"}
_HELLO_KEYS = {"v", "t", "sid"}
_BYE_KEYS = {"v", "t", "seq"}


class ProtocolError(ValueError):
    """A message broke the protocol; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Hello:
    sid: int
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Audio:
    seq: int
    ts: int
    packet: bytes
    group: int | None = None  # None: not carried in this message; GROUP_UNKNOWN: not decided
    confidence: float | None = None
    redundancy: tuple[bytes, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Bye:
    seq: int


Message = Hello | Audio | Bye


# -- encoding ---------------------------------------------------------------------------------------
def encode_hello(sid: int) -> bytes:
    return msgpack.packb({"v": PROTOCOL_VERSION, "t": "hello", "sid": int(sid)}, use_bin_type=True)


def encode_audio(seq: int, ts: int, packet: bytes, group: int | None = None, confidence: float | None = None,
                 redundancy: tuple[bytes, ...] | list[bytes] = ()) -> bytes:
    """One audio message. ``redundancy`` = previous packets, newest first (at most MAX_REDUNDANCY)."""
    msg: dict = {"v": PROTOCOL_VERSION, "t": "a", "seq": int(seq), "ts": int(ts), "pkt": bytes(packet)}
    if group is not None:
        msg["grp"] = int(group)
        if confidence is not None:
            msg["conf"] = float(round(confidence, 4))
    if redundancy:
        msg["red"] = [bytes(p) for p in list(redundancy)[:MAX_REDUNDANCY]]
    return msgpack.packb(msg, use_bin_type=True)


def encode_bye(seq: int) -> bytes:
    return msgpack.packb({"v": PROTOCOL_VERSION, "t": "bye", "seq": int(seq)}, use_bin_type=True)


def encode_raw(obj) -> bytes:
    """Any msgpack object (tests and tools that send malformed messages on purpose)."""
    return msgpack.packb(obj, use_bin_type=True)


# -- parsing ----------------------------------------------------------------------------------------
def _ext_hook(code: int, data: bytes):
    raise ProtocolError("msgpack", f"extension type {code} not allowed")


def _unpack(data: bytes):
    up = msgpack.Unpacker(raw=False, strict_map_key=True, use_list=True, ext_hook=_ext_hook,
                          max_buffer_size=MAX_MESSAGE_BYTES, max_str_len=32, max_bin_len=PACKET_BYTES,
                          max_array_len=MAX_REDUNDANCY, max_map_len=len(_AUDIO_KEYS), max_ext_len=0)
    up.feed(data)
    try:
        obj = up.unpack()
    except msgpack.OutOfData:
        raise ProtocolError("msgpack", "truncated message") from None
    try:
        up.unpack()
    except msgpack.OutOfData:
        return obj
    raise ProtocolError("msgpack", "trailing data after the message")


def _int(obj: dict, key: str, lo: int, hi: int, reason: str = "range") -> int:
    v = obj.get(key)
    if type(v) is not int:  # bool is not an int here
        raise ProtocolError("type", f"{key!r} must be an integer, got {type(v).__name__}")
    if not lo <= v < hi:
        raise ProtocolError(reason, f"{key!r}={v} outside {lo}..{hi - 1}")
    return v


def _packet(v, what: str) -> bytes:
    if not isinstance(v, bytes):
        raise ProtocolError("type", f"{what} must be bytes, got {type(v).__name__}")
    if len(v) != PACKET_BYTES:
        raise ProtocolError("size", f"{what} has {len(v)} bytes, expected {PACKET_BYTES}")
    return v


def parse_message(data) -> Message:
    """Validate one received websocket message; raise :class:`ProtocolError` on anything wrong."""
    if isinstance(data, str):
        raise ProtocolError("type", "text message; the protocol uses binary messages")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("type", f"unexpected message object {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversize", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
    if not data:
        raise ProtocolError("msgpack", "empty message")
    try:
        obj = _unpack(data)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            RecursionError, OverflowError) as exc:
        raise ProtocolError("msgpack", f"not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("schema", f"message must be a map, got {type(obj).__name__}")
    if "v" not in obj:
        raise ProtocolError("schema", "missing protocol version 'v'")
    if type(obj["v"]) is not int or obj["v"] != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {obj['v']!r}, this receiver speaks {PROTOCOL_VERSION}")
    kind = obj.get("t")
    allowed = {"a": _AUDIO_KEYS, "hello": _HELLO_KEYS, "bye": _BYE_KEYS}.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        raise ProtocolError("schema", f"unknown message type {kind!r}")
    extra = set(obj) - allowed
    if extra:
        raise ProtocolError("schema", f"unknown keys {sorted(map(str, extra))} in {kind!r} message")
    if kind == "hello":
        return Hello(sid=_int(obj, "sid", 0, SID_LIMIT))
    if kind == "bye":
        return Bye(seq=_int(obj, "seq", 0, SEQ_LIMIT + 1))
    for key in ("seq", "ts", "pkt"):
        if key not in obj:
            raise ProtocolError("schema", f"audio message without {key!r}")
    seq = _int(obj, "seq", 0, SEQ_LIMIT)
    ts = _int(obj, "ts", 0, TS_LIMIT)
    packet = _packet(obj["pkt"], "'pkt'")
    group = conf = None
    if "grp" in obj:
        group = _int(obj, "grp", 0, GROUP_UNKNOWN + 1, "group")
        if group >= NUM_GROUPS and group != GROUP_UNKNOWN:
            raise ProtocolError("group", f"group {group} outside 0..{NUM_GROUPS - 1} (or {GROUP_UNKNOWN})")
    if "conf" in obj:
        c = obj["conf"]
        if type(c) not in (int, float) or not math.isfinite(c) or not 0.0 <= c <= 1.0:
            raise ProtocolError("range", f"'conf' must be a number in 0..1, got {c!r}")
        conf = float(c)
    red: tuple[bytes, ...] = ()
    if "red" in obj:
        r = obj["red"]
        if not isinstance(r, list):
            raise ProtocolError("type", "'red' must be a list of packets")
        if len(r) > min(MAX_REDUNDANCY, seq):
            raise ProtocolError("range", f"{len(r)} redundant packets for sequence {seq}")
        red = tuple(_packet(p, "redundant packet") for p in r)
    return Audio(seq=seq, ts=ts, packet=packet, group=group, confidence=conf, redundancy=red)


def parse_hostport(text: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """``HOST:PORT`` / ``:PORT`` / ``PORT`` -> (host, port); ValueError with a clear message."""
    host, sep, port = str(text).rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port 0..65535, got {text!r}")
    return host, int(port)


def normalize_uri(text: str) -> str:
    """``ws://HOST:PORT`` / ``wss://...`` as given; a bare ``HOST:PORT`` becomes ``ws://HOST:PORT``."""
    if text.startswith(("ws://", "wss://")):
        return text
    if "://" in text:
        raise ValueError(f"receiver address must be ws://HOST:PORT or wss://HOST:PORT, got {text!r}")
    host, port = parse_hostport(text, "127.0.0.1")
    return f"ws://{host}:{port}"
