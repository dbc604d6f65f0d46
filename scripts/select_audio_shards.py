#!/usr/bin/env python3
"""Make a folder holding a subset of audio shards (hard links) with its own index, so that one GPU
call can carry one shard at a time; ``--only-source`` rewrites shards keeping one source's
utterances (e.g. a LibriSpeech-only validation shard).

With ``--codec opus`` the selected utterances are re-encoded as Ogg Opus at ``--bitrate-kbps`` and packed
into as few shards of at most ``--target-mib`` as they fit (``audio-<split>-opus<kbps>-NNNNN.tar``,
resumable, checksummed; see training/corpus/transcode.py); example building reads both kinds. Measured
(scripts/bench_opus_shards.py): the 3.7 h train split is 237 MiB as FLAC, 135 MiB at 80 kb/s (the
default: validation loss of the baselines +0.21/+0.23 %, as close to FLAC as a +-1 LSB dither's +0.20 %),
109 MiB at 64 kb/s (+0.35/+0.38 %); below ~54 kb/s Opus codes speech with SILK, which tilts the spectrum
(-2.6 dB at 7-8 kHz at 48 kb/s) and moves the loss by -5 % or more: do not go there.

Usage: python scripts/select_audio_shards.py --audio data/audio_shards --out .carry/a0 \
           --files audio-train-00000.tar [--only-source librispeech] [--group-map F --group G]
       python scripts/select_audio_shards.py --audio data/audio_shards --out .carry/t0 --split train \
           --codec opus --bitrate-kbps 80 --target-mib 50 [--part 1/3]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pnsc.training.corpus.shards import ShardError, load_index, write_shard_tar  # noqa: E402


def filtered_copy(src: Path, dst: Path, keep_record) -> dict:
    """Copy an audio shard keeping the utterances for which ``keep_record(record)`` holds;
    returns its index entry fields."""
    with tarfile.open(src, "r:") as tar:
        records = json.loads(tar.extractfile("shard.json").read())["utterances"]
        keep = [r for r in records if keep_record(r)]
        blobs = [(r["member"], tar.extractfile(r["member"]).read()) for r in keep]
    return write_shard_tar(dst, keep, blobs)


def _opus(args, keep) -> int:
    """Re-encode the selection as Ogg Opus shards in ``args.out`` (its own index)."""
    from pnsc.training.corpus.transcode import transcode_shards

    filter_key = json.dumps({"source": args.only_source, "group": args.group, "part": args.part})
    if args.bitrate_kbps < 56:
        print(f"note: at {args.bitrate_kbps:g} kb/s Opus codes speech with SILK (tilted spectrum, validation loss "
              "-5 % or more vs FLAC); 80 kb/s measured transparent", file=sys.stderr)
    try:
        index = transcode_shards(args.audio, args.files, args.out, "opus", args.bitrate_kbps, args.target_mib,
                                 keep=keep, filter_key=filter_key)
    except ShardError as exc:
        print(f"pnsc: error: {exc}", file=sys.stderr)
        return 2
    for s in index["shards"]:
        print(f"{s['file']}: {s['bytes'] / 2**20:.1f} MiB, {s['seconds'] / 60:.1f} min, {s['speakers']} speakers")
    total = sum(s["bytes"] for s in index["shards"])
    hours = sum(s["seconds"] for s in index["shards"]) / 3600
    print(f"opus {args.bitrate_kbps:g} kb/s: {total / 2**20:.1f} MiB for {hours:.2f} h "
          f"({total / 2**20 / max(hours, 1e-9):.1f} MiB/h)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--files", nargs="+", default=None, help="shards to take (or --split)")
    ap.add_argument("--split", default=None, help="take every shard of this split (train, validation, test)")
    ap.add_argument("--codec", choices=["flac", "opus"], default="flac",
                    help="flac: link/copy the shards as they are; opus: re-encode and repack")
    ap.add_argument("--bitrate-kbps", type=float, default=80.0,
                    help="Opus target bitrate, 6..256 kb/s (default 80; keep >= 56: below, Opus uses SILK)")
    ap.add_argument("--target-mib", type=float, default=50.0, help="largest Opus shard, MiB (<= 60)")
    ap.add_argument("--part", default=None,
                    help="K/N: only the K-th of N slices of the selection, for spreading a split over N "
                         "calls (opus: equal audio per slice; flac: every N-th source shard)")
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
    try:
        index = load_index(args.audio)
    except ShardError as exc:
        print(f"pnsc: error: {exc}", file=sys.stderr)
        return 2
    if (args.files is None) == (args.split is None):
        print("pnsc: error: give either --files or --split", file=sys.stderr)
        return 2
    if args.split is not None:
        args.files = [s["file"] for s in index["shards"] if s["split"] == args.split]
        if not args.files:
            print(f"pnsc: error: no {args.split} shards in {args.audio}/index.json", file=sys.stderr)
            return 2
    if args.part:
        try:
            k, n = (int(v) for v in args.part.split("/"))
            assert 1 <= k <= n
        except (ValueError, AssertionError):
            print(f"pnsc: error: --part must be K/N with 1 <= K <= N, got {args.part!r}", file=sys.stderr)
            return 2
        if args.codec == "opus":  # equal audio per part: contiguous runs of utterances
            from pnsc.training.corpus.shards import read_shard_header

            try:
                recs = [r for f in sorted(args.files) for r in read_shard_header(args.audio / f)
                        if all(c(r) for c in conditions)]
            except ShardError as exc:
                print(f"pnsc: error: {exc}", file=sys.stderr)
                return 2
            cum = np.cumsum([r["samples"] for r in recs])
            part_of = np.minimum((n * (cum - 1)) // max(1, int(cum[-1]) if len(cum) else 1), n - 1)
            chosen = {r["utt"] for r, q in zip(recs, part_of) if q == k - 1}
            conditions.append(lambda r: r["utt"] in chosen)
        else:
            args.files = [f for i, f in enumerate(sorted(args.files)) if i % n == k - 1]
    if args.codec == "opus":
        return _opus(args, lambda r: all(c(r) for c in conditions))
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
