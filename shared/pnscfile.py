"""The ``.pnsc`` file: a 16-byte header followed by 8-byte packets (one per 40 ms).

Header (big-endian): magic ``b"PNSC"`` | format version u8 | group u8 (255 = unknown) |
sample rate u32 | packet count u32 | reserved u16 (0).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .constants import GROUP_UNKNOWN, PACKET_BYTES, SAMPLE_RATE

MAGIC = b"PNSC"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">4sBBIIH")
HEADER_BYTES = _HEADER.size  # 16


class PnscFormatError(ValueError):
    """A .pnsc file is truncated, has the wrong magic or an unsupported version."""


@dataclass(frozen=True)
class PnscHeader:
    group: int = GROUP_UNKNOWN
    sample_rate: int = SAMPLE_RATE
    num_packets: int = 0
    version: int = FORMAT_VERSION

    @property
    def group_known(self) -> bool:
        return self.group != GROUP_UNKNOWN


def encode_pnsc(packets: np.ndarray, group: int = GROUP_UNKNOWN) -> bytes:
    packets = np.ascontiguousarray(packets, dtype=np.uint8).reshape(-1, PACKET_BYTES)
    if not 0 <= group <= 255:
        raise PnscFormatError(f"group must be 0..254 or {GROUP_UNKNOWN} (unknown), got {group}")
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, group, SAMPLE_RATE, len(packets), 0)
    return header + packets.tobytes()


def decode_pnsc(data: bytes, source: str = "input") -> tuple[PnscHeader, np.ndarray]:
    if len(data) < HEADER_BYTES:
        raise PnscFormatError(f"{source}: too short for a .pnsc header ({len(data)} bytes)")
    magic, version, group, rate, count, _ = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PnscFormatError(f"{source}: not a .pnsc file (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise PnscFormatError(f"{source}: .pnsc format version {version} is not supported (need {FORMAT_VERSION})")
    if rate != SAMPLE_RATE:
        raise PnscFormatError(f"{source}: sample rate {rate} Hz, this codec runs at {SAMPLE_RATE} Hz")
    payload = data[HEADER_BYTES:]
    if len(payload) != count * PACKET_BYTES:
        raise PnscFormatError(
            f"{source}: header announces {count} packets ({count * PACKET_BYTES} bytes), payload has {len(payload)} bytes"
        )
    packets = np.frombuffer(payload, dtype=np.uint8).reshape(count, PACKET_BYTES).copy()
    return PnscHeader(group=group, sample_rate=rate, num_packets=count, version=version), packets


def write_pnsc(path: str | Path, packets: np.ndarray, group: int = GROUP_UNKNOWN) -> int:
    """Write a .pnsc file; returns its size in bytes."""
    data = encode_pnsc(packets, group)
    Path(path).write_bytes(data)
    return len(data)


def read_pnsc(path: str | Path) -> tuple[PnscHeader, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f".pnsc file not found: {path}")
    return decode_pnsc(path.read_bytes(), source=str(path))
