"""Ogg Opus demuxing and libopus decoding with lost packets (for Opus' own concealment under loss).

``read_ogg_packets(path)`` returns the Opus packets of an Ogg file (header packets removed) and the
pre-skip; ``OpusDecoder`` calls the system libopus (Debian ``libopus0``, installed with
``opus-tools``) through ctypes, so the same loss pattern can be applied to Opus as to pnsc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import struct
from pathlib import Path

import numpy as np

from .errors import EvalError, MissingToolError


def read_ogg_packets(path: str | Path) -> tuple[list[bytes], int, int]:
    """``(audio packets, pre_skip, final granule position)`` of a single-stream Ogg Opus file
    (both counts in 48 kHz samples; the stream's length is ``granule - pre_skip``)."""
    data = Path(path).read_bytes()
    packets: list[bytes] = []
    pos, partial, granule = 0, b"", 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS":
            raise EvalError(f"{path}: not an Ogg stream at byte {pos}")
        g = struct.unpack("<q", data[pos + 6: pos + 14])[0]
        if g >= 0:
            granule = g
        nseg = data[pos + 26]
        lacing = data[pos + 27: pos + 27 + nseg]
        body = pos + 27 + nseg
        for lace in lacing:
            partial += data[body: body + lace]
            body += lace
            if lace < 255:
                packets.append(partial)
                partial = b""
        pos = body
    if len(packets) < 2 or not packets[0].startswith(b"OpusHead"):
        raise EvalError(f"{path}: not an Ogg Opus file")
    pre_skip = struct.unpack("<H", packets[0][10:12])[0]
    return packets[2:], pre_skip, granule


def payload_bitrate(packets: list[bytes], seconds: float) -> float:
    """Bits per second of Opus payload (no container overhead)."""
    return 8.0 * sum(len(p) for p in packets) / seconds if seconds > 0 else 0.0


def _libopus():
    name = ctypes.util.find_library("opus") or "libopus.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise MissingToolError("libopus not found: install the Debian package libopus0 "
                               "(apt-get install opus-tools)") from None
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_packet_get_nb_samples.restype = ctypes.c_int
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    return lib


def decode_with_loss(packets: list[bytes], lost: np.ndarray, rate: int = 16000, pre_skip48: int = 0,
                     granule48: int | None = None) -> np.ndarray:
    """Decode mono Opus ``packets`` at ``rate``; ``lost[i]`` true -> packet i is concealed by libopus' PLC.
    The output is trimmed as opusdec trims it (pre-skip at the start, final granule position at the end)."""
    lib = _libopus()
    err = ctypes.c_int(0)
    dec = lib.opus_decoder_create(rate, 1, ctypes.byref(err))
    if err.value != 0 or not dec:
        raise EvalError(f"opus_decoder_create failed ({err.value})")
    buf = (ctypes.c_int16 * 5760)()
    out: list[np.ndarray] = []
    try:
        last = rate // 50
        for i, p in enumerate(packets):
            n_expected = lib.opus_packet_get_nb_samples(p, len(p), rate) if p else last
            if n_expected > 0:
                last = n_expected
            if lost[i]:
                n = lib.opus_decode(dec, None, 0, buf, last, 0)
            else:
                n = lib.opus_decode(dec, p, len(p), buf, 5760, 0)
            if n < 0:
                raise EvalError(f"opus_decode failed on packet {i} ({n})")
            out.append(np.frombuffer(buf, np.int16, n).copy())
    finally:
        lib.opus_decoder_destroy(dec)
    pcm = np.concatenate(out) if out else np.zeros(0, np.int16)
    skip = pre_skip48 * rate // 48000
    end = len(pcm) if granule48 is None else min(len(pcm), granule48 * rate // 48000)
    return pcm[skip:end].astype(np.float32) / 32768.0
