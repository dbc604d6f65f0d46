"""Validation loss of trained checkpoints on the validation speakers, per speaker group, on any device.

    python -m pnsc.training.lpcnet.validate_runs RUNS_ROOT --val-data EX/val [--features qfeatures]
        [--groups models/training_groups.json] [--json OUT.json] [--device cpu]

Evaluates each run's ``last.pt`` (the weights that get exported) teacher-forced, without noise, and
prints the per-group losses and eq. (3) of the paper (per-group losses weighted by validation speakers
per group). Personalized runs are scored on their own group only, baselines on every group.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .data import ShardSet, load_group_map, select_speakers
from .export import load_checkpoint
from .train import Dist, eq3, speakers_per_group, validate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--val-data", required=True, action="append")
    ap.add_argument("--features", default="qfeatures", choices=["qfeatures", "features"])
    ap.add_argument("--groups", default="models/training_groups.json")
    ap.add_argument("--splits", default="models/speaker_splits.json")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", default=None, help="comma-separated run names (default: every run)")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    group_map = load_group_map(a.groups)
    n_groups = max(group_map.values()) + 1
    val_spk = select_speakers(a.splits, "validation", group_map, None)
    val = ShardSet(a.val_data, val_spk, group_map=group_map, device=dev, max_resident_mb=4000, seed=0)
    weights = speakers_per_group(val.speaker_ids, group_map)
    D = Dist(a.device)
    results = {}
    only = set(a.only.split(",")) if a.only else None
    for run in sorted(p for p in a.runs.iterdir() if (p / "last.pt").is_file() and (only is None or p.name in only)):
        # as saved (LTP taps and their gate included), with the weights it ships (its average under --ema-decay)
        model, ck = load_checkpoint(run / "last.pt")
        model.to(dev)
        with torch.no_grad():
            total, groups = validate(model, val, a.features, a.batch, D, None, n_groups)
        grp = ck["args"].get("group")
        if grp not in (None, "all"):
            groups = {str(grp): groups[str(grp)]}
        weighted = eq3(groups, weights)
        results[run.name] = {"step": ck["step"], "groups": groups, "eq3": weighted, "total": total,
                             "train_seconds": ck.get("train_seconds")}
        print(f"{run.name:18s} step {ck['step']:5d}  " + "  ".join(f"g{g} {v:.4f}" for g, v in sorted(groups.items()))
              + f"  eq3 {weighted:.4f}", flush=True)
    out = {"features": a.features, "val_speakers_per_group": weights, "runs": results}
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
