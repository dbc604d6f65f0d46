"""validation_clips: round-robin over the speakers of a real audio shard, cropped, in a stable order."""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from pnsc.training.corpus.shards import write_shard_tar
from pnsc.training.lpcnet.val_clips import validation_clips


def _flac(samples: int, seed: int) -> bytes:
    buf = io.BytesIO()
    x = (np.random.default_rng(seed).normal(0, 0.1, samples) * 32767).astype(np.int16)
    sf.write(buf, x, 16000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _shard(tmp_path, layout: dict[str, int]):
    records, members = [], []
    for spk, n in layout.items():
        for i in range(n):
            utt = f"{spk}-1-{i:04d}"
            samples = 16000 * (2 + i)
            members.append((f"{utt}.flac", _flac(samples, hash(utt) % 1000)))
            records.append({"utt": utt, "speaker": spk, "source": "librispeech", "real": True,
                            "split": "validation", "samples": samples, "member": f"{utt}.flac"})
    path = tmp_path / "audio-validation-00000.tar"
    write_shard_tar(path, records, members)
    return path


def test_clips_alternate_speakers_and_are_cropped(tmp_path):
    path = _shard(tmp_path, {"11": 3, "22": 1, "33": 2})
    clips = validation_clips(path, limit=5, max_seconds=2.5)
    assert [c[0] for c in clips] == ["11-1-0000", "22-1-0000", "33-1-0000", "11-1-0001", "33-1-0001"]
    assert [c[1] for c in clips] == ["11", "22", "33", "11", "33"]
    assert len(clips[0][2]) == 32000  # 2 s clip, shorter than the crop
    assert all(len(c[2]) <= 40000 for c in clips) and len(clips[3][2]) == 40000
    assert clips[0][2].dtype == np.float32


def test_limit_larger_than_the_shard_returns_everything(tmp_path):
    path = _shard(tmp_path, {"11": 1, "22": 2})
    assert len(validation_clips(path, limit=50)) == 3


def test_source_filter(tmp_path):
    path = _shard(tmp_path, {"11": 2, "22": 1})
    assert validation_clips(path, limit=9, source="vcc2016") == []
    assert len(validation_clips(path, limit=9, source="librispeech")) == 3


def test_speaker_filter_fills_the_limit_from_those_speakers(tmp_path):
    path = _shard(tmp_path, {"11": 3, "22": 3, "33": 3})
    clips = validation_clips(path, limit=4, speakers={"22", "33"})
    assert [c[1] for c in clips] == ["22", "33", "22", "33"]
    assert validation_clips(path, limit=4, speakers=set()) == []
