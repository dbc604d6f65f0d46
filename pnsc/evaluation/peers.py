"""Peer codecs through their Debian command-line tools: codec2 (``c2enc``/``c2dec``, 8 kHz) and Opus
(``opusenc``/``opusdec``).  Each ``PeerCodec.run(x16k)`` returns the decoded 16 kHz float signal
and the payload bitrate; delay is left in (the scorer aligns)."""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pnsc.shared.audio import resample

from .errors import EvalError, require_program
from .opus import decode_with_loss, payload_bitrate, read_ogg_packets

SR = 16000
CODEC2_BITS_PER_FRAME = {"1600": (64, 0.04), "700C": (28, 0.04)}


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except subprocess.CalledProcessError as exc:
        msg = exc.stderr.decode(errors="replace").strip().splitlines()
        raise EvalError(f"{Path(cmd[0]).name} failed: {msg[-1] if msg else exc}") from None


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x) * 32767.0), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class PeerCodec:
    name: str  # system name in the report, e.g. "codec2-1600"
    kind: str  # "codec2" or "opus"
    mode: str  # codec2 mode or Opus bitrate in kb/s
    nominal_bps: float

    def check(self) -> None:
        if self.kind == "codec2":
            require_program("c2enc", "codec2")
            require_program("c2dec", "codec2")
        else:
            require_program("opusenc", "opus-tools")
            require_program("opusdec", "opus-tools")

    def run(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Encode and decode ``x`` (16 kHz float) -> (decoded 16 kHz float32, payload bits/s)."""
        return self._codec2(x) if self.kind == "codec2" else self._opus(x)[:2]

    def _codec2(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        enc, dec = require_program("c2enc", "codec2"), require_program("c2dec", "codec2")
        x8 = resample(np.asarray(x, np.float32), SR, 8000)
        with tempfile.TemporaryDirectory(prefix="pnsc-c2-") as tmp:
            t = Path(tmp)
            _to_int16(x8).tofile(t / "in.raw")
            _run([enc, self.mode, str(t / "in.raw"), str(t / "out.bit")])
            _run([dec, self.mode, str(t / "out.bit"), str(t / "out.raw")])
            y8 = np.fromfile(t / "out.raw", np.int16).astype(np.float32) / 32768.0
        bits, dur = CODEC2_BITS_PER_FRAME[self.mode]
        return resample(y8, 8000, SR), bits / dur

    def _opus(self, x: np.ndarray) -> tuple[np.ndarray, float, list[bytes], int, int]:
        import soundfile as sf

        enc, dec = require_program("opusenc", "opus-tools"), require_program("opusdec", "opus-tools")
        with tempfile.TemporaryDirectory(prefix="pnsc-opus-") as tmp:
            t = Path(tmp)
            sf.write(t / "in.wav", _to_int16(x), SR, subtype="PCM_16")
            _run([enc, "--quiet", "--bitrate", self.mode, "--framesize", "20", str(t / "in.wav"), str(t / "out.opus")])
            _run([dec, "--quiet", "--no-dither", "--rate", str(SR), str(t / "out.opus"), str(t / "out.wav")])
            y, rate = sf.read(t / "out.wav", dtype="float32")
            packets, pre_skip, granule = read_ogg_packets(t / "out.opus")
        if y.ndim == 2:
            y = y.mean(axis=1)
        if rate != SR:
            raise EvalError(f"opusdec wrote {rate} Hz, expected {SR}")
        return y, payload_bitrate(packets, len(x) / SR), packets, pre_skip, granule

    def run_with_loss(self, x: np.ndarray, lost_fn) -> np.ndarray:
        """Opus only: encode, then decode with ``lost_fn(n_packets) -> bool mask`` packets lost (libopus PLC)."""
        if self.kind != "opus":
            raise EvalError(f"{self.name}: loss simulation is only available for Opus")
        _, _, packets, pre_skip, granule = self._opus(x)
        return decode_with_loss(packets, np.asarray(lost_fn(len(packets)), bool), SR, pre_skip, granule)


PEERS = {
    "codec2-1600": PeerCodec("codec2-1600", "codec2", "1600", 1600.0),
    "codec2-700C": PeerCodec("codec2-700C", "codec2", "700C", 700.0),
    "opus-6k": PeerCodec("opus-6k", "opus", "6", 6000.0),
    "opus-9k": PeerCodec("opus-9k", "opus", "9", 9000.0),
}
