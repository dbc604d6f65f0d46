#!/usr/bin/env python3
"""Where decoded quality is lost: the decoder itself, or the 1.6 kb/s quantizer in front of it.

Decodes validation-speaker utterances (never test material; ``--shard`` a training shard to compare
with speakers the decoders were trained on) with each exported decoder twice, from
the unquantized LPCNet features and from the 1.6 kb/s bitstream's dequantized features, scores both
against the reference and prints means with paired differences (95 % CI):

    python scripts/quality_ceiling.py [--models-dir models] [--systems lpcnet-bl-s,lpcnet-bl-l]
        [--shard data/audio_shards/audio-validation-00000.tar] [--limit 12] [--json out.json]

If unquantized decoding scores far above quantized, the quantizer (codebooks, bit allocation) limits
quality; if both are low, the decoder (its training data and length) does.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_ovrl")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=REPO / "models")
    p.add_argument("--systems", default="lpcnet-bl-s,lpcnet-bl-l", help="generic decoder families")
    p.add_argument("--shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--limit", type=int, default=12, help="utterances (spread over the speakers)")
    p.add_argument("--source", default=None, help="only this corpus source (e.g. librispeech)")
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from tqdm import tqdm

    from pnsc.evaluation.metrics import Scorer
    from pnsc.evaluation.stats import paired_difference, paired_table
    from pnsc.receiver.runtime.stream import StreamingDecoder
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features
    from pnsc.training.lpcnet.val_clips import validation_clips

    if not args.shard.is_file():
        p.error(f"no audio shard {args.shard} (build it with scripts/build_corpus.py)")
    clips = validation_clips(args.shard, args.limit, args.max_seconds, args.source)
    scorer = Scorer(metrics=METRICS)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    decoders = {s: StreamingDecoder(s, models_dir=args.models_dir) for s in systems}
    rows: dict[str, dict[str, list[float]]] = {f"{s}/{v}": {m: [] for m in METRICS} for s in systems
                                               for v in ("unquantized", "quantized")}
    for _utt, _spk, audio in tqdm(clips, desc="decode+score"):
        feats = extract_features(audio)
        _, qfeats = quantize_features(feats)
        for s, dec in decoders.items():
            for v, f in (("unquantized", feats), ("quantized", qfeats)):
                dec.reset()
                y = dec.decode(f)
                sc = scorer.score(audio, y)
                for m in METRICS:
                    rows[f"{s}/{v}"][m].append(float(sc[m]))
    print(f"{len(clips)} utterances from {args.shard.name}; means, paired difference to the first row (95 % CI, wins/n)")
    print("\n".join(paired_table(rows, next(iter(rows)), METRICS, label="decoder / features")))
    out: dict = {"utterances": [c[0] for c in clips], "scores": rows, "quantizer_cost": {}}
    for s in systems:
        cost = {m: paired_difference(rows[f"{s}/unquantized"][m], rows[f"{s}/quantized"][m]) for m in METRICS}
        out["quantizer_cost"][s] = cost
        print(f"{s}: unquantized - quantized: "
              + ", ".join(f"{m} {d['mean']:+.3f} ± {d['ci95']:.3f}" for m, d in cost.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
