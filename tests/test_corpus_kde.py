"""KDE real-speech sources (klettres-data, ktuberling-data): decoding, trimming, drop rules, voice ids, manifest.

Synthetic clips in the packages' real layout (``<lang>/{alpha,syllab}/*.ogg``) test the reader without network;
one test reads the real ktuberling package when it is present under data/debs (skipped otherwise).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from corpus_fixture import make_generated, make_librispeech, voice  # noqa: E402

from pnsc.training.corpus.librispeech import scan_corpus  # noqa: E402
from pnsc.training.corpus.manifest import build_manifest  # noqa: E402
from pnsc.training.corpus.sources import kde  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MALE = ((600, 90), (1100, 80), (2400, 150))
SPEECH_S, PAD_S = 1.3, 0.5


def _clip(f0: float, seed: int, seconds: float = SPEECH_S, rate: int = 44100, gain: float = 1.0) -> np.ndarray:
    """Voice (16 kHz fixture) resampled to ``rate``, with ``PAD_S`` of faint noise either side."""
    x = voice(f0, MALE, seconds, seed).astype(np.float64)
    x = (x + 0.02 * np.random.default_rng(seed + 99).standard_normal(len(x))) * gain  # breath: energy above 4 kHz
    x = resample_poly(x, rate // 100, 160) if rate != 16000 else x
    pad = 1e-4 * np.random.default_rng(seed).standard_normal(int(PAD_S * rate))
    return np.concatenate([pad, x, pad]).astype(np.float32)


def _write(path: Path, x: np.ndarray, rate: int, stereo: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.stack([x, np.zeros_like(x)], axis=1) if stereo else x  # stereo with a dead right channel
    if path.suffix == ".ogg":
        sf.write(str(path), data, rate, format="OGG", subtype="VORBIS")
    else:
        sf.write(str(path), data, rate, subtype="PCM_16")


@pytest.fixture(scope="module")
def klettres(tmp_path_factory) -> Path:
    """klettres layout: fr (one voice, 12 good clips + short + clipped), de (too little audio), an 8 kHz file,
    and a folder holding only a byte-identical copy."""
    root = tmp_path_factory.mktemp("klettres") / "usr/share/klettres"
    for i in range(8):
        _write(root / "fr/alpha" / f"a{i}.ogg", _clip(120, i), 44100, stereo=(i == 0))
    for i in range(4):
        _write(root / "fr/syllab" / f"s{i}.ogg", _clip(120, 20 + i), 44100)
    _write(root / "fr/alpha/short.ogg", _clip(120, 40, seconds=0.1), 44100)
    _write(root / "fr/alpha/clipped.wav", np.clip(_clip(120, 41, gain=6.0), -1, 1), 44100)
    _write(root / "fr/alpha/narrow.wav", _clip(120, 42, rate=8000), 8000)
    for i in range(2):
        _write(root / "de/alpha" / f"d{i}.ogg", _clip(110, 50 + i), 44100)
    (root / "frcopy/alpha").mkdir(parents=True)
    shutil.copy(root / "fr/alpha/a1.ogg", root / "frcopy/alpha/a1.ogg")
    return root


def test_build_source_layout_trim_and_drops(klettres, tmp_path):
    r = kde.build_source("klettres", klettres, tmp_path, progress=False)
    assert sorted(r.speakers) == ["kle_fr"]
    info = r.speakers["kle_fr"]
    assert info["clips"] == 12 and info["chapters"] == {"alpha": 8, "syllab": 4}
    assert info["sex"] == "M" and abs(info["f0_hz"] - 120) < 12 and info["voices_in_language"] == 1
    assert r.dropped == {"clipped": 1, "narrowband source (< 16 kHz)": 1,
                         f"shorter than {kde.MIN_SECONDS} s after trimming": 1, "voice with < 10 s": 2}
    files = sorted((tmp_path / "kde-klettres/kle_fr").glob("*/*.flac"))
    assert len(files) == 12 and files[0].name == "kle_fr-alpha-0000.flac"
    for f in files:
        info = sf.info(str(f))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        # 0.5 s of padding noise each side is cut down to the 0.1 s kept pad (20 ms frame resolution)
        assert SPEECH_S + 0.1 <= info.duration <= SPEECH_S + 2 * 0.1 + 0.05
    first = sf.read(str(files[0]))[0]  # the stereo clip with a dead channel is not halved by the downmix
    assert 0.3 < np.max(np.abs(first)) <= kde.MAX_PEAK
    state = json.loads((tmp_path / "kde-klettres/speakers.json").read_text())
    assert state["kept_clips"] == 12 and state["speakers"]["kle_fr"]["language"] == "fr"
    assert "GPL-2+" in state["note"]
    assert kde.speaker_sex(tmp_path) == {"kle_fr": "M"}
    assert {u.speaker for u in scan_corpus(tmp_path, ["kde-klettres"])} == {"kle_fr"}


def test_rebuild_keeps_files_and_removes_stale_ones(klettres, tmp_path):
    kde.build_source("klettres", klettres, tmp_path, progress=False)
    stale = tmp_path / "kde-klettres/kle_xx/alpha/kle_xx-alpha-0000.flac"
    stale.parent.mkdir(parents=True)
    shutil.copy(next((tmp_path / "kde-klettres/kle_fr/alpha").glob("*.flac")), stale)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "kde-klettres/kle_fr").rglob("*.flac")}
    kde.build_source("klettres", klettres, tmp_path, progress=False)
    assert not stale.exists() and not stale.parent.parent.exists()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "kde-klettres/kle_fr").rglob("*.flac")} == before


def test_real_only_manifest_includes_kde_as_real_train_speakers(klettres, tmp_path):
    libri = make_librispeech(tmp_path / "libri")
    gen = make_generated(tmp_path / "gen")
    kde.build_source("klettres", klettres, gen, progress=False)
    man = build_manifest(gen, libri, seed=0, n_val=2, include_generated=False)
    by = {s["speaker"]: s for s in man["speakers"]}
    assert by["kle_fr"]["source"] == "klettres" and by["kle_fr"]["real"] and by["kle_fr"]["split"] == "train"
    assert by["kle_fr"]["sex"] == "M" and by["ast_fr"]["real"]  # real generated sources stay with --real-only
    assert not any(s["source"] == "piper" for s in man["speakers"])
    assert man["sources"]["klettres"]["note"].startswith("Debian klettres-data")
    full = build_manifest(gen, libri, seed=0, n_val=2)
    assert any(s["source"] == "piper" for s in full["speakers"])


def test_split_voices_needs_two_distinct_sizable_pitch_clusters():
    low, high = [110 + 3 * (i % 5) for i in range(20)], [230 + 4 * (i % 5) for i in range(15)]
    labels = kde.split_voices(low + high + [None])
    assert labels == [0] * 20 + [1] * 15 + [-1]
    assert kde.split_voices(low + [150 + i for i in range(15)]) is None   # centres closer than SPLIT_RATIO
    assert kde.split_voices(low + high[:3]) is None                         # minority under SPLIT_MIN_CLIPS
    assert kde.split_voices(low[:5]) is None
    assert kde.sex_from_f0(120) == "M" and kde.sex_from_f0(230) == "F" and kde.sex_from_f0(172) == "?"


def test_signal_helpers():
    x = voice(150, MALE, 1.0, 3)
    assert abs(kde.median_f0(x) - 150) < 8
    assert kde.median_f0(np.zeros(16000, np.float32)) is None
    padded = np.concatenate([np.zeros(8000), x, np.zeros(8000)]).astype(np.float32)
    assert abs(len(kde.trim_silence(padded)) - (16000 + 2 * 1600)) <= 320
    assert len(kde.trim_silence(np.zeros(8000, np.float32))) == 0
    breathy = x + 0.02 * np.random.default_rng(0).standard_normal(len(x))
    spec = np.fft.rfft(breathy)
    spec[np.fft.rfftfreq(len(breathy), 1 / 16000) > 3800] = 0  # what an 8 kHz recording upsampled looks like
    assert kde.hf_db(breathy) > -40 and kde.hf_db(np.fft.irfft(spec, len(breathy))) < -60
    assert not kde.clipped(x) and kde.clipped(np.clip(4 * x, -1, 1))
    stereo = np.stack([x, np.zeros_like(x)], axis=1)
    assert np.allclose(kde.downmix(stereo), x)
    assert kde.speaker_base("kle", "pt_BR") == "kle_ptbr" and kde.speaker_base("ktu", "sr@latin") == "ktu_srlatin"


def test_errors_are_clear(tmp_path):
    with pytest.raises(kde.KdeError, match="unknown KDE source"):
        kde.fetch_package("kbruch", tmp_path)
    (tmp_path / "empty/xx").mkdir(parents=True)
    with pytest.raises(kde.KdeError, match="no audio files"):
        kde.build_source("klettres", tmp_path / "empty", tmp_path / "corpus", progress=False)
    bad = tmp_path / "bad/fr/alpha/x.ogg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an ogg file")
    assert kde.process_file(bad) == (None, "unreadable")
    out = subprocess.run([sys.executable, str(REPO / "scripts/build_corpus.py"), "--corpus", str(tmp_path / "c"),
                          "kde", "--workdir", str(tmp_path), "--sources", "kbruch"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("pnsc: error: unknown KDE source 'kbruch'")


def _real_ktuberling(tmp_path: Path) -> Path | None:
    debs = REPO / "data" / "debs"
    sounds = debs / "x-ktuberling" / kde.PACKAGES["ktuberling"].sounds
    if sounds.is_dir():
        return sounds
    found = sorted(debs.glob("ktuberling-data_*.deb")) if debs.is_dir() else []
    if not found or shutil.which("dpkg") is None:
        return None
    subprocess.run(["dpkg", "-x", str(found[-1]), str(tmp_path / "x")], check=True)
    return tmp_path / "x" / kde.PACKAGES["ktuberling"].sounds


def test_real_ktuberling_voices(tmp_path):
    sounds = _real_ktuberling(tmp_path)
    if sounds is None:
        pytest.skip("ktuberling-data not under data/debs (python scripts/build_corpus.py kde fetches it)")
    files = kde.list_files("ktuberling", sounds)
    serbian = [f for f in files if f[0].startswith("sr")]
    assert len(serbian) == 15 and {f[0] for f in serbian} == {"sr"}  # four byte-identical folders, taken once
    r = kde.build_source("ktuberling", sounds, tmp_path / "corpus", languages=["ca", "en"], progress=False)
    # ca: a male and a female reader (pitch clusters confirmed by the speaker encoder); en: one voice
    assert sorted(r.speakers) == ["ktu_ca_hi", "ktu_ca_lo", "ktu_en"]
    assert r.splits["ca"]["split"] and not r.splits["en"]["split"]
    assert r.speakers["ktu_ca_lo"]["sex"] == "M" and r.speakers["ktu_ca_hi"]["sex"] == "F"
    assert r.speakers["ktu_en"]["sex"] == "?"
