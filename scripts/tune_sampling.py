#!/usr/bin/env python3
"""Sampling temperature of the decoders, measured on validation speakers (never on test material).

LPCNet samples each mu-law value from softmax(boost * logits) with boost = 1 + max(0, 1.5 c - 0.5) (c: the
frame's pitch correlation). An under-trained decoder predicts too wide a distribution, which sounds as
hiss; scaling boost by s > 1 sharpens every distribution. This decodes validation clips (quantized
features, the shipped C sample loop) for each s and prints scores with paired differences against s = 1:

    python scripts/tune_sampling.py [--models-dir models] [--systems plpcnet-s,lpcnet-bl-s]
        [--scales 1,1.15,1.3,1.5] [--limit 12] [--json out.json]

PLPCNets decode each clip with its speaker's training group (models/training_groups.json).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METRICS = ("pesq_wb", "stoi", "estoi", "visqol", "dnsmos_ovrl")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=REPO / "models")
    p.add_argument("--systems", default="plpcnet-s,lpcnet-bl-s")
    p.add_argument("--scales", default="1,1.15,1.3,1.5", help="boost multipliers; the first is the reference")
    p.add_argument("--shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--groups", type=Path, default=REPO / "models" / "training_groups.json")
    p.add_argument("--limit", type=int, default=12)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--metrics", default=",".join(METRICS))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from tqdm import tqdm

    from pnsc.evaluation.metrics import Scorer
    from pnsc.evaluation.stats import paired_table
    from pnsc.receiver.runtime import ckernel
    from pnsc.receiver.runtime.backends import sampling_boost
    from pnsc.receiver.runtime.stream import StreamingDecoder
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features
    from pnsc.training.lpcnet.data import load_group_map
    from pnsc.training.lpcnet.val_clips import validation_clips

    if not args.shard.is_file():
        p.error(f"no audio shard {args.shard}")
    scales = [float(s) for s in args.scales.split(",")]
    metrics = tuple(m for m in args.metrics.split(",") if m)
    systems = [s for s in args.systems.split(",") if s]
    gmap = load_group_map(args.groups)
    clips = validation_clips(args.shard, args.limit, args.max_seconds)
    scorer = Scorer(metrics=metrics)
    scores = {s: {str(k): {m: [] for m in metrics} for k in scales} for s in systems}
    for utt, spk, audio in tqdm(clips, desc="clips"):
        _, qf = quantize_features(extract_features(audio))
        for s in systems:
            group = gmap.get(spk) if s.startswith("plpcnet") else None
            dec = StreamingDecoder(s, group, models_dir=args.models_dir)
            if dec.kernel == "onnx":
                p.error("the C sample loop is not available here (build the package's extension)")
            for k in scales:
                ckernel.sampling_boost = lambda c, k=k: np.float32(k) * sampling_boost(c)
                dec.reset()
                y = dec.decode(qf)
                sc = scorer.score(audio, y)
                for m in metrics:
                    scores[s][str(k)][m].append(float(sc[m]))
    ckernel.sampling_boost = sampling_boost
    print(f"{len(clips)} validation clips; mean, and paired difference to scale {scales[0]} (95 % CI, wins)")
    for s in systems:
        print(f"\n{s}")
        print("\n".join(paired_table(scores[s], str(scales[0]), metrics, label="scale")))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"clips": [c[0] for c in clips], "scales": scales, "scores": scores}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
