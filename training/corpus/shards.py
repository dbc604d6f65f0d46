"""Audio shards: the corpus packed into pieces small enough to travel to a GPU machine one by one.

A shard ``audio-<split>-NNNNN.tar`` is an uncompressed, byte-deterministic tar whose first member
``shard.json`` lists the utterances (``utt``, ``speaker``, ``source``, ``real``, ``split``, ``samples``,
``member``, optional ``codec``) followed by one 16 kHz mono member per utterance: 16-bit FLAC, or Ogg
Opus (``.opus``, ``codec: "opus"``, made by ``transcode.py`` to carry more audio per GPU call; readers
take both, see ``audio_codec.py``). Utterances of a split are
shuffled (seeded) so every shard mixes many speakers. ``index.json`` beside the shards records each
shard's sha256, bytes, utterance count and seconds; rebuilding skips shards whose planned content and
checksum match (resumable), and ``verify_shards`` re-checks every checksum after a transfer.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
from pathlib import Path

import numpy as np

from .librispeech import CorpusError
from .manifest import load_manifest
from pnsc.shared.checksum import sha256_file

HARD_LIMIT = 60 * 2**20  # bytes: every shard (audio or examples) stays below this
BLOCK = 512
INDEX_VERSION = 1


class ShardError(CorpusError):
    pass



def _member_bytes(size: int) -> int:
    return BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK


def _tar_bytes(sizes: list[int]) -> int:
    raw = sum(_member_bytes(s) for s in sizes) + 2 * BLOCK
    record = tarfile.RECORDSIZE
    return (raw + record - 1) // record * record


def _is_16k_flac(path: Path) -> tuple[bool, int]:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise ShardError(f"cannot read {path}: {exc}") from exc
    ok = info.format == "FLAC" and info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    return ok, int(info.frames)


def _flac_bytes(path: Path) -> tuple[bytes, int]:
    """FLAC bytes at 16 kHz mono 16 bit: copied as is when already so, re-encoded otherwise."""
    ok, frames = _is_16k_flac(path)
    if ok:
        import soundfile as sf

        data = Path(path).read_bytes()
        try:  # decode once: a damaged file must fail here, not on the GPU machine
            decoded, _ = sf.read(io.BytesIO(data), dtype="int16")
        except Exception as exc:
            raise ShardError(f"cannot decode {path}: {exc}") from exc
        if len(decoded) != frames:
            raise ShardError(f"{path}: header says {frames} samples, decoded {len(decoded)}")
        return data, frames
    from pnsc.shared.audio import AudioError, load_audio

    from .audio_codec import encode_member

    try:
        audio = load_audio(path, quiet=True)
    except AudioError as exc:
        raise ShardError(str(exc)) from exc
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    return encode_member(pcm, "flac"), len(pcm)


def list_utterances(manifest: dict) -> list[dict]:
    """One record per utterance from the manifest (paths resolved against each speaker's root)."""
    out = []
    for s in manifest["speakers"]:
        for rel in s["files"]:
            path = Path(s["root"]) / rel
            out.append({"utt": Path(rel).stem, "speaker": s["speaker"], "source": s["source"],
                        "real": s["real"], "split": s["split"], "path": str(path)})
    ids = [u["utt"] for u in out]
    if len(set(ids)) != len(ids):
        raise ShardError("duplicate utterance ids in the manifest")
    return out


def plan_shards(utts: list[dict], target_bytes: int, seed: int = 0) -> list[dict]:
    """Deterministic assignment of utterances to shards, per split, under ``target_bytes`` each."""
    if target_bytes > HARD_LIMIT:
        raise ShardError(f"target {target_bytes} bytes exceeds the {HARD_LIMIT} byte limit")
    plan = []
    for split in ("train", "validation", "test"):
        group = sorted((u for u in utts if u["split"] == split), key=lambda u: u["utt"])
        random.Random(f"{seed}:{split}").shuffle(group)
        current: list[dict] = []
        sizes: list[int] = []
        for u in group:
            if not os.path.isfile(u["path"]):
                raise ShardError(f"audio file listed in the manifest is missing: {u['path']}")
            size = os.path.getsize(u["path"]) if u["path"].endswith(".flac") else None
            if size is None:
                size = len(_flac_bytes(Path(u["path"]))[0])
            u = {**u, "bytes": size}
            if current and _tar_bytes(sizes + [size]) + 400 * (len(current) + 1) + BLOCK * 4 > target_bytes:
                plan.append({"split": split, "utts": current})
                current, sizes = [], []
            current.append(u)
            sizes.append(size)
        if current:
            plan.append({"split": split, "utts": current})
    counters: dict[str, int] = {}
    for shard in plan:
        k = counters.get(shard["split"], 0)
        counters[shard["split"]] = k + 1
        shard["file"] = f"audio-{shard['split']}-{k:05d}.tar"
        key = json.dumps([(u["utt"], u["bytes"]) for u in shard["utts"]]).encode()
        shard["plan_sha256"] = hashlib.sha256(key).hexdigest()
    return plan


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


def write_shard(shard: dict, path: Path) -> dict:
    members, records = [], []
    for u in shard["utts"]:
        data, samples = _flac_bytes(Path(u["path"]))
        member = f"{u['utt']}.flac"
        members.append((member, data))
        records.append({"utt": u["utt"], "speaker": u["speaker"], "source": u["source"], "real": u["real"],
                        "split": u["split"], "samples": samples, "member": member})
    return {"file": Path(path).name, "split": shard["split"], **write_shard_tar(path, records, members),
            "plan_sha256": shard["plan_sha256"]}


def write_shard_tar(path: Path, records: list[dict], members: list[tuple[str, bytes]]) -> dict:
    """Write an audio shard (``shard.json`` header of ``records`` + FLAC ``members``) atomically,
    refusing to exceed the size limit; returns its checksum and totals for the index."""
    path = Path(path)
    header = json.dumps({"version": INDEX_VERSION, "utterances": records}, indent=0).encode()
    tmp = path.with_name(path.name + ".part")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(_tarinfo("shard.json", len(header)), io.BytesIO(header))
        for name, data in members:
            tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
    size = tmp.stat().st_size
    if size >= HARD_LIMIT:
        tmp.unlink()
        raise ShardError(f"{path.name}: {size} bytes exceeds the {HARD_LIMIT} byte limit")
    os.replace(tmp, path)
    return {"sha256": sha256_file(path), "bytes": size, "utterances": len(records),
            "seconds": round(sum(r["samples"] for r in records) / 16000.0, 2),
            "speakers": len({r["speaker"] for r in records})}


def _write_index(out_dir: Path, index: dict) -> None:
    tmp = out_dir / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "index.json")


def load_index(out_dir: Path) -> dict:
    path = Path(out_dir) / "index.json"
    if not path.is_file():
        raise ShardError(f"shard index not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ShardError(f"{path}: corrupt index: {exc}") from exc


def build_audio_shards(manifest_path: Path, out_dir: Path, target_mib: float = 45.0, seed: int = 0,
                       progress: bool = True) -> dict:
    """Write all audio shards of the manifest's corpus under ``out_dir``; resumable; returns the index."""
    from tqdm import tqdm

    manifest = load_manifest(manifest_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_shards(list_utterances(manifest), int(target_mib * 2**20), seed)
    try:
        old = {s["file"]: s for s in load_index(out_dir)["shards"]}
    except ShardError:
        old = {}
    entries = []
    for shard in tqdm(plan, desc="audio shards", unit="shard", disable=not progress):
        path = out_dir / shard["file"]
        prev = old.get(shard["file"])
        if (prev and prev["plan_sha256"] == shard["plan_sha256"] and path.is_file()
                and path.stat().st_size == prev["bytes"] and sha256_file(path) == prev["sha256"]):
            entries.append(prev)
        else:
            entries.append(write_shard(shard, path))
        _write_index(out_dir, {"version": INDEX_VERSION, "kind": "audio", "seed": seed, "complete": False,
                               "target_bytes": int(target_mib * 2**20), "shards": entries})
    planned = {s["file"] for s in plan}
    for stale in out_dir.glob("audio-*.tar"):
        if stale.name not in planned:
            stale.unlink()
    index = {"version": INDEX_VERSION, "kind": "audio", "seed": seed, "complete": True,
             "target_bytes": int(target_mib * 2**20),
             "manifest_totals": manifest.get("totals", {}), "shards": entries}
    _write_index(out_dir, index)
    return index


def verify_shards(out_dir: Path, files: list[str] | None = None) -> list[str]:
    """Names of shards (all, or ``files``) that are missing or whose sha256 does not match the index."""
    index = load_index(out_dir)
    bad = []
    for s in index["shards"]:
        if files is not None and s["file"] not in files:
            continue
        path = Path(out_dir) / s["file"]
        if not path.is_file() or path.stat().st_size != s["bytes"] or sha256_file(path) != s["sha256"]:
            bad.append(s["file"])
    return bad


def read_shard_header(path: Path) -> list[dict]:
    try:
        with tarfile.open(path, "r:") as tar:
            f = tar.extractfile("shard.json")
            return json.loads(f.read())["utterances"]
    except (tarfile.TarError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise ShardError(f"corrupt or unreadable audio shard {path}: {exc}") from exc


def iter_shard_audio(path: Path, only: set[str] | None = None):
    """Yield ``(record, float32 audio in [-1, 1])`` for the utterances of an audio shard."""
    from .audio_codec import CodecError, decode_member

    try:
        with tarfile.open(path, "r:") as tar:
            records = json.loads(tar.extractfile("shard.json").read())["utterances"]
            for rec in records:
                if only is not None and rec["utt"] not in only:
                    continue
                data = tar.extractfile(rec["member"]).read()
                try:
                    audio = decode_member(data, rec["member"], rec["samples"], rec)
                except CodecError as exc:
                    raise ShardError(f"{path}: {exc}") from exc
                yield rec, audio
    except (tarfile.TarError, KeyError, json.JSONDecodeError, OSError, RuntimeError) as exc:
        raise ShardError(f"corrupt or unreadable audio shard {path}: {exc}") from exc
