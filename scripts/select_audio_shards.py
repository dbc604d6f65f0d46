#!/usr/bin/env python3
"""Make a folder holding a subset of audio shards (hard links) with its own index, so that one GPU
call can carry one shard at a time; ``--only-source`` rewrites shards keeping one source's
utterances (e.g. a LibriSpeech-only validation shard).

Usage: python scripts/select_audio_shards.py --audio data/audio_shards --out .carry/a0 \
           --files audio-train-00000.tar [--only-source librispeech] [--group-map F --group G]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pnsc.training.corpus.shards import load_index, write_shard_tar  # noqa: E402


def filtered_copy(src: Path, dst: Path, keep_record) -> dict:
    """Copy an audio shard keeping the utterances for which ``keep_record(record)`` holds;
    returns its index entry fields."""
    with tarfile.open(src, "r:") as tar:
        records = json.loads(tar.extractfile("shard.json").read())["utterances"]
        keep = [r for r in records if keep_record(r)]
        blobs = [(r["member"], tar.extractfile(r["member"]).read()) for r in keep]
    return write_shard_tar(dst, keep, blobs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--files", nargs="+", required=True)
    ap.add_argument("--only-source", default=None, help="keep only this source's utterances")
    ap.add_argument("--group-map", type=Path, default=None, help="speaker -> group JSON (with --group)")
    ap.add_argument("--group", type=int, default=None, help="keep only this group's speakers")
    args = ap.parse_args()
    conditions = []
    if args.only_source:
        conditions.append(lambda r: r["source"] == args.only_source)
    if args.group is not None:
        from pnsc.training.lpcnet.data import load_group_map

        members = {s for s, g in load_group_map(args.group_map).items() if g == args.group}
        conditions.append(lambda r: r["speaker"] in members)
    index = load_index(args.audio)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        out_index = load_index(args.out)
    except Exception:
        out_index = {**index, "shards": []}
    entries = {s["file"]: s for s in out_index["shards"]}
    for name in args.files:
        entry = next((s for s in index["shards"] if s["file"] == name), None)
        if entry is None:
            print(f"{name}: not in {args.audio}/index.json", file=sys.stderr)
            return 1
        dst = args.out / name
        if dst.exists():
            dst.unlink()
        if conditions:
            entries[name] = {**entry, **filtered_copy(args.audio / name, dst, lambda r: all(c(r) for c in conditions)),
                             "filtered": {"source": args.only_source, "group": args.group}}
        else:
            os.link(args.audio / name, dst)
            entries[name] = entry
    out_index["shards"] = sorted(entries.values(), key=lambda s: s["file"])
    (args.out / "index.json").write_text(json.dumps(out_index, indent=1) + "\n")
    for s in out_index["shards"]:
        print(f"{s['file']}: {s['bytes'] / 2**20:.1f} MiB, {s['seconds'] / 60:.1f} min, {s['speakers']} speakers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
