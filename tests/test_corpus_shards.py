"""Audio shards: sizes, completeness, split integrity, determinism, resume and corruption errors."""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("tqdm", reason="training extra (tqdm) not installed")
sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from corpus_fixture import make_generated, make_librispeech  # noqa: E402

from pnsc.training.corpus.librispeech import CorpusError  # noqa: E402
from pnsc.training.corpus.manifest import build_manifest  # noqa: E402
from pnsc.training.corpus.shards import (  # noqa: E402
    HARD_LIMIT,
    ShardError,
    build_audio_shards,
    iter_shard_audio,
    load_index,
    read_shard_header,
    verify_shards,
)
from pnsc.training.corpus.splits import load_splits  # noqa: E402

TARGET_MIB = 0.05  # ~52 kB: forces several shards out of the few seconds of fixture audio


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("corpus")
    libri = make_librispeech(base / "libri")
    gen = make_generated(base / "gen")
    build_manifest(gen, libri, seed=0, n_val=2, splits_path=base / "splits.json")
    return gen / "manifest.json", base / "splits.json"


@pytest.fixture(scope="module")
def shards(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    build_audio_shards(corpus[0], out, target_mib=TARGET_MIB, progress=False)
    return out


def test_every_utterance_once_in_its_split(corpus, shards):
    manifest = json.loads(corpus[0].read_text())
    splits = load_splits(corpus[1])
    expected = {Path(f).stem for s in manifest["speakers"] for f in s["files"]}
    seen = []
    index = load_index(shards)
    assert index["complete"]
    assert len(index["shards"]) > 3
    for entry in index["shards"]:
        path = shards / entry["file"]
        assert path.stat().st_size == entry["bytes"] <= TARGET_MIB * 2**20 < HARD_LIMIT
        assert entry["file"].startswith(f"audio-{entry['split']}-")
        for rec, audio in iter_shard_audio(path):
            assert rec["split"] == entry["split"]
            assert rec["speaker"] in splits[rec["split"]]
            assert len(audio) == rec["samples"] > 0
            seen.append(rec["utt"])
    assert sorted(seen) == sorted(expected)


def test_deterministic_and_resumable(corpus, shards, tmp_path):
    other = build_audio_shards(corpus[0], tmp_path, target_mib=TARGET_MIB, progress=False)
    first = load_index(shards)
    assert [(s["file"], s["sha256"]) for s in other["shards"]] == [(s["file"], s["sha256"]) for s in first["shards"]]
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tar")}
    victim = sorted(mtimes)[1]
    (tmp_path / victim).write_bytes(b"garbage")
    assert verify_shards(tmp_path) == [victim]
    build_audio_shards(corpus[0], tmp_path, target_mib=TARGET_MIB, progress=False)
    assert verify_shards(tmp_path) == []
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tar")}
    assert [n for n in after if after[n] != mtimes[n]] == [victim]  # only the damaged shard was rebuilt


def test_corrupt_and_missing_inputs(corpus, shards, tmp_path):
    good = sorted(shards.glob("audio-train-*.tar"))[0]
    truncated = tmp_path / "cut.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(ShardError, match="corrupt"):
        list(iter_shard_audio(truncated))
    no_header = tmp_path / "nohdr.tar"
    with tarfile.open(no_header, "w"):
        pass
    with pytest.raises(ShardError, match="corrupt"):
        read_shard_header(no_header)
    with pytest.raises(CorpusError, match="manifest not found"):
        build_audio_shards(tmp_path / "none.json", tmp_path / "o", progress=False)
    broken = json.loads(corpus[0].read_text())
    broken["speakers"][0]["files"][0] = "train-clean-100/999/1/missing.flac"
    bad_manifest = tmp_path / "manifest.json"
    bad_manifest.write_text(json.dumps(broken))
    with pytest.raises(ShardError, match="missing.flac"):
        build_audio_shards(bad_manifest, tmp_path / "o2", progress=False)
    with pytest.raises(ShardError, match="index not found"):
        verify_shards(tmp_path / "nowhere")


def test_corrupt_flac_in_corpus_is_reported(corpus, tmp_path):
    manifest = json.loads(corpus[0].read_text())
    spk = manifest["speakers"][0]
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 100)
    spk["root"], spk["files"] = str(tmp_path), ["bad.flac"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="bad.flac"):
        build_audio_shards(path, tmp_path / "o", progress=False)
