#!/usr/bin/env python3
"""Turn audio shards into LPCNet teacher-forcing example shards (see training/corpus/examples.py).

    python scripts/build_examples.py --audio data/audio_shards --out data/examples/train --split train \
        --copies 3 --workers 16
    python scripts/build_examples.py --audio data/audio_shards --out data/examples/validation --split validation \
        --copies 1

Resumable (shards whose job and sha256 match are kept), deterministic for a given --seed, progress on
stderr, one worker process per core with --workers. Every shard stays below 60 MiB.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", type=Path, default=REPO / "data" / "audio_shards", help="audio shard folder")
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/examples/<split>)")
    p.add_argument("--split", default="train", help="train, validation or test (comma-separated for several)")
    p.add_argument("--copies", type=int, default=3, help="augmented copies of each utterance (copy 0 unwarped)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=15, help="frames per sequence (T)")
    p.add_argument("--target-mib", type=float, default=48.0, help="estimated size per example shard (< 60)")
    p.add_argument("--warp-prob", type=float, default=0.7, help="probability of a rate warp on copies >= 1")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--codebooks", default=None, help="codebook file (default: models/codebooks-v1.npz)")
    p.add_argument("--verify", action="store_true", help="only check the audio shards' checksums")
    args = p.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker process
    from pnsc.training.corpus.examples import build_examples
    from pnsc.training.corpus.shards import verify_shards

    bad = verify_shards(args.audio)
    if bad:
        print(f"audio shards missing or damaged (sha256 mismatch): {bad}", file=sys.stderr)
        return 1
    if args.verify:
        print("audio shards OK")
        return 0
    splits = [s.strip() for s in args.split.split(",")]
    out = args.out or REPO / "data" / "examples" / "_".join(splits)
    t0 = time.monotonic()
    index = build_examples(args.audio, out, splits, copies=args.copies, seed=args.seed, T=args.frames,
                           target_mib=args.target_mib, warp_prob=args.warp_prob, workers=args.workers,
                           codebooks_path=args.codebooks)
    sizes = [s["bytes"] for s in index["shards"]]
    print(f"{len(sizes)} example shards in {out}: {index['sequences']} sequences, {index['hours']:.2f} h, "
          f"{sum(sizes) / 2**20:.0f} MiB (largest {max(sizes, default=0) / 2**20:.1f} MiB), "
          f"complete={index['complete']}, {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
