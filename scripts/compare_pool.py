#!/usr/bin/env python3
"""Pool per-group compare_branches.py outputs: each clip paired within its group, all groups together.

    python scripts/compare_pool.py docs/figures/round6/full/plpcnet-s-g{0,1,2,3}.json --title PLPCNet-S

Every JSON must compare the same two (or more) roles in the same order (reference first, as given to
compare_branches.py); the pooled table labels them by the first file's labels with the group stripped.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_ovrl")


def pool(results: list[dict], first: int | None = None) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``[compare_branches JSON]`` -> ``{clip set: {role: {metric: pooled values}}}``; ``first`` keeps only
    each file's first roles (the reference and the runs every group shares, e.g. when one group's file also
    compares a branch)."""
    out: dict = {}
    for d in results:
        for set_name, block in d.items():
            if set_name == "runs":
                continue
            labels = list(block["scores"])[:first]
            roles = [re.sub(r"-g\d+", "", lab) for lab in labels]
            dst = out.setdefault(set_name, {r: {m: [] for m in METRICS} for r in roles})
            if list(dst) != roles:
                raise SystemExit(f"compare_pool: error: runs {labels} do not match {list(dst)}")
            for role, lab in zip(roles, labels):
                for m in METRICS:
                    dst[role][m] += block["scores"][lab][m]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jsons", nargs="+", type=Path)
    p.add_argument("--title", default="pooled")
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--first", type=int, default=None,
                   help="pool only each file's first N runs (the reference first): files that also compare a branch")
    a = p.parse_args(argv)
    if a.first is not None and a.first < 2:
        p.error("--first must be at least 2 (the reference and one run)")
    from pnsc.evaluation.stats import paired_table

    for f in a.jsons:
        if not f.is_file():
            p.error(f"{f}: not found")
    pooled = pool([json.loads(f.read_text()) for f in a.jsons], a.first)
    lines = []
    for set_name, scores in pooled.items():
        ref = next(iter(scores))
        n = len(scores[ref][METRICS[0]])
        lines += [f"{a.title}, {len(a.jsons)} files pooled, {set_name} speakers, {n} clips; paired difference "
                  f"to {ref} (95 % CI, wins)", "", *paired_table(scores, ref, METRICS), ""]
    print("\n".join(lines))
    if a.markdown:
        a.markdown.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
