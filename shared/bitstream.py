"""The 64-bit packet: named fields packed MSB-first into 8 big-endian bytes."""
from __future__ import annotations

import numpy as np

from .constants import PACKET_BITS, PACKET_BYTES

# (name, bits) in transmission order; the allocation of LPCNet's 1.6 kb/s mode.
FIELDS: tuple[tuple[str, int], ...] = (
    ("c0", 7),  # energy of the superframe's last frame
    ("pitch", 6),  # round(21*log2(period/32)); 0 = unvoiced
    ("pitch_mod", 3),  # linear pitch slope across the 4 frames
    ("corr", 2),  # pitch correlation level
    ("vq0", 10),  # last frame c1..c17: 3-stage VQ
    ("vq1", 10),
    ("vq2", 10),
    ("mid", 12),  # middle frame: residual against the neighbours' average
    ("mid_sign", 1),
    ("interp", 3),  # frames 0 and 2: interpolation weights
)
FIELD_NAMES = tuple(name for name, _ in FIELDS)
FIELD_BITS = dict(FIELDS)
assert sum(FIELD_BITS.values()) == PACKET_BITS


class BitstreamError(ValueError):
    """A packet or field value is malformed."""


def pack(fields: dict[str, int]) -> bytes:
    """Field values -> one 8-byte packet. Every field must be present and in range."""
    word = 0
    for name, bits in FIELDS:
        if name not in fields:
            raise BitstreamError(f"missing packet field {name!r}")
        value = int(fields[name])
        if not 0 <= value < (1 << bits):
            raise BitstreamError(f"field {name!r}={value} does not fit in {bits} bits")
        word = (word << bits) | value
    return word.to_bytes(PACKET_BYTES, "big")


def unpack(packet: bytes) -> dict[str, int]:
    """One 8-byte packet -> field values."""
    if len(packet) != PACKET_BYTES:
        raise BitstreamError(f"packet must be {PACKET_BYTES} bytes, got {len(packet)}")
    word = int.from_bytes(packet, "big")
    out: dict[str, int] = {}
    shift = PACKET_BITS
    for name, bits in FIELDS:
        shift -= bits
        out[name] = (word >> shift) & ((1 << bits) - 1)
    return out


def pack_array(fields: dict[str, np.ndarray]) -> np.ndarray:
    """Vectorised :func:`pack`: arrays of k values per field -> ``(k, 8)`` uint8."""
    n = len(next(iter(fields.values()))) if fields else 0
    word = np.zeros(n, dtype=np.uint64)
    for name, bits in FIELDS:
        value = np.asarray(fields[name], dtype=np.int64)
        if value.shape != (n,):
            raise BitstreamError(f"field {name!r} has shape {value.shape}, expected ({n},)")
        if np.any(value < 0) or np.any(value >= (1 << bits)):
            raise BitstreamError(f"field {name!r} has values outside {bits} bits")
        word = (word << np.uint64(bits)) | value.astype(np.uint64)
    return word.astype(">u8").view(np.uint8).reshape(n, PACKET_BYTES)


def unpack_array(packets: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised :func:`unpack`: ``(k, 8)`` uint8 -> field arrays of k int64 values."""
    packets = np.ascontiguousarray(packets, dtype=np.uint8)
    if packets.ndim != 2 or packets.shape[1] != PACKET_BYTES:
        raise BitstreamError(f"packets must have shape (k, {PACKET_BYTES}), got {packets.shape}")
    word = packets.view(">u8").reshape(-1).astype(np.uint64)
    out: dict[str, np.ndarray] = {}
    shift = PACKET_BITS
    for name, bits in FIELDS:
        shift -= bits
        out[name] = ((word >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64)
    return out
