"""Repack audio shards in another codec (Ogg Opus) into as few shards as fit a size target.

``transcode_shards`` reads FLAC (or Opus) audio shards listed in a source ``index.json``, re-encodes
every kept utterance with ``audio_codec.encode_member`` and packs them, in source order and per split,
into ``audio-<split>-<codec><kbps>-NNNNN.tar`` shards of at most ``target_mib`` each, with the same
layout (``shard.json`` header whose records gain ``codec`` and ``bitrate_kbps``) and an ``index.json``
(sha256, bytes, utterances, seconds per shard; ``codec``/``bitrate_kbps`` per shard and at the top).
Encoding is deterministic, so the packing is too. Resumable: a rerun with the same sources and settings
keeps every finished shard whose checksum still matches and whose utterances are the next ones due.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from .audio_codec import CODECS, CodecError, encode_member, opus_compression_level
from .shards import (
    HARD_LIMIT,
    INDEX_VERSION,
    ShardError,
    _tar_bytes,
    _write_index,
    iter_shard_audio,
    load_index,
    read_shard_header,
    sha256_file,
    verify_shards,
    write_shard_tar,
)

HEADER_BYTES_PER_RECORD = 260  # generous size of one record in shard.json


def _settings_key(sources: list[dict], codec: str, kbps: float | None, target_bytes: int, filter_key: str) -> str:
    key = json.dumps([[(s["file"], s["sha256"]) for s in sources], codec, kbps, target_bytes, filter_key])
    return hashlib.sha256(key.encode()).hexdigest()


def _shard_name(split: str, codec: str, kbps: float | None, k: int) -> str:
    tag = codec if codec == "flac" else f"{codec}{kbps:g}"
    return f"audio-{split}-{tag}-{k:05d}.tar"


def transcode_shards(src_dir: Path, files: list[str], out_dir: Path, codec: str = "opus",
                     bitrate_kbps: float | None = 80.0, target_mib: float = 50.0,
                     keep: Callable[[dict], bool] | None = None, filter_key: str = "",
                     progress: bool = True) -> dict:
    """Re-encode the utterances of ``files`` (in ``src_dir``) kept by ``keep`` into packed shards under
    ``out_dir``; returns (and writes) the new ``index.json``."""
    from tqdm import tqdm

    if codec not in CODECS:
        raise ShardError(f"unknown audio codec {codec!r} (one of {', '.join(CODECS)})")
    if codec == "opus":
        try:
            opus_compression_level(float(bitrate_kbps))
        except (CodecError, TypeError) as exc:
            raise ShardError(f"bad Opus bitrate {bitrate_kbps!r}: {exc}") from exc
    target_bytes = int(target_mib * 2**20)
    if not 0 < target_bytes <= HARD_LIMIT:
        raise ShardError(f"target {target_mib} MiB must be in (0, {HARD_LIMIT / 2**20:.0f}] MiB")
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    src_index = load_index(src_dir)
    by_name = {s["file"]: s for s in src_index["shards"]}
    missing = [f for f in files if f not in by_name]
    if missing:
        raise ShardError(f"not in {src_dir}/index.json: {missing}")
    bad = verify_shards(src_dir, files)
    if bad:
        raise ShardError(f"source audio shards missing or damaged (sha256 mismatch): {bad}")
    sources = [by_name[f] for f in sorted(files)]
    kbps = float(bitrate_kbps) if codec == "opus" else None
    skey = _settings_key(sources, codec, kbps, target_bytes, filter_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        old = load_index(out_dir)
        old_entries = old["shards"] if old.get("settings_sha256") == skey else []
    except ShardError:
        old_entries = []
    head = {"version": INDEX_VERSION, "kind": "audio", "codec": codec, "bitrate_kbps": kbps,
            "target_bytes": target_bytes, "settings_sha256": skey, "filter": filter_key,
            "sources": [{"file": s["file"], "sha256": s["sha256"]} for s in sources]}
    entries: list[dict] = []

    def index(complete: bool) -> dict:
        data = {**head, "complete": complete, "shards": entries}
        _write_index(out_dir, data)
        return data

    headers = {s["file"]: read_shard_header(src_dir / s["file"]) for s in sources}
    total = sum(1 for h in headers.values() for r in h if keep is None or keep(r))
    bar = tqdm(total=total, desc=f"{codec} shards", unit="utt", disable=not progress)
    for split in ("train", "validation", "test"):
        group = [s for s in sources if s["split"] == split]
        if not group:
            continue
        reusable = [e for e in old_entries if e["split"] == split]
        records: list[dict] = []
        members: list[tuple[str, bytes]] = []
        k = 0

        def flush() -> None:
            nonlocal records, members, k
            name = _shard_name(split, codec, kbps, k)
            entry = {"file": name, "split": split, "codec": codec, "bitrate_kbps": kbps,
                     **write_shard_tar(out_dir / name, records, members)}
            entries.append(entry)
            index(False)
            records, members, k = [], [], k + 1

        due = [r["utt"] for s in group for r in headers[s["file"]] if keep is None or keep(r)]
        pos = 0
        for prev in reusable:  # resume: finished shards that hold exactly the next utterances due
            path = out_dir / prev["file"]
            if prev["file"] != _shard_name(split, codec, kbps, k) or not path.is_file() \
                    or path.stat().st_size != prev["bytes"] or sha256_file(path) != prev["sha256"]:
                break
            utts = [r["utt"] for r in read_shard_header(path)]
            if utts != due[pos:pos + len(utts)]:
                break
            entries.append(prev)
            pos += len(utts)
            k += 1
            bar.update(len(utts))
        todo = set(due[pos:])
        for s in group:
            if not todo & {r["utt"] for r in headers[s["file"]]}:
                continue
            for rec, audio in iter_shard_audio(src_dir / s["file"], todo):  # decodes only those due
                pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
                try:
                    data = encode_member(pcm, codec, kbps)
                except CodecError as exc:
                    raise ShardError(f"{s['file']}: {rec['utt']}: {exc}") from exc
                member = f"{rec['utt']}.{codec}"
                new = {**{k_: v for k_, v in rec.items() if k_ not in ("member", "codec", "bitrate_kbps")},
                       "member": member, "codec": codec, "bitrate_kbps": kbps}
                sizes = [len(m[1]) for m in members] + [len(data)]
                if records and (_tar_bytes(sizes) + HEADER_BYTES_PER_RECORD * (len(records) + 1)
                                + 4 * 512 > target_bytes):
                    flush()
                records.append(new)
                members.append((member, data))
                bar.update(1)
        if records:
            flush()
    bar.close()
    planned = {e["file"] for e in entries}
    for stale in out_dir.glob("audio-*.tar"):
        if stale.name not in planned:
            stale.unlink()
    return index(True)
