"""Validation-speaker clips for decoder-side measurements (never test material).

    clips = validation_clips(shard, limit=12, max_seconds=6.0)   # [(utt, speaker, float32 audio)]

Round-robin over the speakers of the validation audio shard, so a small ``limit`` still spans them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pnsc.training.corpus.shards import iter_shard_audio, read_shard_header


def _speaker(rec: dict) -> str:
    return str(rec.get("speaker") or rec["utt"].split("-")[0])


def validation_clips(shard: Path, limit: int = 12, max_seconds: float = 6.0, source: str | None = None,
                     speakers: set[str] | None = None) -> list[tuple[str, str, np.ndarray]]:
    """Up to ``limit`` utterances of the shard (of one ``source`` and of ``speakers`` if given), one speaker
    after another, cropped to ``max_seconds``."""
    by_spk: dict[str, list[str]] = {}
    for r in read_shard_header(shard):
        if source is not None and r.get("source") != source:
            continue
        if speakers is not None and _speaker(r) not in speakers:
            continue
        by_spk.setdefault(_speaker(r), []).append(r["utt"])
    chosen: list[str] = []
    while len(chosen) < limit and any(by_spk.values()):
        for utts in by_spk.values():
            if utts and len(chosen) < limit:
                chosen.append(utts.pop(0))
    n = int(max_seconds * 16000)
    clips = {rec["utt"]: (rec["utt"], _speaker(rec), audio[:n]) for rec, audio in iter_shard_audio(shard, set(chosen))}
    return [clips[u] for u in chosen]
