"""Ogg Opus audio shards: round trip on real speech, packing, determinism, resume, mixed FLAC+Opus
readers, a corrupt member, the selection CLI."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("tqdm", reason="training extra (tqdm) not installed")

from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.training.corpus.audio_codec import (  # noqa: E402
    CodecError,
    _ogg_crc,
    decode_member,
    encode_member,
    opus_compression_level,
)
from pnsc.training.corpus.shards import (  # noqa: E402
    ShardError,
    _write_index,
    iter_shard_audio,
    load_index,
    read_shard_header,
    verify_shards,
    write_shard_tar,
)
from pnsc.training.corpus.transcode import transcode_shards  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "samples").glob("*.flac"))
CLIP = 48000  # 3 s of each sample clip
KBPS = 48.0
# Measured waveform SNR of Opus 48 kb/s on these clips: 18-27 dB (LibriSpeech validation: 20 dB);
# the same decode one sample late gives 3-13 dB.
MIN_SNR_DB = 14.0


def _records(split: str, clips: list[tuple[str, np.ndarray]]) -> tuple[list[dict], list[tuple[str, bytes]]]:
    records, members = [], []
    for utt, pcm in clips:
        records.append({"utt": utt, "speaker": utt.split("-")[0], "source": "librispeech", "real": True,
                        "split": split, "samples": len(pcm), "member": f"{utt}.flac"})
        members.append((f"{utt}.flac", encode_member(pcm, "flac")))
    return records, members


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    out = {}
    for p in SAMPLES:
        x = load_audio(p, quiet=True)[:CLIP]
        out[p.stem] = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    return out


@pytest.fixture(scope="module")
def flac_dir(clips, tmp_path_factory) -> Path:
    """Two FLAC train shards and one validation shard of real speech, with their index."""
    d = tmp_path_factory.mktemp("flac")
    names = sorted(clips)
    groups = {"audio-train-00000.tar": ("train", names[:2]), "audio-train-00001.tar": ("train", names[2:4]),
              "audio-validation-00000.tar": ("validation", names[4:])}
    entries = []
    for file, (split, utts) in groups.items():
        records, members = _records(split, [(u, clips[u]) for u in utts])
        written = write_shard_tar(d / file, records, members)
        entries.append({"file": file, "split": split, "plan_sha256": "-", **written})
    _write_index(d, {"version": 1, "kind": "audio", "seed": 0, "complete": True, "shards": entries})
    return d


@pytest.fixture(scope="module")
def opus_dir(flac_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("opus")
    transcode_shards(flac_dir, ["audio-train-00000.tar", "audio-train-00001.tar"], out, "opus", KBPS, 0.05,
                     progress=False)
    return out


def test_round_trip_keeps_length_alignment_and_quality(clips, opus_dir):
    seen = 0
    for entry in load_index(opus_dir)["shards"]:
        for rec, audio in iter_shard_audio(opus_dir / entry["file"]):
            ref = clips[rec["utt"]].astype(np.float64) / 32768.0
            assert len(audio) == len(ref) == rec["samples"] and audio.dtype == np.float32
            assert np.array_equal(audio, np.round(audio * 32768.0) / 32768.0)  # on the int16 grid
            snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - audio) ** 2))
            assert snr > MIN_SNR_DB, (rec["utt"], snr)
            xc = [np.dot(ref[80 + k:-80 + k], audio[80:-80]) for k in range(-40, 41)]
            assert int(np.argmax(xc)) == 40  # no delay: Opus pre-skip is removed
            seen += 1
    assert seen == 4


def test_index_records_codec_bitrate_and_checksums(opus_dir):
    index = load_index(opus_dir)
    assert index["complete"] and index["codec"] == "opus" and index["bitrate_kbps"] == KBPS
    assert len(index["shards"]) >= 2 and verify_shards(opus_dir) == []
    total_bytes = total_s = 0
    for entry in index["shards"]:
        assert entry["codec"] == "opus" and entry["file"].startswith("audio-train-opus48-")
        assert entry["bytes"] <= 0.05 * 2**20
        for rec in read_shard_header(opus_dir / entry["file"]):
            assert rec["codec"] == "opus" and rec["member"] == f"{rec['utt']}.opus" and rec["bitrate_kbps"] == KBPS
        total_bytes += entry["bytes"]
        total_s += entry["seconds"]
    kbps = total_bytes * 8 / total_s / 1000  # tar headers included
    assert 0.8 * KBPS < kbps < 1.3 * KBPS, kbps


def test_deterministic_and_resumable(flac_dir, opus_dir, tmp_path):
    files = ["audio-train-00000.tar", "audio-train-00001.tar"]
    again = transcode_shards(flac_dir, files, tmp_path, "opus", KBPS, 0.05, progress=False)
    first = load_index(opus_dir)
    assert [(e["file"], e["sha256"]) for e in again["shards"]] == [(e["file"], e["sha256"]) for e in first["shards"]]
    mtimes = {e["file"]: (tmp_path / e["file"]).stat().st_mtime_ns for e in again["shards"]}
    last = again["shards"][-1]["file"]
    (tmp_path / last).unlink()
    resumed = transcode_shards(flac_dir, files, tmp_path, "opus", KBPS, 0.05, progress=False)
    assert [e["sha256"] for e in resumed["shards"]] == [e["sha256"] for e in first["shards"]]
    for name, t in mtimes.items():
        if name != last:
            assert (tmp_path / name).stat().st_mtime_ns == t  # kept, not rewritten
    other = transcode_shards(flac_dir, files, tmp_path, "opus", 32.0, 0.05, progress=False)
    assert all(e["file"].startswith("audio-train-opus32-") for e in other["shards"])
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == sorted(e["file"] for e in other["shards"])


def test_mixed_flac_and_opus_shards_build_examples(flac_dir, opus_dir, tmp_path):
    from pnsc.training.corpus.examples import build_examples

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    flac_entry = next(e for e in load_index(flac_dir)["shards"] if e["split"] == "validation")
    opus_entries = load_index(opus_dir)["shards"]
    for e in [flac_entry, *opus_entries]:
        src = flac_dir if e is flac_entry else opus_dir
        (mixed / e["file"]).write_bytes((src / e["file"]).read_bytes())
    _write_index(mixed, {"version": 1, "kind": "audio", "complete": True, "shards": [flac_entry, *opus_entries]})
    index = build_examples(mixed, tmp_path / "ex", ["train", "validation"], copies=1, progress=False)
    assert index["complete"]
    built = {e["audio_shard"] for e in index["shards"] if e["sequences"] > 0}
    assert flac_entry["file"] in built and any("opus48" in f for f in built)
    assert abs(index["hours"] * 3600 - 5 * CLIP / 16000) < 5 * 0.5  # every clip, less the edge context


def test_corrupt_opus_member_is_a_clear_error(clips, tmp_path):
    good = encode_member(clips[sorted(clips)[0]], "opus", KBPS)
    cases = {"garbage": b"OggS" + bytes(range(256)) * 8, "truncated": good[: len(good) // 3]}
    for name, data in cases.items():
        rec = {"utt": name, "speaker": "1", "source": "librispeech", "real": True, "split": "train",
               "samples": CLIP, "member": f"{name}.opus", "codec": "opus"}
        write_shard_tar(tmp_path / f"{name}.tar", [rec], [(rec["member"], data)])
        with pytest.raises(ShardError, match=f"{name}.opus"):
            list(iter_shard_audio(tmp_path / f"{name}.tar"))
    with pytest.raises(CodecError, match="unknown audio codec"):
        decode_member(good, "x.mp3", CLIP)
    with pytest.raises(CodecError, match="outside"):
        opus_compression_level(300)


def test_ogg_serial_fix_keeps_valid_crc(clips):
    pcm = clips[sorted(clips)[1]]
    buf = io.BytesIO()
    sf.write(buf, pcm, 16000, format="OGG", subtype="OPUS", compression_level=opus_compression_level(KBPS))
    raw = buf.getvalue()
    nseg = raw[26]
    end = 27 + nseg + sum(raw[27:27 + nseg])
    page = bytearray(raw[:end])
    stored = int.from_bytes(page[22:26], "little")
    page[22:26] = b"\0\0\0\0"
    assert _ogg_crc(bytes(page)) == stored  # our CRC equals libsndfile's (libogg's)
    fixed = encode_member(pcm, "opus", KBPS)
    assert fixed == encode_member(pcm, "opus", KBPS) and len(fixed) == len(raw)


def test_select_cli_opus_and_bad_input(flac_dir, tmp_path):
    script = REPO / "scripts" / "select_audio_shards.py"
    run = lambda *a: subprocess.run([sys.executable, str(script), "--audio", str(flac_dir), *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=REPO)
    r = run("--out", str(tmp_path / "t0"), "--split", "train", "--codec", "opus", "--bitrate-kbps", "32",
            "--target-mib", "1")
    assert r.returncode == 0, r.stderr
    index = load_index(tmp_path / "t0")
    assert [e["file"] for e in index["shards"]] == ["audio-train-opus32-00000.tar"]
    assert len(read_shard_header(tmp_path / "t0" / index["shards"][0]["file"])) == 4
    assert "MiB/h" in r.stdout
    parts = []
    for k in (1, 2):
        r = run("--out", str(tmp_path / f"p{k}"), "--split", "train", "--codec", "opus", "--part", f"{k}/2")
        assert r.returncode == 0, r.stderr
        parts.append({rec["utt"] for e in load_index(tmp_path / f"p{k}")["shards"]
                      for rec in read_shard_header(tmp_path / f"p{k}" / e["file"])})
    assert len(parts[0]) == len(parts[1]) == 2 and not parts[0] & parts[1]  # equal audio, disjoint
    for bad, msg in [(["--part", "3/2", "--split", "train"], "--part"), (["--split", "dev"], "no dev shards"),
                     (["--split", "train", "--codec", "opus", "--bitrate-kbps", "500"], "outside")]:
        r = run("--out", str(tmp_path / "bad"), *bad)
        assert r.returncode == 2 and r.stderr.startswith("pnsc: error:") and msg in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_opus_packet_modes_follow_the_bitrate(clips):
    from pnsc.training.corpus.audio_codec import opus_packet_modes

    pcm = clips[sorted(clips)[3]]
    low = opus_packet_modes(encode_member(pcm, "opus", 32.0))  # speech below ~54 kb/s: SILK (tilted spectrum)
    high = opus_packet_modes(encode_member(pcm, "opus", 64.0))  # above: CELT
    n = len(pcm) // 320  # 20 ms packets
    assert low["silk"] >= n and low["celt"] == 0
    assert high["celt"] >= n and high["silk"] == 0
