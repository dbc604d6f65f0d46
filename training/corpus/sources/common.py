"""Helpers shared by the corpus sources: writing LibriSpeech-layout FLAC files, rate warps."""
from __future__ import annotations

import os
from math import gcd
from pathlib import Path

import numpy as np

from pnsc.shared.constants import SAMPLE_RATE


def warp_to_16k(audio: np.ndarray, rate: int, warp: float = 1.0) -> np.ndarray:
    """Resample ``audio`` (at ``rate``) to 16 kHz as if it had been recorded at ``rate * warp``.

    ``warp > 1`` plays the voice faster and higher (formants and pitch scale by ``warp``), ``warp < 1``
    lower and slower: a "tape-speed" warp that gives a new vocal-tract length and pitch.
    """
    from scipy.signal import resample_poly

    src = int(round(rate * warp / 50.0)) * 50
    g = gcd(src, SAMPLE_RATE)
    out = resample_poly(np.asarray(audio, np.float64), SAMPLE_RATE // g, src // g)
    return out.astype(np.float32)


def normalize_peak(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio if m <= 0 else (audio * (peak / m)).astype(np.float32)


def utterance_path(root: Path, subset: str, speaker: str, chapter: str, index: int) -> Path:
    return Path(root) / subset / speaker / chapter / f"{speaker}-{chapter}-{index:04d}.flac"


def write_flac(path: Path, audio: np.ndarray) -> None:
    """Atomically write 16 kHz mono 16-bit FLAC (a killed build never leaves a half file)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(str(tmp), pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)
