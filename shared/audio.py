"""Reading audio files into 16 kHz mono float32, with clear errors for bad input."""
from __future__ import annotations

import sys
from math import gcd
from pathlib import Path

import numpy as np

from .constants import SAMPLE_RATE


class AudioError(Exception):
    """An audio file is missing, unreadable or unusable."""


def resample(x: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (anti-aliased) of a 1-D float signal."""
    if rate_in == rate_out:
        return x
    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def to_mono_16k(data: np.ndarray, rate: int, source: str = "input", quiet: bool = False) -> np.ndarray:
    """Downmix ``(n, channels)`` or ``(n,)`` audio at ``rate`` to 16 kHz mono float32."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        if data.shape[1] > 1 and not quiet:
            print(f"pnsc: {source}: downmixing {data.shape[1]} channels to mono", file=sys.stderr)
        data = data.mean(axis=1)
    elif data.ndim != 1:
        raise AudioError(f"{source}: expected 1-D or 2-D audio, got shape {data.shape}")
    if rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {rate}")
    if rate != SAMPLE_RATE and not quiet:
        print(f"pnsc: {source}: resampling {rate} Hz to {SAMPLE_RATE} Hz", file=sys.stderr)
    out = resample(data, rate)
    if not np.all(np.isfinite(out)):
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio(path: str | Path, quiet: bool = False) -> np.ndarray:
    """Read any soundfile-readable file as 16 kHz mono float32 in [-1, 1]."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file, got a folder: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"cannot read audio file {path}: the file is empty (0 bytes)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        reason = str(exc).replace(f"Error opening {str(path)!r}: ", "").strip().rstrip(".")
        reason = " ".join(reason.split()) or type(exc).__name__
        reason = reason[:1].lower() + reason[1:]
        raise AudioError(f"cannot read audio file {path}: {reason} (not an audio format libsndfile reads: "
                         f"wav, flac, ogg, ...)") from exc
    return to_mono_16k(data, rate, source=str(path), quiet=quiet)


def to_int16_scale(pcm: np.ndarray) -> np.ndarray:
    """int16 arrays pass as float32; float arrays in [-1, 1] are scaled to +-32768."""
    pcm = np.asarray(pcm)
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32)
    if not np.issubdtype(pcm.dtype, np.floating):
        raise AudioError(f"expected int16 or float samples, got {pcm.dtype}")
    return (pcm.astype(np.float32) * 32768.0).astype(np.float32)
