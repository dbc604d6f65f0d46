"""Real studio speech from Debian ``asterisk-core-sounds-{fr,it,ru}-g722`` (G.722 at 64 kb/s, 16 kHz).

Each package holds one professional voice (French: June, female; Italian: Carlo, male; Russian: female),
so each language is exactly one speaker id: no identities are fabricated from one real voice.
The ``-en`` and ``-es`` packages are held-out evaluation material and are refused here.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import utterance_path, write_flac

SUBSET = "studio-asterisk"
LANGUAGES = {  # language -> (speaker id, sex, voice folder)
    "fr": ("ast_fr", "F", "fr_CA_f_June"),
    "it": ("ast_it", "M", "it_IT_m_Carlo"),
    "ru": ("ast_ru", "F", "ru_RU_f_IvrvoiceRU"),
}
FORBIDDEN = ("en", "es")  # held-out evaluation voices: never train or tune on them
MIN_SECONDS = 0.5


class AsteriskError(Exception):
    pass


@dataclass
class SpeakerResult:
    speaker: str
    sex: str
    language: str
    files: int
    seconds: float


def package_name(lang: str) -> str:
    if lang in FORBIDDEN or lang not in LANGUAGES:
        raise AsteriskError(f"language {lang!r} is not allowed (allowed: {sorted(LANGUAGES)}; "
                            f"{FORBIDDEN} are reserved for held-out evaluation)")
    return f"asterisk-core-sounds-{lang}-g722"


def fetch_package(lang: str, workdir: Path) -> Path:
    """``apt-get download`` the package (once) and ``dpkg -x`` it; return the voice folder."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name = package_name(lang)
    voice_dir = workdir / f"x-{lang}" / "usr/share/asterisk/sounds" / LANGUAGES[lang][2]
    if voice_dir.is_dir():
        return voice_dir
    debs = sorted(workdir.glob(f"{name}_*.deb"))
    if not debs:
        try:
            subprocess.run(["apt-get", "download", name], cwd=workdir, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise AsteriskError(f"cannot download Debian package {name} (run 'apt-get update' first?): {exc}") from exc
        debs = sorted(workdir.glob(f"{name}_*.deb"))
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(workdir / f"x-{lang}")], check=True)
    if not voice_dir.is_dir():
        raise AsteriskError(f"{debs[-1]} has no folder {voice_dir}")
    return voice_dir


def decode_g722(data: bytes) -> np.ndarray:
    """Decode 64 kb/s G.722 (raw, as Asterisk stores it) to float32 16 kHz in [-1, 1]."""
    import G722

    if len(data) == 0:
        raise AsteriskError("empty G.722 file")
    codec = G722.G722(16000, 64000)
    pcm = np.asarray(codec.decode(bytes(data)), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def trim_silence(x: np.ndarray, threshold_db: float = -45.0, pad: int = 1600) -> np.ndarray:
    """Cut leading/trailing silence (20 ms frames below ``threshold_db`` re full scale), keep ``pad``."""
    frame = 320
    n = len(x) // frame
    if n == 0:
        return x
    energy = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.nonzero(energy > threshold_db)[0]
    if active.size == 0:
        return x[:0]
    return x[max(0, active[0] * frame - pad): min(len(x), (active[-1] + 1) * frame + pad)]


def build_language(lang: str, voice_dir: Path, out_root: Path) -> SpeakerResult:
    """Decode every prompt of one language into ``out_root/studio-asterisk/<speaker>/<folder>/``."""
    speaker, sex, _ = LANGUAGES[lang]
    files = sorted(p for p in Path(voice_dir).rglob("*.g722") if "silence" not in p.relative_to(voice_dir).parts)
    if not files:
        raise AsteriskError(f"no .g722 files under {voice_dir}")
    count, seconds = 0, 0.0
    chapters: dict[str, int] = {}
    for path in files:
        rel = path.relative_to(voice_dir)
        folder = rel.parts[0] if len(rel.parts) > 1 else "main"
        chapter = f"{lang}{folder}".replace("-", "").replace("_", "")
        index = chapters.get(chapter, 0)
        chapters[chapter] = index + 1
        data = path.read_bytes()
        if not data:  # the packages ship a few zero-byte placeholders
            continue
        audio = trim_silence(decode_g722(data))
        if len(audio) < MIN_SECONDS * 16000:
            continue
        out = utterance_path(out_root, SUBSET, speaker, chapter, index)
        if not out.exists():
            write_flac(out, audio)
        count += 1
        seconds += len(audio) / 16000.0
    return SpeakerResult(speaker, sex, lang, count, seconds)
