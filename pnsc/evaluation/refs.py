"""Reference utterances for ``pnsc eval``.

Default set (held-out real speech no decoder was trained on): the five LibriSpeech test-other
speakers in ``../shared/data/librispeech-excerpts`` (``$PNSC_SHARED_DIR`` overrides ``../shared``),
``per_speaker`` utterances each, plus prompts of the US English Asterisk voice (Allison) when the
Debian package ``asterisk-core-sounds-en-g722`` is installed (``$PNSC_ASTERISK_EN_DIR`` overrides
its folder).  That voice is evaluation-only material: never used for training or tuning.
``--refs DIR`` takes every WAV/FLAC file under a folder instead.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pnsc.shared.paths import SHARED_ENV, shared_data_dir

from .errors import EvalError

AUDIO_SUFFIXES = (".wav", ".flac")
ASTERISK_EN_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_MIN_SECONDS = 3.0
LIBRISPEECH_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass
class Utterance:
    id: str
    speaker: str
    source: str
    audio: np.ndarray = field(repr=False)  # float32 16 kHz in [-1, 1]

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000.0


def shared_dir() -> Path:
    """``$PNSC_SHARED_DIR`` or the ``shared`` folder beside the repository checkout."""
    d = shared_data_dir()
    if d is None:
        raise FileNotFoundError(f"no shared data folder: set {SHARED_ENV} or give --refs DIR")
    return d


def _crop(x: np.ndarray, max_seconds: float | None) -> np.ndarray:
    if max_seconds is None or max_seconds <= 0:
        return x
    return x[: int(round(max_seconds * 16000))]


def speaker_of(path: Path) -> str:
    m = LIBRISPEECH_NAME.match(path.stem)
    return m.group(1) if m else path.parent.name


def load_folder(folder: str | Path, max_seconds: float | None = None, limit: int | None = None,
                source: str = "refs") -> list[Utterance]:
    """Every WAV/FLAC file under ``folder`` (sorted), cropped to ``max_seconds``."""
    from pnsc.shared.audio import load_audio

    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"reference folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise EvalError(f"no .wav or .flac files under {folder}")
    if limit:
        files = files[:limit]
    return [Utterance(p.stem, speaker_of(p), source, _crop(load_audio(p, quiet=True), max_seconds)) for p in files]


def librispeech_test(per_speaker: int, max_seconds: float | None) -> list[Utterance]:
    from pnsc.shared.audio import load_audio

    root = shared_dir() / "data" / "librispeech-excerpts" / "test-other"
    if not root.is_dir():
        raise EvalError(f"test speakers not found at {root} (set PNSC_SHARED_DIR, or pass --refs DIR)")
    out = []
    for spk in sorted(p for p in root.iterdir() if p.is_dir()):
        for p in sorted(spk.rglob("*.flac"))[:per_speaker]:
            out.append(Utterance(p.stem, spk.name, "librispeech test-other",
                                 _crop(load_audio(p, quiet=True), max_seconds)))
    return out


def asterisk_dir() -> Path:
    env = os.environ.get("PNSC_ASTERISK_EN_DIR")
    return Path(env) if env else ASTERISK_EN_DIR


def asterisk_en(count: int, max_seconds: float | None) -> list[Utterance]:
    """``count`` prompts of at least 3 s, spread evenly over the sorted prompt list; [] if not installed."""
    folder = asterisk_dir()
    if count <= 0 or not folder.is_dir():
        return []
    from pnsc.training.corpus.sources.asterisk import decode_g722, trim_silence

    files = sorted(p for p in folder.glob("*.g722") if p.stat().st_size >= ASTERISK_MIN_SECONDS * 8000)
    if not files:
        return []
    picks = [files[int(i)] for i in np.linspace(0, len(files) - 1, min(count, len(files)))]
    out = []
    for p in picks:
        audio = trim_silence(decode_g722(p.read_bytes()))
        if len(audio) >= ASTERISK_MIN_SECONDS * 16000:
            out.append(Utterance(f"ast-en-{p.stem}", "asterisk-en", "asterisk-core-sounds-en (held out)",
                                 _crop(audio, max_seconds)))
    return out


def default_refs(per_speaker: int = 3, asterisk: int = 5, max_seconds: float | None = 6.0) -> list[Utterance]:
    """Test-other speakers (``per_speaker`` each) plus ``asterisk`` held-out English prompts if installed."""
    return librispeech_test(per_speaker, max_seconds) + asterisk_en(asterisk, max_seconds)
