#!/usr/bin/env python3
"""Does a decoder put pitch periodicity where the speech has none?  Periodicity at the codec's pitch lag,
voiced against unvoiced frames, of decoded speech and of the reference.

For each validation clip (never test material) the clip's 1.6 kb/s quantized features give every 10 ms frame
its pitch lag (round(period) clamped to 32..255, as the LTP taps use it) and its pitch correlation c. Per frame,
the periodicity is the normalised correlation between the frame's 160 samples and the 160 samples one lag
earlier. Frames with c < --gate count as unvoiced.  Per clip and decoder: mean periodicity over voiced and over
unvoiced frames (and of the band above 3 kHz over voiced frames), the level of unvoiced frames against the
reference's (dB), and the share of frames more than 6 dB louder than the reference's (bursts).  Prints means with paired
differences to the first run (95 % CI over clips), and the reference's own periodicity:

    python scripts/ltp_periodicity.py runs/r6/lpcnet-bl-s runs/r6/lpcnet-bl-s.ltp5 [--limit 20] [--gate 0.5]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from pnsc.receiver.runtime.model import ltp_lag  # noqa: E402
from pnsc.shared.constants import CORR_INDEX, PERIOD_INDEX  # noqa: E402
from pnsc.shared.constants import FRAME_SIZE as FRAME  # noqa: E402

STATS = ("periodicity_voiced", "periodicity_unvoiced", "periodicity_voiced_above_3k", "unvoiced_level_db",
         "loud_frames_pct")
LOUD_DB = 6.0  # a frame this much louder than the reference's counts as a burst
HIGH_HZ = 3000.0


def high_band(x: np.ndarray) -> np.ndarray:
    """``x`` above HIGH_HZ (4th-order Butterworth, zero phase)."""
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(4, HIGH_HZ, "highpass", fs=16000, output="sos"), x)


def lag_periodicity(x: np.ndarray, qf: np.ndarray, t: int) -> float | None:
    """Normalised correlation of frame ``t`` of ``x`` with the samples one pitch lag earlier."""
    lag = ltp_lag(qf[t, PERIOD_INDEX])
    s = t * FRAME
    a, b = x[s:s + FRAME], x[s - lag:s - lag + FRAME]
    den = np.sqrt(a @ a * (b @ b))
    return float(a @ b / den) if den > 1e-9 else None


def frame_stats(x: np.ndarray, ref: np.ndarray, qf: np.ndarray, gate: float) -> dict[str, float]:
    """Mean lag periodicity of ``x`` over voiced / unvoiced frames (and of its band above HIGH_HZ over voiced
    frames), and its unvoiced level against ``ref``."""
    x = np.asarray(x, np.float64)
    hi = high_band(x)
    per_hi = []
    loud = n_frames = 0
    ref = np.asarray(ref, np.float64)
    per = {True: [], False: []}
    e_x = e_ref = 0.0
    for t in range(2, min(len(qf), len(x) // FRAME, len(ref) // FRAME)):  # frame 2 on: a whole lag behind
        s = t * FRAME
        a = x[s:s + FRAME]
        r = ref[s:s + FRAME]
        n_frames += 1
        loud += int(a @ a > (r @ r + 1e3 * FRAME) * 10 ** (LOUD_DB / 10))  # 1e3 * FRAME: a floor for silence
        voiced = bool(qf[t, CORR_INDEX] >= gate)
        v = lag_periodicity(x, qf, t)
        if v is not None:
            per[voiced].append(v)
        if voiced:
            v = lag_periodicity(hi, qf, t)
            if v is not None:
                per_hi.append(v)
        else:
            e_x += float(a @ a)
            e_ref += float(ref[s:s + FRAME] @ ref[s:s + FRAME])
    level = 10 * np.log10((e_x + 1e-9) / (e_ref + 1e-9)) if e_ref > 0 else float("nan")
    return {"periodicity_voiced": float(np.mean(per[True])) if per[True] else float("nan"),
            "periodicity_unvoiced": float(np.mean(per[False])) if per[False] else float("nan"),
            "periodicity_voiced_above_3k": float(np.mean(per_hi)) if per_hi else float("nan"),
            "unvoiced_level_db": float(level), "loud_frames_pct": 100.0 * loud / max(n_frames, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders; the first is the reference decoder")
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--gate", type=float, default=0.5, help="pitch correlation below which a frame is unvoiced")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    for r in a.runs:
        if not (r / "last.pt").is_file() and not (r / "best.pt").is_file():
            p.error(f"{r}: no checkpoint")
    if not a.val_shard.is_file() or "test" in a.val_shard.name:
        p.error(f"{a.val_shard}: not a validation shard")

    from compare_branches import export_alone

    from pnsc.evaluation.stats import paired_table
    from pnsc.receiver.runtime.stream import StreamingDecoder
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features
    from pnsc.training.lpcnet.multi import split_branch
    from pnsc.training.lpcnet.val_clips import validation_clips

    clips = validation_clips(a.val_shard, a.limit, a.max_seconds)
    scores = {"reference": {k: [] for k in STATS}}
    with tempfile.TemporaryDirectory() as d:
        decs = {}
        for i, r in enumerate(a.runs):
            models, family, group = export_alone(r, split_branch(r.name)[0], Path(d), f"{i}-{r.name}")
            label = r.name if r.name not in decs else f"{r.parent.name}/{r.name}"
            decs[label] = StreamingDecoder(family, group, models_dir=models)
            scores[label] = {k: [] for k in STATS}
        for i, (utt, _spk, audio) in enumerate(clips):
            qf = quantize_features(extract_features(audio))[1]
            ref = audio * 32768.0
            for k, v in frame_stats(ref, ref, qf, a.gate).items():
                scores["reference"][k].append(v)
            for name, dec in decs.items():
                dec.reset()
                y = dec.decode(qf).astype(np.float64)
                for k, v in frame_stats(y, ref, qf, a.gate).items():
                    scores[name][k].append(v)
            print(f"[{i + 1}/{len(clips)}] {utt}", file=sys.stderr, flush=True)
    first = next(iter(decs))
    print(f"\n{len(clips)} validation clips, unvoiced = pitch correlation < {a.gate}; paired difference to {first} "
          "(95 % CI, wins/n); level: unvoiced frames against the reference's, dB; loud frames: % of frames "
          f"over {LOUD_DB:.0f} dB louder than the reference's")
    print("\n".join(paired_table(scores, first, STATS, label="signal")))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"clips": [c[0] for c in clips], "gate": a.gate, "scores": scores}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
