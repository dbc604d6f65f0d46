#!/usr/bin/env python3
"""Sampling of the decoders (temperature and probability floor), measured on validation speakers (never on
test material).

LPCNet samples each mu-law value from max(softmax(boost * logits) - floor, 0), renormalised, with
boost = 1 + max(0, 1.5 c - 0.5) (c: the frame's pitch correlation) and the runtime's ``pdf_floor``
(pnsc.receiver.sampling; default PDF_FLOOR = 0.0005). An under-trained decoder predicts too wide a
distribution, which sounds as hiss; scaling boost by s > 1 sharpens every distribution, a larger floor cuts
more of the improbable tail. This decodes validation clips (quantized features, the shipped C sample loop,
one seed: every setting gets the same uniform draws) for every (scale, floor) pair and prints scores with
paired differences against the first pair:

    python scripts/tune_sampling.py [--models-dir models] [--systems plpcnet-s,lpcnet-bl-s]
        [--scales 1,1.15,1.3,1.5] [--floors 0.0005] [--corr-gains 1] [--limit 12] [--seeds 0] [--json out.json]
    python scripts/tune_sampling.py --scales 1 --corr-gains 1,1.3,1.6,2   # sharpen voiced frames only
    python scripts/tune_sampling.py --scales 1 --floors 0.002,0,0.0005,0.001,0.003   # a floor sweep

Floors must lie in [0, 1/256). PLPCNets decode each clip with its speaker's training group
(models/training_groups.json). With several --seeds a clip's score is its mean over the seeds (the clip is
the paired item: its seeds are not independent); --json keeps every (clip, seed) score.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.receiver.sampling import check_pdf_floor  # noqa: E402
from pnsc.shared.constants import PDF_FLOOR  # noqa: E402

METRICS = ("pesq_wb", "stoi", "estoi", "visqol", "dnsmos_ovrl")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=REPO / "models")
    p.add_argument("--systems", default="plpcnet-s,lpcnet-bl-s")
    p.add_argument("--scales", default="1,1.15,1.3,1.5", help="boost multipliers (the first is the reference)")
    p.add_argument("--floors", default=str(PDF_FLOOR), help="probability floors, each in [0, 1/256) (the first "
                   f"is the reference; default {PDF_FLOOR})")
    p.add_argument("--corr-gains", default="1", help="pitch-correlation gains g: boost from min(1, g c) instead "
                   "of c (sharpens voiced frames only: boost stays 1 below c = 1/3); the first is the reference")
    p.add_argument("--seeds", default="0", help="sampling seeds (a clip's score: the mean over them)")
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
    try:
        scales = [float(s) for s in args.scales.split(",")]
        floors = [check_pdf_floor(f) for f in args.floors.split(",")]
        seeds = [int(s) for s in args.seeds.split(",")]
        gains = [float(g) for g in args.corr_gains.split(",")]
    except ValueError as exc:
        p.error(str(exc))
    settings = [(k, f, g) for k in scales for f in floors for g in gains]
    dims = [(n, v) for n, v in (("scale", scales), ("floor", floors), ("gain", gains)) if len(v) > 1] or [("scale", scales)]

    def label(k: float, f: float, g: float) -> str:
        vals = {"scale": k, "floor": f, "gain": g}
        if len(dims) == 1:
            return f"{vals[dims[0][0]]:g}"
        return " ".join(f"{n[0]}={vals[n]:g}" for n, _ in dims)

    labels = [label(*st) for st in settings]
    metrics = tuple(m for m in args.metrics.split(",") if m)
    systems = [s for s in args.systems.split(",") if s]
    gmap = load_group_map(args.groups)
    clips = validation_clips(args.shard, args.limit, args.max_seconds)
    scorer = Scorer(metrics=metrics)
    scores = {s: {lb: {m: [] for m in metrics} for lb in labels} for s in systems}
    for utt, spk, audio in tqdm(clips, desc="clips"):
        _, qf = quantize_features(extract_features(audio))
        for s in systems:
            group = gmap.get(spk) if s.startswith("plpcnet") else None
            for seed in seeds:
                dec = StreamingDecoder(s, group, models_dir=args.models_dir, seed=seed)
                if dec.kernel == "onnx":
                    p.error("the C sample loop is not available here (build the package's extension)")
                for (k, f, g), lb in zip(settings, labels):
                    ckernel.sampling_boost = lambda c, k=k, g=g: np.float32(k) * sampling_boost(
                        min(np.float32(1.0), np.float32(g) * np.float32(c)))
                    dec.pdf_floor = f
                    dec.reset()
                    y = dec.decode(qf)
                    sc = scorer.score(audio, y)
                    for m in metrics:
                        scores[s][lb][m].append(float(sc[m]))
    ckernel.sampling_boost = sampling_boost
    what = dims[0][0] if len(dims) == 1 else "setting"
    print(f"{len(clips)} validation clips x {len(seeds)} seed(s); mean, and paired difference to {what} "
          f"{labels[0]} (95 % CI over clips, wins)")
    for s in systems:
        print(f"\n{s}")
        print("\n".join(paired_table(per_clip(scores[s], len(clips), len(seeds)), labels[0], metrics, label=what)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"clips": [c[0] for c in clips], "seeds": seeds, "scales": scales,
                                         "floors": floors, "corr_gains": gains,
                                         "scores": scores}, indent=1))
    return 0


def per_clip(scores: dict[str, dict[str, list[float]]], n_clips: int, n_seeds: int) -> dict:
    """{setting: {metric: [(clip, seed) scores, clip-major]}} -> the same with one mean per clip."""
    return {k: {m: list(np.asarray(v, float).reshape(n_clips, n_seeds).mean(axis=1)) for m, v in by_m.items()}
            for k, by_m in scores.items()}


if __name__ == "__main__":
    raise SystemExit(main())
