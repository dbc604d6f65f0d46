#!/usr/bin/env python3
"""Speaker -> group map (C = 4 by default) for every speaker of the training corpus.

LibriSpeech speakers keep the k-means assignment of ``models/speaker_groups.json``; the other
corpus speakers (studio, synthetic) get the nearest centroid computed by ``scripts/assign_groups.py``.

Usage: python scripts/make_training_groups.py --assigned data/corpus_groups.json --out models/training_groups.json

Adding speakers to an existing map without regrouping anyone (e.g. the KDE speakers):
    python scripts/assign_groups.py --corpus data/corpus --subsets kde-klettres kde-ktuberling --out data/kde_groups.json
    python scripts/make_training_groups.py --extend models/training_groups.json --assigned data/kde_groups.json
Every speaker already in the --extend map keeps its group; only speakers it lacks are added.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--groups", type=Path, default=REPO / "models/speaker_groups.json")
    ap.add_argument("--assigned", type=Path, required=True, help="output of scripts/assign_groups.py")
    ap.add_argument("--C", type=int, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "models/training_groups.json")
    ap.add_argument("--extend", type=Path, default=None,
                    help="existing training_groups.json: keep all its speakers' groups, add only new speakers")
    args = ap.parse_args()
    groups = json.loads(args.groups.read_text())
    C = str(args.C or groups["default_groups"])
    mapping = {str(k): int(v) for k, v in groups["groupings"][C]["assignment"].items()}
    sources: dict = {"kmeans": args.groups.name, "nearest_centroid": str(args.assigned)}
    if args.extend is not None:
        try:
            base = json.loads(args.extend.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"pnsc: error: cannot read {args.extend}: {exc}", file=sys.stderr)
            return 2
        if str(base.get("C")) != C:
            print(f"pnsc: error: {args.extend} is for C = {base.get('C')}, not {C}", file=sys.stderr)
            return 2
        mapping = {str(k): int(v) for k, v in base["assignment"].items()}
        old = base.get("source", {}).get("nearest_centroid", [])
        sources = {**base.get("source", {}),
                   "nearest_centroid": (old if isinstance(old, list) else [old]) + [str(args.assigned)]}
    assigned = json.loads(args.assigned.read_text())
    added = 0
    for spk, info in assigned["speakers"].items():
        if spk in mapping:
            continue
        mapping[spk] = int(info["groups"][C])
        added += 1
    sizes = collections.Counter(mapping.values())
    out = {
        "C": int(C),
        "source": sources,
        "sizes": [sizes.get(g, 0) for g in range(int(C))],
        "assignment": dict(sorted(mapping.items())),
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(f"{len(mapping)} speakers ({added} assigned by nearest centroid); sizes {out['sizes']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
