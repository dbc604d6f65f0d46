#!/usr/bin/env python3
"""Does a short-term (formant) postfilter on the decoder's output help?  Decoded validation speech, filtered, scored.

LPCNet's sampled output carries noise in the spectral valleys between formants. Classic LPC codecs deepen
those valleys after synthesis with ``H(z) = A(z/g_n) / A(z/g_d) * (1 - mu z^-1)`` and a per-frame gain that
keeps the frame's energy (``pnsc.receiver.postfilter``; ``A`` is each frame's predictor, computed from the
quantized cepstrum exactly as the decoder computes it; causal, no added delay).

For each validation clip (never test material) and decoder, every (g_n, g_d, mu) setting is scored with
PESQ-WB, STOI, ESTOI and DNSMOS SIG/BAK/OVRL, paired against the unfiltered output (95 % CI over clips):

    python scripts/tune_formant_postfilter.py [--families lpcnet-bl-s plpcnet-s]
        [--settings 0.5,0.75,0 0.6,0.8,0.2 ...] [--gain-alpha 0.95] [--limit 20] [--skip 0] [--max-seconds 6]
        [--seed 0] [--json F]
    python scripts/tune_formant_postfilter.py --pool run_seed0.json run_seed1.json   # per-clip mean of runs
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.evaluation.tuning import add_clip_arguments, pool_or_check_shard, save_run  # noqa: E402
from pnsc.receiver.postfilter import check_params, formant_postfilter, lpcs_from_features  # noqa: E402

METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
DEFAULT_SETTINGS = [f"{gn},{gd},{mu}" for gn, gd in ((0.5, 0.75), (0.6, 0.8), (0.7, 0.85), (0.8, 0.9))
                    for mu in (0.0, 0.2)]


def parse_setting(text: str) -> tuple[float, float, float]:
    """'g_n,g_d,mu' -> floats (argparse type: a bad one is a usage error)."""
    try:
        gn, gd, mu = (float(v) for v in text.split(","))
        check_params(gn, gd, mu, 0.9)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"setting {text!r}: {e} (want g_n,g_d,mu)") from None
    return gn, gd, mu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["lpcnet-bl-s", "plpcnet-s"])
    p.add_argument("--settings", nargs="+", type=parse_setting, default=[parse_setting(s) for s in DEFAULT_SETTINGS],
                   help="g_n,g_d,mu triples (default: (0.5,0.75) (0.6,0.8) (0.7,0.85) (0.8,0.9) x mu 0, 0.2)")
    p.add_argument("--gain-alpha", type=float, default=0.95, help="per-sample smoothing of the output gain")
    add_clip_arguments(p, seed_help="decoder sampling seed (another seed: a fresh draw of the noise)")
    p.add_argument("--skip", type=int, default=0, help="leave out the first N clips (a fresh set to replicate on)")
    a = p.parse_args(argv)
    if pool_or_check_shard(p, a, "none", METRICS, label="postfilter", ref_text="no postfilter"):
        return 0
    try:
        check_params(0.5, 0.5, 0.0, a.gain_alpha)
    except ValueError as e:
        p.error(str(e))

    from tqdm import tqdm

    from pnsc.evaluation.metrics import Scorer
    from pnsc.evaluation.stats import paired_table
    from pnsc.receiver.runtime.stream import StreamingDecoder
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features
    from pnsc.training.lpcnet.data import load_group_map
    from pnsc.training.lpcnet.val_clips import validation_clips

    gmap = load_group_map(a.groups)
    if a.limit < 1 or a.skip < 0:
        p.error("--limit must be >= 1 and --skip >= 0")
    clips = validation_clips(a.val_shard, a.skip + a.limit, a.max_seconds)[a.skip:]
    if not clips:
        p.error(f"{a.val_shard}: no validation clips after skipping {a.skip}")
    scorer = Scorer(metrics=METRICS)
    settings = [("none", None)] + [(f"{gn:g}/{gd:g}/mu{mu:g}", (gn, gd, mu)) for gn, gd, mu in a.settings]
    scores = {fam: {lab: {m: [] for m in METRICS} for lab, _ in settings} for fam in a.families}
    decs: dict[tuple[str, int | None], StreamingDecoder] = {}
    for _utt, spk, audio in tqdm(clips, desc="clips"):
        qf = quantize_features(extract_features(audio))[1]
        lpcs = lpcs_from_features(qf)
        for fam in a.families:
            group = None if fam.startswith("lpcnet") else int(gmap[spk])
            dec = decs.setdefault((fam, group), StreamingDecoder(fam, group, seed=a.seed))
            dec.reset()
            y = dec.decode(qf).astype(np.float64)
            for lab, st in settings:
                z = y if st is None else formant_postfilter(y, lpcs, *st, gain_alpha=a.gain_alpha)
                sc = scorer.score(audio, np.clip(np.round(z), -32768, 32767).astype(np.int16))
                for m in METRICS:
                    scores[fam][lab][m].append(float(sc[m]))
    for fam in a.families:
        print(f"\n{fam}, {len(clips)} validation clips, gain_alpha {a.gain_alpha}, seed {a.seed}; label g_n/g_d/mu; "
              "paired difference to no postfilter (95 % CI, wins)")
        print("\n".join(paired_table(scores[fam], "none", METRICS, label="postfilter")))
    if a.json:
        save_run(a.json, clips, a.seed, scores, gain_alpha=a.gain_alpha, settings={lab: st for lab, st in settings})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
