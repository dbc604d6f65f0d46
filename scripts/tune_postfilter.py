#!/usr/bin/env python3
"""Does a pitch postfilter on the decoder's output help?  Decoded validation speech, filtered and scored.

LPCNet's voiced frames come out far noisier than speech (periodicity at the pitch lag 0.47 against 0.80,
``scripts/ltp_periodicity.py``). A long-term postfilter, as classic LPC codecs run after synthesis, raises the
harmonics against the noise between them: per 10 ms frame, with the frame's quantized pitch period T and pitch
correlation c (both already at the receiver), the band below ``--cutoff`` Hz becomes
``(x[n] + b x[n - T]) / (1 + b)``, ``b = strength * clip((c - c0) / (1 - c0), 0, 1)`` (causal, no added delay;
b and T change at frame edges only). The band above stays as decoded (a comb there sounds buzzy); the split is a
linear-phase FIR (2 ms of delay when streamed).

For each validation clip (never test material) and decoder, every (strength, cutoff) setting is scored with
PESQ-WB, STOI, ESTOI and DNSMOS OVRL, paired against the unfiltered output (95 % CI over clips):

    python scripts/tune_postfilter.py [--families lpcnet-bl-s plpcnet-s] [--strengths 0.3 0.5 0.8]
        [--cutoffs 2000 4000 8000] [--c0 0.3] [--limit 20]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.receiver.runtime.model import ltp_lag  # noqa: E402
from pnsc.shared.constants import CORR_INDEX, PERIOD_INDEX  # noqa: E402
from pnsc.shared.constants import FRAME_SIZE as FRAME  # noqa: E402

FIR_TAPS = 63
METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_ovrl")


def pitch_postfilter(x: np.ndarray, qf: np.ndarray, strength: float, cutoff_hz: float, c0: float) -> np.ndarray:
    """The long-term postfilter described above, on int16-scaled ``x`` (float64 out)."""
    from scipy.signal import firwin

    x = np.asarray(x, np.float64)
    if cutoff_hz >= 8000:
        low, high = x, np.zeros_like(x)
    else:
        # linear-phase split, so that x - low holds no low band (a causal IIR's phase lag leaks it there);
        # offline it is applied centred: streamed, it costs FIR_TAPS // 2 samples (2 ms) of delay
        low = np.convolve(x, firwin(FIR_TAPS, cutoff_hz, fs=16000), mode="same")
        high = x - low  # complementary: strength 0 gives x back exactly
    out = low.copy()
    for t in range(min(len(qf), len(x) // FRAME)):
        c = float(qf[t, CORR_INDEX])
        b = strength * float(np.clip((c - c0) / (1.0 - c0), 0.0, 1.0))
        if b <= 0.0:
            continue
        lag = ltp_lag(qf[t, PERIOD_INDEX])
        s = t * FRAME
        if s - lag < 0:
            continue
        out[s:s + FRAME] = (low[s:s + FRAME] + b * low[s - lag:s - lag + FRAME]) / (1.0 + b)
    return out + high


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["lpcnet-bl-s", "plpcnet-s"])
    p.add_argument("--strengths", nargs="+", type=float, default=[0.3, 0.5, 0.8])
    p.add_argument("--cutoffs", nargs="+", type=float, default=[2000.0, 4000.0, 8000.0])
    p.add_argument("--c0", type=float, default=0.3, help="pitch correlation where the filter starts")
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--groups", type=Path, default=REPO / "models" / "training_groups.json")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if not a.val_shard.is_file() or "test" in a.val_shard.name:
        p.error(f"{a.val_shard}: not a validation shard")

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
    scorer = Scorer(metrics=METRICS)
    settings = [("none", 0.0, 8000.0)] + [(f"s{s:g}/{c / 1000:g}k", s, c) for c in a.cutoffs for s in a.strengths]
    scores = {fam: {lab: {m: [] for m in METRICS} for lab, *_ in settings} for fam in a.families}
    decs: dict[tuple[str, int | None], StreamingDecoder] = {}
    for _utt, spk, audio in tqdm(clips, desc="clips"):
        qf = quantize_features(extract_features(audio))[1]
        for fam in a.families:
            group = None if fam.startswith("lpcnet") else int(gmap[spk])
            dec = decs.setdefault((fam, group), StreamingDecoder(fam, group))
            dec.reset()
            y = dec.decode(qf).astype(np.float64)
            for lab, s, c in settings:
                z = y if s == 0 else pitch_postfilter(y, qf, s, c, a.c0)
                sc = scorer.score(audio, np.clip(np.round(z), -32768, 32767).astype(np.int16))
                for m in METRICS:
                    scores[fam][lab][m].append(float(sc[m]))
    for fam in a.families:
        print(f"\n{fam}, {len(clips)} validation clips, c0 {a.c0}; paired difference to no postfilter (95 % CI, wins)")
        print("\n".join(paired_table(scores[fam], "none", METRICS, label="postfilter")))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"clips": [c[0] for c in clips], "c0": a.c0, "scores": scores}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
