"""The ``.pnsc`` file: a header followed by 8-byte packets (one per 40 ms).

Format version 2 (written now), 20-byte header, big-endian:
``b"PNSC"`` | format version u8 (2) | group u8 (255 = unknown) | sample rate u32 |
packet count u32 | sample count u32 (the input's length; the decoder trims its output to it) |
reserved u16 (0).

Format version 1 (still read), 16-byte header: the same without the sample count, so decoders
output whole packets (``packet count * 640`` samples).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .constants import GROUP_UNKNOWN, PACKET_BYTES, PACKET_SAMPLES, SAMPLE_RATE

MAGIC = b"PNSC"
FORMAT_VERSION = 2  # written
READ_VERSIONS = (1, 2)
_HEADERS = {1: struct.Struct(">4sBBIIH"), 2: struct.Struct(">4sBBIIIH")}
HEADER_BYTES_BY_VERSION = {v: h.size for v, h in _HEADERS.items()}  # {1: 16, 2: 20}
HEADER_BYTES = HEADER_BYTES_BY_VERSION[FORMAT_VERSION]
_PREFIX = struct.Struct(">4sB")


class PnscFormatError(ValueError):
    """A .pnsc file is truncated, has the wrong magic or an unsupported version."""


@dataclass(frozen=True)
class PnscHeader:
    group: int = GROUP_UNKNOWN
    sample_rate: int = SAMPLE_RATE
    num_packets: int = 0
    version: int = FORMAT_VERSION
    num_samples: int | None = None  # None in format version 1 (not stored)

    @property
    def group_known(self) -> bool:
        return self.group != GROUP_UNKNOWN

    @property
    def output_samples(self) -> int:
        """Samples a decoder should output: the stored length, else whole packets (version 1)."""
        return self.num_packets * PACKET_SAMPLES if self.num_samples is None else self.num_samples


def _check_samples(num_samples: int, count: int, source: str) -> None:
    lo, hi = (count - 1) * PACKET_SAMPLES + 1, count * PACKET_SAMPLES
    if (count == 0 and num_samples != 0) or (count > 0 and not lo <= num_samples <= hi):
        raise PnscFormatError(f"{source}: sample count {num_samples} does not fit {count} packets "
                              f"(expected {max(lo, 0)}..{hi})")


def encode_pnsc(packets: np.ndarray, group: int = GROUP_UNKNOWN, num_samples: int | None = None) -> bytes:
    """Format-version-2 bytes; ``num_samples`` defaults to whole packets (``len(packets) * 640``)."""
    packets = np.ascontiguousarray(packets, dtype=np.uint8).reshape(-1, PACKET_BYTES)
    if not 0 <= group <= 255:
        raise PnscFormatError(f"group must be 0..254 or {GROUP_UNKNOWN} (unknown), got {group}")
    count = len(packets)
    num_samples = count * PACKET_SAMPLES if num_samples is None else int(num_samples)
    _check_samples(num_samples, count, "encode_pnsc")
    header = _HEADERS[2].pack(MAGIC, FORMAT_VERSION, group, SAMPLE_RATE, count, num_samples, 0)
    return header + packets.tobytes()


def decode_pnsc(data: bytes, source: str = "input") -> tuple[PnscHeader, np.ndarray]:
    """Parse format version 1 or 2; raises :class:`PnscFormatError` with a one-line reason."""
    if len(data) < _PREFIX.size:
        raise PnscFormatError(f"{source}: too short for a .pnsc header ({len(data)} bytes)")
    magic, version = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise PnscFormatError(f"{source}: not a .pnsc file (it does not start with {MAGIC!r})")
    if version not in READ_VERSIONS:
        newer = " (written by a newer pnsc; upgrade to read it)" if version > FORMAT_VERSION else ""
        raise PnscFormatError(f"{source}: .pnsc format version {version} is not supported "
                              f"(this pnsc reads versions {READ_VERSIONS[0]}..{READ_VERSIONS[-1]}){newer}")
    hdr = _HEADERS[version]
    if len(data) < hdr.size:
        raise PnscFormatError(f"{source}: too short for a .pnsc header ({len(data)} bytes, "
                              f"version {version} needs {hdr.size})")
    if version == 1:
        _, _, group, rate, count, _ = hdr.unpack_from(data)
        num_samples = None
    else:
        _, _, group, rate, count, num_samples, _ = hdr.unpack_from(data)
    if rate != SAMPLE_RATE:
        raise PnscFormatError(f"{source}: sample rate {rate} Hz, this codec runs at {SAMPLE_RATE} Hz")
    payload = data[hdr.size:]
    if len(payload) != count * PACKET_BYTES:
        what = "truncated" if len(payload) < count * PACKET_BYTES else "has trailing bytes"
        raise PnscFormatError(
            f"{source}: {what}: header announces {count} packets ({count * PACKET_BYTES} bytes), "
            f"payload has {len(payload)} bytes")
    if num_samples is not None:
        _check_samples(num_samples, count, source)
    packets = np.frombuffer(payload, dtype=np.uint8).reshape(count, PACKET_BYTES).copy()
    header = PnscHeader(group=group, sample_rate=rate, num_packets=count, version=version, num_samples=num_samples)
    return header, packets


def write_pnsc(path: str | Path, packets: np.ndarray, group: int = GROUP_UNKNOWN,
               num_samples: int | None = None) -> int:
    """Write a format-version-2 .pnsc file; returns its size in bytes."""
    data = encode_pnsc(packets, group, num_samples)
    Path(path).write_bytes(data)
    return len(data)


def read_pnsc(path: str | Path) -> tuple[PnscHeader, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f".pnsc file not found: {path}")
    return decode_pnsc(path.read_bytes(), source=str(path))
