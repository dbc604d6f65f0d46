#!/usr/bin/env python3
"""Find decoder dropouts: stretches where the talker speaks and the decoder falls silent.

A decoder that has overfitted (round 10's PLPCNet-L group 3, fine-tuned for ~300 passes over 0.3 h of its
group's speech) can fall into a silent state for half a second or more before it recovers, on some sampling
seeds and not others. Mean scores over a few clips hide this; this scan decodes every clip with several seeds
and counts, per decoder, the 100 ms windows where the reference is active (within ``--active-db`` of the
clip's loudest window) and the decoded speech is more than ``--drop-db`` below the reference:

    python scripts/dropout_scan.py --decoders plpcnet-l:3 lpcnet-bl-l [--models-dir DIR] [--seeds 4] \\
        [--limit 8] [--train-shard data/audio_shards/audio-train-00000.tar]

``family:group`` names a personalized decoder; it decodes its group's speakers' clips, and generic decoders
given with it decode the same clips. A dropout event is at least ``--min-windows`` such windows in a row.
Prints one line per decoder; ``--json`` writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WINDOW = 1600  # 100 ms at 16 kHz


def window_levels(x: np.ndarray) -> np.ndarray:
    """RMS level in dB of each whole 100 ms window."""
    n = len(x) // WINDOW
    w = np.asarray(x[: n * WINDOW], dtype=np.float64).reshape(n, WINDOW)
    return 10.0 * np.log10(np.mean(w * w, axis=1) + 1e-12)


def dropouts(ref: np.ndarray, dec: np.ndarray, active_db: float = 30.0, drop_db: float = 30.0,
             min_windows: int = 3) -> tuple[int, int, int]:
    """(active windows, dropped active windows, dropout events of ``min_windows``+ dropped windows in a row)."""
    n = min(len(ref), len(dec))
    lr, ld = window_levels(ref[:n]), window_levels(dec[:n])
    if lr.size == 0:
        return 0, 0, 0
    active = lr >= lr.max() - active_db
    dropped = active & (ld < lr - drop_db)
    events, run = 0, 0
    for d in dropped:
        run = run + 1 if d else 0
        events += run == min_windows
    return int(active.sum()), int(dropped.sum()), events


def parse_decoder(spec: str) -> tuple[str, int | None]:
    family, _, group = spec.partition(":")
    return family, (int(group) if group else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decoders", nargs="+", required=True, help="family or family:group, e.g. plpcnet-l:3")
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--limit", type=int, default=8, help="clips per shard")
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--train-shard", type=Path, nargs="*", default=[])
    p.add_argument("--groups", type=Path, default=REPO / "models" / "training_groups.json")
    p.add_argument("--active-db", type=float, default=30.0)
    p.add_argument("--drop-db", type=float, default=30.0)
    p.add_argument("--min-windows", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    decs = [parse_decoder(s) for s in a.decoders]
    groups = {g for _, g in decs if g is not None}
    if len(groups) > 1:
        p.error("scan the personalized decoders of one group (and generic ones) at a time")
    for shard in [a.val_shard, *a.train_shard]:
        if not shard.is_file():
            p.error(f"{shard}: not found")
    from tqdm import tqdm

    from pnsc.receiver.runtime.stream import StreamingDecoder
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features
    from pnsc.training.lpcnet.data import load_group_map
    from pnsc.training.lpcnet.val_clips import validation_clips

    g = next(iter(groups), None)
    spk = None
    if g is not None:
        spk = {s for s, sg in load_group_map(a.groups).items() if sg == g}
    clips = validation_clips(a.val_shard, a.limit, a.max_seconds, speakers=spk)
    for shard in a.train_shard:
        clips += validation_clips(shard, a.limit, a.max_seconds, source="librispeech", speakers=spk)
    if not clips:
        p.error("no clips of these speakers in the shards")
    totals = {s: {"active": 0, "dropped": 0, "events": 0, "decodes_with_events": 0, "worst": []} for s in a.decoders}
    # one decoder per (decoder, seed), loaded once; reset() restarts its random stream from its seed per clip
    streams = {(spec, seed): StreamingDecoder(family, group, seed=seed, models_dir=a.models_dir, precision="fp32")
               for spec, (family, group) in zip(a.decoders, decs) for seed in range(a.seeds)}
    for utt, _, audio in tqdm(clips, desc="clips"):
        coded = quantize_features(extract_features(audio))[1]
        for spec in a.decoders:
            for seed in range(a.seeds):
                dec = streams[spec, seed]
                dec.reset()
                act, drop, ev = dropouts(audio, dec.decode(coded), a.active_db, a.drop_db, a.min_windows)
                t = totals[spec]
                t["active"] += act
                t["dropped"] += drop
                t["events"] += ev
                t["decodes_with_events"] += ev > 0
                if ev:
                    t["worst"].append(f"{utt} seed {seed}: {drop} of {act} windows")
    n = len(clips) * a.seeds
    for spec, t in totals.items():
        frac = t["dropped"] / max(1, t["active"])
        print(f"{spec}: {t['dropped']} of {t['active']} active 100 ms windows dropped ({100 * frac:.2f} %), "
              f"{t['events']} dropout(s) of {a.min_windows * 100}+ ms in {t['decodes_with_events']} of {n} decodes"
              + (f"; e.g. {'; '.join(t['worst'][:3])}" if t["worst"] else ""))
    if a.json:
        a.json.write_text(json.dumps({"clips": [c[0] for c in clips], "seeds": a.seeds, "decoders": totals}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
