#!/usr/bin/env python3
"""Teacher-forced statistics of several checkpoints on the same clips: where each one's loss goes.

For each checkpoint and clip (validation speakers; with ``--train-limit`` also training speakers, never test
material): the per-sample cross-entropy of the true excitation (nats; the training loss without noise) over
all samples and over voiced (pitch correlation > 0.5) and unvoiced frames, the model distribution's
entropy, and the prediction gain of its expected value (dB: how much of the true excitation it explains),
from the clip's 1.6 kb/s quantized features.  Prints means and paired differences to the first checkpoint
(95 % CI over clips):

    python scripts/teacher_forced_stats.py runs/r6/lpcnet-bl-s/last.pt runs/r6/lpcnet-bl-s.ltp5/last.pt \\
        [--limit 20] [--train-limit 10] [--max-seconds 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STATS = ("cross_entropy", "cross_entropy_voiced", "cross_entropy_unvoiced", "entropy", "pred_gain_db_voiced",
         "pred_gain_db_unvoiced")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="the first is the reference")
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--train-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-train-00004.tar")
    p.add_argument("--limit", type=int, default=20, help="validation clips")
    p.add_argument("--train-limit", type=int, default=0, help="training-speaker clips (0: none)")
    p.add_argument("--max-seconds", type=float, default=5.0)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    for f in (*a.checkpoints, a.val_shard) + ((a.train_shard,) if a.train_limit else ()):
        if not f.is_file():
            print(f"pnsc: error: no such file: {f}", file=sys.stderr)
            return 2
    if "test" in a.val_shard.name or (a.train_limit and "test" in a.train_shard.name):
        print("pnsc: error: test material is not for diagnostics", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(1)
    from pnsc.evaluation.stats import paired_table
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features
    from pnsc.training.lpcnet.export import load_checkpoint
    from pnsc.training.lpcnet.teacher_forced import teacher_forced_pass, voicing_stats
    from pnsc.training.lpcnet.val_clips import validation_clips

    sets = {"validation": validation_clips(a.val_shard, a.limit, a.max_seconds)}
    if a.train_limit:
        sets["training"] = validation_clips(a.train_shard, a.train_limit, a.max_seconds, source="librispeech")
    models = {}
    for c in a.checkpoints:
        model, _ = load_checkpoint(c)
        label = c.parent.name if c.name in ("last.pt", "best.pt") else c.stem
        models[label] = model.eval()
    result = {"checkpoints": [str(c) for c in a.checkpoints], "sets": {}}
    t0 = time.monotonic()
    for set_name, clips in sets.items():
        scores = {m: {k: [] for k in STATS} for m in models}
        for i, (utt, _spk, audio) in enumerate(clips):
            qf = quantize_features(extract_features(audio))[1]
            for m, model in models.items():
                st = voicing_stats(teacher_forced_pass(model, qf, audio))
                for k in STATS:
                    scores[m][k].append(float(st[k]))
            print(f"[{set_name} {i + 1}/{len(clips)}] {utt} ({time.monotonic() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
        print(f"\n{set_name} speakers, {len(clips)} clips; means, paired difference to {next(iter(models))} "
              "(95 % CI, wins/n; CE/entropy nats per sample, gains dB)")
        print("\n".join(paired_table(scores, next(iter(models)), STATS, label="checkpoint")))
        result["sets"][set_name] = {"clips": [c[0] for c in clips], "scores": scores}
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
