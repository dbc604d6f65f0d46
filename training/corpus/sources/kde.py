"""Real speech from two Debian KDE-Edu data packages: ``klettres-data`` and ``ktuberling-data``.

- ``klettres-data``: letters and syllables read aloud, ``usr/share/klettres/<lang>/{alpha,syllab}/*.ogg``
  (Vorbis, mostly 44.1 kHz; one Danish folder at 128 kHz).
- ``ktuberling-data``: single words, ``usr/share/ktuberling/sounds/<lang>/*.{ogg,wav,opus}`` (Vorbis, PCM WAV,
  Opus; 8-48 kHz). The four Serbian folders (``sr``, ``sr@latin``, ...) hold byte-identical copies: every file
  is taken once (sha256 of its bytes).

Licence: both packages' ``usr/share/doc/*/copyright`` give ``Files: *`` (the sounds included) as GPL-2+
(KLettres: (c) 2001-2011 Anne-Marie Mahfouf et al.; KTuberling: (c) 1999-2017 Albert Astals Cid, Eric Bischoff,
KDE Team et al.). The KLettres handbook credits one or two readers per language (e.g. English: Robert Wadley,
French: Ludovic Grossard); KTuberling credits none.

Every clip: decoded with soundfile, downmixed (a channel under 1 % of the loudest one's RMS is left out), resampled
to 16 kHz with ``pnsc.shared.audio.resample``, leading/trailing silence cut (``trim_silence``), scaled down only
when its peak exceeds ``MAX_PEAK`` (Vorbis overshoot, float-coded files), written as 16-bit FLAC. Dropped:
source rate under 16 kHz (narrowband), clipped (peak >= 0.95 FS and >= 0.5 % of samples within 10 % of the peak),
effectively band-limited (4-8 kHz energy under -60 dB of the total), active span (first to last frame within
35 dB of the loudest) shorter than ``MIN_SECONDS``; 0.1 s of the surrounding signal is kept either side.

Speakers: nothing in either package labels the voice of a file, and several folders mix voices (e.g. ktuberling
ca/da/ru: a male and a female reader; klettres de: alpha and syllab read by different people). Within each
(package, language), clips are split into two voices only when (1) their median F0 forms two clusters (two-means
on log F0) whose centres differ by >= ``SPLIT_RATIO`` and that each hold >= ``SPLIT_MIN_SHARE`` of the clips, and
(2) the shipped speaker encoder confirms it: the cosine distance between the two clusters' mean embeddings is
>= ``MIN_VOICE_DISTANCE`` (0.4: about the 5th percentile of LibriSpeech between-speaker distances, above the
95th percentile of same-speaker ones, 0.34). Otherwise the language is one voice (e.g. klettres lt and ktuberling
en: two pitch clusters, one voice by the encoder). Same-pitch voices stay merged: never more ids than real voices.
Ids: ``kle_<lang>`` / ``ktu_<lang>`` (``_lo`` / ``_hi`` suffix for the lower / higher voice of a split).
Sex is inferred from pitch (median F0 < 165 Hz: M, > 180 Hz: F, else ``?``; ``?`` too for a language whose
pitch clusters the encoder merged); a child reads as F.
``<corpus>/<subset>/speakers.json`` records, per speaker, the sex, language, F0, clips and minutes, and what was
dropped and why.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pnsc.shared.audio import resample
from pnsc.shared.constants import SAMPLE_RATE

from .common import utterance_path, write_flac


@dataclass(frozen=True)
class Package:
    """One Debian package: where its per-language folders are and how its speaker ids start."""

    source: str   # manifest source name
    deb: str      # Debian package name
    subset: str   # corpus subset folder
    prefix: str   # speaker id prefix
    sounds: str   # folder of the language folders inside the package


PACKAGES = {
    "klettres": Package("klettres", "klettres-data", "kde-klettres", "kle", "usr/share/klettres"),
    "ktuberling": Package("ktuberling", "ktuberling-data", "kde-ktuberling", "ktu", "usr/share/ktuberling/sounds"),
}
ATTRIBUTION = {
    "klettres": "Debian klettres-data (KDE KLettres letters and syllables, GPL-2+, (c) 2001-2011 Anne-Marie "
                "Mahfouf et al.; readers credited in the KLettres handbook), 16 kHz FLAC",
    "ktuberling": "Debian ktuberling-data (KDE KTuberling single words, GPL-2+, (c) 1999-2017 Albert Astals Cid, "
                  "Eric Bischoff, KDE Team et al.), 16 kHz FLAC",
}
AUDIO_SUFFIXES = (".ogg", ".wav", ".opus", ".oga", ".flac")
MIN_SOURCE_RATE = 16000
MIN_SECONDS = 0.2          # clips with a shorter active span (first to last active frame) are dropped;
                           # with the 0.1 s kept either side a clip is >= 0.4 s: two 150 ms training sequences
MIN_SPEAKER_SECONDS = 10.0  # a voice with less kept audio is dropped (too little to train or group on)
MAX_PEAK = 0.98
SPLIT_RATIO = 1.5
SPLIT_MIN_SHARE = 0.1
SPLIT_MIN_CLIPS = 8
MIN_VOICE_DISTANCE = 0.4
HF_MIN_DB = -60.0


class KdeError(Exception):
    pass


@dataclass
class Clip:
    """One decoded, trimmed 16 kHz clip and where it came from."""

    language: str
    chapter: str
    name: str
    audio: np.ndarray
    f0: float | None


@dataclass
class BuildResult:
    source: str
    speakers: dict[str, dict] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    clips: int = 0
    splits: dict[str, dict] = field(default_factory=dict)


# ---------------------------------------------------------------- package

def fetch_package(source: str, workdir: Path) -> Path:
    """``apt-get download`` the package (once) and ``dpkg -x`` it; return its sounds folder."""
    pkg = _package(source)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"x-{source}"
    sounds = target / pkg.sounds
    if sounds.is_dir():
        return sounds
    debs = sorted(workdir.glob(f"{pkg.deb}_*.deb"))
    if not debs:
        try:
            subprocess.run(["apt-get", "download", pkg.deb], cwd=workdir, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise KdeError(f"cannot download Debian package {pkg.deb} (run 'apt-get update' first?): {exc}") from exc
        debs = sorted(workdir.glob(f"{pkg.deb}_*.deb"))
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(target)], check=True)
    if not sounds.is_dir():
        raise KdeError(f"{debs[-1]} has no folder {pkg.sounds}")
    return sounds


def _package(source: str) -> Package:
    if source not in PACKAGES:
        raise KdeError(f"unknown KDE source {source!r} (known: {sorted(PACKAGES)})")
    return PACKAGES[source]


def list_files(source: str, sounds: Path) -> list[tuple[str, str, Path]]:
    """``(language, chapter, path)`` for every audio file, byte-identical copies left out."""
    sounds = Path(sounds)
    out, seen = [], set()
    for lang_dir in sorted(p for p in sounds.iterdir() if p.is_dir()):
        for path in sorted(lang_dir.rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            out.append((lang_dir.name, _chapter(source, lang_dir, path), path))
    return out


def _chapter(source: str, lang_dir: Path, path: Path) -> str:
    """klettres: the sub-folder (alpha / syllab); ktuberling: the playground theme prefix, else ``words``."""
    if source == "klettres":
        rel = path.relative_to(lang_dir)
        return rel.parts[0] if len(rel.parts) > 1 else "main"
    stem = path.stem
    return stem.split("_", 1)[0].lower() if "_" in stem else "words"


def speaker_base(prefix: str, language: str) -> str:
    """``kle`` + ``pt_BR`` -> ``kle_ptbr``, ``ktu`` + ``sr@latin`` -> ``ktu_srlatin``."""
    return f"{prefix}_{''.join(c for c in language.lower() if c.isalnum())}"


# ---------------------------------------------------------------- audio

def downmix(data: np.ndarray) -> np.ndarray:
    """``(n, ch)`` -> ``(n,)``: the mean of the channels that carry signal (>= 1 % of the loudest RMS)."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        return data
    rms = np.sqrt(np.mean(data.astype(np.float64) ** 2, axis=0))
    keep = rms >= 0.01 * rms.max() if rms.max() > 0 else np.ones(data.shape[1], bool)
    return data[:, keep].mean(axis=1)


def clipped(x: np.ndarray) -> bool:
    """True when the clip reached full scale and sits there: peak >= 0.95 and >= 0.5 % of the samples within
    10 % of the peak (a Vorbis-coded clipped plateau rings around 1.0, so 'within 10 %' catches it)."""
    if x.size == 0:
        return False
    peak = float(np.max(np.abs(x)))
    return peak >= 0.95 and float(np.mean(np.abs(x) >= 0.9 * peak)) >= 0.005


def active_span(x: np.ndarray, rel_db: float = -35.0, floor_db: float = -65.0) -> tuple[int, int]:
    """``(start, end)`` samples from the first to the last active 20 ms frame: louder than ``rel_db`` below the
    loudest frame and than ``floor_db`` re full scale; ``(0, 0)`` when nothing is active."""
    frame = SAMPLE_RATE // 50
    n = len(x) // frame
    if n == 0:
        return 0, 0
    energy = 10 * np.log10(np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.nonzero(energy > max(energy.max() + rel_db, floor_db))[0]
    if active.size == 0:
        return 0, 0
    return int(active[0] * frame), int((active[-1] + 1) * frame)


def trim_silence(x: np.ndarray, pad: float = 0.1) -> np.ndarray:
    """Cut leading/trailing silence (``active_span``), keeping ``pad`` seconds either side."""
    start, end = active_span(x)
    if end <= start:
        return x[:0]
    p = int(pad * SAMPLE_RATE)
    return x[max(0, start - p): min(len(x), end + p)]


def hf_db(x: np.ndarray) -> float:
    """Energy above 4 kHz relative to the total, dB (near -inf for a narrowband clip upsampled to 16 kHz)."""
    spec = np.abs(np.fft.rfft(np.asarray(x, np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / SAMPLE_RATE)
    return float(10 * np.log10((spec[freqs > 4000].sum() + 1e-20) / (spec.sum() + 1e-20)))


def median_f0(x: np.ndarray) -> float | None:
    """Median F0 (Hz) of the clip's loud voiced 40 ms frames (autocorrelation, 55-450 Hz); None if < 3 frames."""
    fl, hop = 640, 160
    if len(x) < fl:
        return None
    starts = range(0, len(x) - fl + 1, hop)
    frames = np.stack([x[s:s + fl] for s in starts]).astype(np.float64)
    energy = np.mean(frames ** 2, axis=1)
    frames = frames[energy >= energy.max() * 10 ** (-2.5)] * np.hanning(fl)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2048, axis=1)) ** 2, axis=1)[:, :420]
    ac /= ac[:, :1] + 1e-12
    lo, hi = SAMPLE_RATE // 450, SAMPLE_RATE // 55
    seg = ac[:, lo:hi + 1]
    k = np.argmax(seg, axis=1)
    ok = (k > 0) & (k < seg.shape[1] - 1) & (seg[np.arange(len(seg)), k] >= 0.5)
    if ok.sum() < 3:
        return None
    return float(np.median(SAMPLE_RATE / (lo + k[ok])))


def process_file(path: Path) -> tuple[np.ndarray | None, str | None]:
    """Decode, check and trim one file: ``(audio_16k, None)`` or ``(None, reason dropped)``."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001 - libsndfile raises several types for a broken file
        return None, "unreadable"
    if data.size == 0:
        return None, "empty"
    if rate < MIN_SOURCE_RATE:
        return None, "narrowband source (< 16 kHz)"
    x = downmix(data)
    if not np.all(np.isfinite(x)):
        return None, "unreadable"
    if clipped(x):
        return None, "clipped"
    y = resample(x.astype(np.float32), rate)
    start, end = active_span(y)
    if end - start < MIN_SECONDS * SAMPLE_RATE:
        return None, f"shorter than {MIN_SECONDS} s after trimming"
    y = trim_silence(y)
    if hf_db(y) < HF_MIN_DB:
        return None, "band-limited (no energy above 4 kHz)"
    peak = float(np.max(np.abs(y)))
    if peak > MAX_PEAK:
        y = y * (MAX_PEAK / peak)
    return np.ascontiguousarray(y, dtype=np.float32), None


# ---------------------------------------------------------------- voices

def split_voices(f0s: list[float | None]) -> list[int] | None:
    """Voice index per clip (0 = lower, 1 = higher pitch) when the clips' F0 form two clusters (see module doc),
    clips without F0 get -1; None when the clips are one voice."""
    idx = [i for i, f in enumerate(f0s) if f]
    if len(idx) < 2 * SPLIT_MIN_CLIPS:
        return None
    logs = np.log(np.array([f0s[i] for i in idx], dtype=np.float64))
    order = np.argsort(logs, kind="stable")
    s = logs[order]
    best, cut = np.inf, 0
    for c in range(1, len(s)):  # exact 1-D two-means: the best split of the sorted values
        cost = s[:c].var() * c + s[c:].var() * (len(s) - c)
        if cost < best:
            best, cut = cost, c
    lo_c, hi_c = np.exp(s[:cut].mean()), np.exp(s[cut:].mean())
    n_min = min(cut, len(s) - cut)
    if hi_c / lo_c < SPLIT_RATIO or n_min < max(SPLIT_MIN_CLIPS, SPLIT_MIN_SHARE * len(s)):
        return None
    out = [-1] * len(f0s)
    threshold = s[cut - 1]
    for i, f in zip(idx, logs):
        out[i] = 0 if f <= threshold else 1
    return out


def voice_embedding(clips: list[np.ndarray], encoder=None) -> np.ndarray | None:
    """Unit-norm mean embedding (shipped speaker encoder) of the 3 s active-speech segments of the clips
    played back to back; None when there is too little active speech."""
    from pnsc.sender import speaker_frontend as fe
    from pnsc.training.speaker.grouping import utterance_segments

    if encoder is None:
        from pnsc.sender.speaker_classifier import SpeakerClassifier

        encoder = SpeakerClassifier().encoder
    feats = fe.active_features(np.concatenate(clips).astype(np.float32))
    embs = [encoder.embed(seg) for seg in utterance_segments(feats, allow_short=True)]
    if not embs:
        return None
    z = np.mean(embs, axis=0)
    return z / (np.linalg.norm(z) + 1e-12)


def voice_distance(a: list[np.ndarray], b: list[np.ndarray], encoder=None) -> float | None:
    """Cosine distance between two sets of clips' mean embeddings (None if either has too little speech)."""
    za, zb = voice_embedding(a, encoder), voice_embedding(b, encoder)
    return None if za is None or zb is None else float(1.0 - za @ zb)


def sex_from_f0(f0: float | None) -> str:
    if f0 is None:
        return "?"
    return "M" if f0 < 165 else "F" if f0 > 180 else "?"


# ---------------------------------------------------------------- build

def build_source(source: str, sounds: Path, corpus: Path, languages: list[str] | None = None,
                 progress: bool = True) -> BuildResult:
    """Decode every clip of one package into ``<corpus>/<subset>/<speaker>/<chapter>/`` and write
    ``<corpus>/<subset>/speakers.json``. Existing FLAC files are kept (resumable)."""
    pkg = _package(source)
    files = list_files(source, sounds)
    if languages is not None:
        files = [f for f in files if f[0] in languages]
    if not files:
        raise KdeError(f"no audio files under {sounds}")
    result = BuildResult(source)
    by_lang: dict[str, list[Clip]] = {}
    for n, (lang, chapter, path) in enumerate(files, 1):
        audio, reason = process_file(path)
        if audio is None:
            result.dropped[reason] = result.dropped.get(reason, 0) + 1
        else:
            by_lang.setdefault(lang, []).append(Clip(lang, chapter, path.stem, audio, median_f0(audio)))
        if progress and (n % 200 == 0 or n == len(files)):
            print(f"{source}: {n}/{len(files)} files", flush=True)
    out_dir = Path(corpus) / pkg.subset
    written: set[Path] = set()
    splits: dict[str, dict] = {}
    for lang, clips in sorted(by_lang.items()):
        base = speaker_base(pkg.prefix, lang)
        voices = split_voices([c.f0 for c in clips])
        if voices is not None:
            parts = [[c.audio for c, v in zip(clips, voices) if v == k] for k in (0, 1)]
            dist = voice_distance(*parts)
            f0s = [[c.f0 for c, v in zip(clips, voices) if v == k] for k in (0, 1)]
            splits[lang] = {"pitch_clusters_hz": [round(float(np.median(f)), 1) for f in f0s],
                            "clips": [len(p) for p in parts],
                            "encoder_distance": None if dist is None else round(dist, 3),
                            "split": dist is not None and dist >= MIN_VOICE_DISTANCE}
            if not splits[lang]["split"]:
                voices = None
        groups: dict[str, list[Clip]] = {}
        for i, clip in enumerate(clips):
            if voices is None:
                groups.setdefault(base, []).append(clip)
            elif voices[i] < 0:
                result.dropped["no pitch in a two-voice folder"] = result.dropped.get("no pitch in a two-voice folder", 0) + 1
            else:
                groups.setdefault(f"{base}_{('lo', 'hi')[voices[i]]}", []).append(clip)
        for speaker, members in sorted(groups.items()):
            seconds = sum(len(c.audio) for c in members) / SAMPLE_RATE
            if seconds < MIN_SPEAKER_SECONDS:
                key = f"voice with < {MIN_SPEAKER_SECONDS:.0f} s"
                result.dropped[key] = result.dropped.get(key, 0) + len(members)
                continue
            chapters: dict[str, int] = {}
            for clip in members:
                index = chapters.get(clip.chapter, 0)
                chapters[clip.chapter] = index + 1
                path = utterance_path(Path(corpus), pkg.subset, speaker, clip.chapter, index)
                if not path.exists():
                    write_flac(path, clip.audio)
                written.add(path)
            f0s = [c.f0 for c in members if c.f0]
            f0 = float(np.median(f0s)) if f0s else None
            result.speakers[speaker] = {
                "language": lang, "sex": "?" if lang in splits and not splits[lang]["split"] else sex_from_f0(f0), "f0_hz": round(f0, 1) if f0 else None,
                "clips": len(members), "minutes": round(seconds / 60, 3), "chapters": dict(sorted(chapters.items())),
                "voices_in_language": 1 if voices is None else 2}
            result.seconds += seconds
            result.clips += len(members)
    result.splits = splits
    out_dir.mkdir(parents=True, exist_ok=True)
    if languages is None:
        _remove_stale(out_dir, written)
    state = {"source": source, "package": pkg.deb, "note": ATTRIBUTION[source],
             "rules": {"min_source_rate": MIN_SOURCE_RATE, "min_seconds": MIN_SECONDS,
                       "min_speaker_seconds": MIN_SPEAKER_SECONDS, "split_ratio": SPLIT_RATIO,
                       "split_min_share": SPLIT_MIN_SHARE, "min_voice_distance": MIN_VOICE_DISTANCE,
                       "hf_min_db": HF_MIN_DB},
             "files": len(files), "kept_clips": result.clips, "kept_minutes": round(result.seconds / 60, 2),
             "dropped": dict(sorted(result.dropped.items())), "pitch_splits": splits, "speakers": result.speakers}
    tmp = out_dir / "speakers.json.tmp"
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "speakers.json")
    return result


def _remove_stale(out_dir: Path, written: set[Path]) -> None:
    """Delete FLAC files (and emptied folders) a previous build wrote that this build did not."""
    for path in sorted(out_dir.glob("*/*/*.flac")):
        if path not in written:
            path.unlink()
    for folder in sorted(out_dir.glob("*/*"), reverse=True) + sorted(out_dir.glob("*")):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def speaker_sex(corpus: Path) -> dict[str, str]:
    """Sex of the KDE speakers built into ``corpus`` (from each subset's ``speakers.json``)."""
    out = {}
    for pkg in PACKAGES.values():
        state = Path(corpus) / pkg.subset / "speakers.json"
        if state.is_file():
            out.update({spk: info.get("sex", "?") for spk, info in json.loads(state.read_text())["speakers"].items()})
    return out
