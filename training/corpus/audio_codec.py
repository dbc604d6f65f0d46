"""Per-utterance codecs of audio shard members: FLAC (lossless) and Ogg Opus (lossy, ~6x smaller).

Both go through soundfile/libsndfile only (the GPU machine has no opus-tools; the manylinux soundfile
wheel's bundled libsndfile 1.2.2 reads and writes Ogg Opus). libsndfile maps ``compression_level`` q
linearly onto the Opus target bitrate, ``6 + 250 * (1 - q)`` kb/s per channel (measured: 32 / 48 / 64 /
96 kb/s targets give 31 / 47 / 66 / 98 kb/s on speech, Ogg overhead included), always VBR (libsndfile's
``bitrate_mode`` is not supported for Opus). It honours Opus pre-skip and end trimming, so a 16 kHz
member decodes to exactly the original sample count with no delay; ``decode_member`` still trims or pads
a small mismatch (at most one 20 ms Opus frame) so that features line up with the original frames.
libsndfile gives each Ogg stream a random serial number; ``encode_member`` sets a fixed one so the same
audio always gives the same bytes (deterministic, checksummable shards). Decoding through the device's
soundfile 0.13.1 wheel gives bit-identical samples to soundfile 0.14 (both bundle libsndfile 1.2.2,
libopus 1.4).

For speech at 16 kHz, Opus picks SILK below ~54 kb/s (spectrum tilted down by up to 2.6 dB above 5 kHz,
teacher-forced LPCNet loss -5 %) and CELT from 56 kb/s on (flat spectrum); ``opus_packet_modes`` tells.
"""
from __future__ import annotations

import io
import zlib

import numpy as np

from pnsc.shared.constants import SAMPLE_RATE

CODECS = ("flac", "opus")
SUFFIX = {"flac": ".flac", "opus": ".opus"}
OPUS_KBPS_RANGE = (6.0, 256.0)
OPUS_SERIAL = 0x706E7363  # "pnsc"
MAX_LENGTH_FIX = 320  # samples (one 20 ms Opus frame at 16 kHz)


class CodecError(ValueError):
    """A member cannot be encoded or decoded as asked."""


def codec_of(member: str, record: dict | None = None) -> str:
    """The codec of a shard member: the record's ``codec`` field, else the member's suffix."""
    if record is not None and record.get("codec"):
        codec = record["codec"]
    else:
        codec = next((c for c, s in SUFFIX.items() if member.endswith(s)), None)
    if codec not in CODECS:
        raise CodecError(f"{member}: unknown audio codec {codec!r} (one of {', '.join(CODECS)})")
    return codec


def opus_compression_level(kbps: float) -> float:
    """libsndfile's ``compression_level`` for an Opus target bitrate in kb/s (mono)."""
    lo, hi = OPUS_KBPS_RANGE
    if not lo <= kbps <= hi:
        raise CodecError(f"Opus bitrate {kbps} kb/s outside {lo:g}..{hi:g} kb/s")
    return (hi - kbps) / (hi - lo)


_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 (poly 0x04C11DB7, MSB first, init 0, no final xor), via zlib on bit-reversed bytes."""
    r = zlib.crc32(page.translate(_REV8), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{r:032b}"[::-1], 2)


def set_ogg_serial(data: bytes, serial: int = OPUS_SERIAL) -> bytes:
    """Rewrite every page of a single-stream Ogg file to ``serial`` (page CRCs recomputed)."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        if out[pos:pos + 4] != b"OggS" or pos + 27 > len(out):
            raise CodecError(f"not an Ogg page at byte {pos}")
        nseg = out[pos + 26]
        end = pos + 27 + nseg + sum(out[pos + 27:pos + 27 + nseg])
        if end > len(out):
            raise CodecError(f"truncated Ogg page at byte {pos}")
        out[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22:pos + 26] = b"\0\0\0\0"
        out[pos + 22:pos + 26] = _ogg_crc(bytes(out[pos:end])).to_bytes(4, "little")
        pos = end
    return bytes(out)


def opus_packet_modes(data: bytes) -> dict[str, int]:
    """Count the audio packets of an Ogg Opus file by coding mode (``silk``, ``hybrid``, ``celt``) from
    each packet's TOC byte (RFC 6716 3.1: configs 0-11 SILK, 12-15 hybrid, 16-31 CELT)."""
    counts = {"silk": 0, "hybrid": 0, "celt": 0}
    pos, packet, n = 0, bytearray(), 0
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS":
        nseg = data[pos + 26]
        body = pos + 27 + nseg
        for lace in data[pos + 27:pos + 27 + nseg]:
            packet += data[body:body + lace]
            body += lace
            if lace < 255:
                if n >= 2 and packet:  # the first two packets are OpusHead and OpusTags
                    config = packet[0] >> 3
                    counts["silk" if config < 12 else "hybrid" if config < 16 else "celt"] += 1
                packet, n = bytearray(), n + 1
        pos = body
    return counts


def encode_member(pcm: np.ndarray, codec: str, bitrate_kbps: float | None = None) -> bytes:
    """16 kHz mono int16 ``pcm`` -> member bytes (FLAC 16 bit, or Ogg Opus at ``bitrate_kbps``)."""
    import soundfile as sf

    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise CodecError(f"expected mono int16 samples, got {pcm.dtype} {pcm.shape}")
    buf = io.BytesIO()
    if codec == "flac":
        sf.write(buf, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return buf.getvalue()
    if codec != "opus":
        raise CodecError(f"unknown audio codec {codec!r} (one of {', '.join(CODECS)})")
    if bitrate_kbps is None:
        raise CodecError("Opus needs a bitrate")
    sf.write(buf, pcm, SAMPLE_RATE, format="OGG", subtype="OPUS",
             compression_level=opus_compression_level(bitrate_kbps))
    return set_ogg_serial(buf.getvalue())


def decode_member(data: bytes, member: str, samples: int, record: dict | None = None) -> np.ndarray:
    """Member bytes -> float32 samples in [-1, 1) on the int16 grid, exactly ``samples`` long.

    FLAC must decode to exactly ``samples``; Opus may differ by at most ``MAX_LENGTH_FIX`` (trimmed /
    zero-padded at the end; libsndfile 1.2.2 gives the exact count)."""
    import soundfile as sf

    codec = codec_of(member, record)
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError / TypeError variants
        raise CodecError(f"cannot decode {codec} member {member}: {exc}") from exc
    if rate != SAMPLE_RATE or audio.ndim != 1:
        raise CodecError(f"member {member}: {rate} Hz, shape {audio.shape}; expected 16 kHz mono")
    if codec == "opus":
        if abs(len(audio) - samples) > MAX_LENGTH_FIX:
            raise CodecError(f"member {member}: decoded {len(audio)} samples, header says {samples}")
        audio = np.pad(audio[:samples], (0, max(0, samples - len(audio))))
        audio = (np.clip(np.round(audio * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)
    elif len(audio) != samples:
        raise CodecError(f"member {member}: decoded {len(audio)} samples, header says {samples}")
    return audio
