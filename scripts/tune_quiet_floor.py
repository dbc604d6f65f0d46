#!/usr/bin/env python3
"""Does a larger sampling floor in quiet frames take the hiss out of silences?  Decoded validation speech, scored.

The decoders sample each excitation value from ``max(softmax(boost * logits) - pdf_floor, 0)`` renormalised;
the flat runtime default is PDF_FLOOR = 0.0005.  ``pnsc.receiver.quiet_floor.QuietFloor`` raises the floor to
``quiet_floor`` in frames whose energy (quantized c0) is at or below ``quiet_c0``, keeps ``base`` at or above
``loud_c0``, linear in c0 between.  First this prints the percentiles of c0 over the clips' frames (to place the
thresholds), then for each validation clip (never test material) and decoder it decodes every setting with
the same seed (same uniform draws: the paired difference is the floor alone) and scores PESQ-WB, STOI, ESTOI,
DNSMOS SIG/BAK/OVRL, paired against the flat floor (95 % CI over clips):

    python scripts/tune_quiet_floor.py [--families lpcnet-bl-s plpcnet-s]
        [--settings 0.002,-2,1.5 0.003,-7,-2 ...] [--base 0.0005] [--limit 20] [--max-seconds 6] [--seed 0]
        [--val-shard data/audio_shards/audio-validation-00000.tar] [--json F]
    python scripts/tune_quiet_floor.py --pool run_seed0.json run_seed1.json   # per-clip mean of runs
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.receiver.quiet_floor import C0_INDEX, QuietFloor, decode_with_floor  # noqa: E402
from pnsc.evaluation.tuning import add_clip_arguments, pool_or_check_shard, save_run  # noqa: E402
from pnsc.shared.constants import PDF_FLOOR  # noqa: E402

METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
# thresholds from the c0 percentiles of the 20 validation clips' quantized frames (10 % -6.7, 20 % -2.0,
# 30 % +1.4): A = quiet below the 20th percentile, ramp to the 30th; B = quiet below the 10th, ramp to the 20th
DEFAULT_SETTINGS = [f"{q},{lo},{hi}" for lo, hi in ((-2.0, 1.5), (-7.0, -2.0)) for q in (0.002, 0.003)]
PERCENTILES = (1, 5, 10, 20, 25, 30, 40, 50, 75, 90, 99)
REF = "flat"


def parse_setting(text: str) -> tuple[float, float, float]:
    """'quiet_floor,quiet_c0,loud_c0' -> floats (argparse type: a bad one is a usage error)."""
    try:
        q, lo, hi = (float(v) for v in text.split(","))
        QuietFloor(q, lo, hi)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"setting {text!r}: {e} (want quiet_floor,quiet_c0,loud_c0)") from None
    return q, lo, hi


def label(q: float, lo: float, hi: float) -> str:
    return f"q{q:g}@{lo:g}..{hi:g}"


def quiet_level_db(pcm: np.ndarray, feats: np.ndarray, c0_max: float) -> float:
    """Mean power (dB re 1 LSB^2) of ``pcm`` over the frames whose quantized c0 is at most ``c0_max``."""
    from pnsc.shared.constants import FRAME_SIZE

    n = min(len(feats), len(pcm) // FRAME_SIZE)
    frames = np.asarray(pcm[: n * FRAME_SIZE], np.float64).reshape(n, FRAME_SIZE)
    sel = feats[:n, C0_INDEX] <= c0_max
    return float(10 * np.log10(np.mean(frames[sel] ** 2) + 1e-3)) if sel.any() else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["lpcnet-bl-s", "plpcnet-s"])
    p.add_argument("--settings", nargs="+", type=parse_setting, default=[parse_setting(s) for s in DEFAULT_SETTINGS],
                   help="quiet_floor,quiet_c0,loud_c0 triples (default: 0.002 and 0.003 x ramps -2..1.5, -7..-2)")
    p.add_argument("--base", type=float, default=PDF_FLOOR, help=f"floor of loud frames and the flat reference "
                   f"(default {PDF_FLOOR})")
    add_clip_arguments(p, seed_help="decoder sampling seed (the same for every setting)")
    a = p.parse_args(argv)
    if pool_or_check_shard(p, a, REF, METRICS, label="floor", ref_text="the flat floor"):
        return 0
    if a.limit < 1:
        p.error("--limit must be >= 1")
    try:
        settings = [(REF, None)] + [(label(*st), QuietFloor(*st, base=a.base)) for st in a.settings]
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
    clips = validation_clips(a.val_shard, a.limit, a.max_seconds)
    if not clips:
        p.error(f"{a.val_shard}: no validation clips")
    feats = [quantize_features(extract_features(audio))[1] for _u, _s, audio in clips]
    c0 = np.concatenate([f[:, C0_INDEX] for f in feats])
    pct = {str(q): float(v) for q, v in zip(PERCENTILES, np.percentile(c0, PERCENTILES))}
    print(f"quantized c0 over {c0.size} frames of {len(clips)} validation clips, percentiles:")
    print("  " + "  ".join(f"{q}%: {v:+.2f}" for q, v in pct.items()))
    for lab, qf in settings[1:]:
        fl = qf.floors(np.concatenate(feats))
        print(f"  {lab}: {np.mean(fl >= qf.quiet_floor - 1e-12):.0%} of frames at the quiet floor, "
              f"{np.mean(fl <= qf.base + 1e-12):.0%} at the base")

    scorer = Scorer(metrics=METRICS)
    scores = {fam: {lab: {m: [] for m in METRICS} for lab, _ in settings} for fam in a.families}
    # the mechanism itself: output level (dB re 1 LSB) in the clips' quietest frames (c0 below the 20th percentile)
    quiet_c0 = float(np.percentile(c0, 20))
    levels = {fam: {lab: [] for lab, _ in settings} for fam in a.families}
    clean_levels = []
    decs: dict[tuple[str, int | None], StreamingDecoder] = {}
    for (_utt, spk, audio), qf in tqdm(list(zip(clips, feats)), desc="clips"):
        clean_levels.append(quiet_level_db(np.clip(np.round(audio * 32768.0), -32768, 32767), qf, quiet_c0))
        for fam in a.families:
            group = None if fam.startswith("lpcnet") else int(gmap[spk])
            dec = decs.setdefault((fam, group), StreamingDecoder(fam, group, seed=a.seed, pdf_floor=a.base))
            for lab, rule in settings:
                dec.reset()
                y = dec.decode(qf) if rule is None else decode_with_floor(dec, qf, rule.floors(qf))
                sc = scorer.score(audio, y)
                levels[fam][lab].append(quiet_level_db(y, qf, quiet_c0))
                for m in METRICS:
                    scores[fam][lab][m].append(float(sc[m]))
    tables = {}
    for fam in a.families:
        head = (f"{fam}, {len(clips)} validation clips, base {a.base:g}, seed {a.seed}; label q<quiet floor>@"
                f"<quiet c0>..<loud c0>; paired difference to the flat floor {a.base:g} (95 % CI, wins)")
        tables[fam] = [head] + paired_table(scores[fam], REF, METRICS, label="floor")
        tables[fam] += ["", f"output level in the clips' quietest frames (quantized c0 <= {quiet_c0:+.2f}, the 20th "
                        f"percentile), mean over the {int(np.sum(np.isfinite(clean_levels)))} clips that have such frames, dB re 1 LSB: "
                        f"clean input {np.nanmean(clean_levels):.1f}"]
        tables[fam] += [f"  {lab}: {np.nanmean(levels[fam][lab]):.1f}" for lab, _ in settings]
        print("\n" + "\n".join(tables[fam]))
    if a.json:
        save_run(a.json, clips, a.seed, scores, base=a.base, c0_percentiles=pct,
                 settings={lab: (None if r is None else [r.quiet_floor, r.quiet_c0, r.loud_c0]) for lab, r in settings},
                 quiet_levels_db=levels, clean_quiet_levels_db=clean_levels, tables=tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
