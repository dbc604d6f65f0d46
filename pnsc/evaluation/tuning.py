"""Shared pieces of the validation-speech tuning scripts (``scripts/tune_*.py``): their clip options and
pooling earlier runs' ``--json`` over decoder seeds (a clip's scores averaged, the clip the paired item)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def add_clip_arguments(p: argparse.ArgumentParser, seed_help: str) -> None:
    """``--val-shard --groups --limit --max-seconds --seed --json --pool`` as every tuning script takes them."""
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--groups", type=Path, default=REPO / "models" / "training_groups.json")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--max-seconds", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--pool", type=Path, nargs="+", default=None,
                   help="no decoding: pool earlier --json runs (per-clip mean, e.g. over seeds) and print the tables")


def save_run(path: Path, clips: list, seed: int, scores: dict, **extra) -> None:
    """One tuning run as ``--json`` (the clip ids, the decoder seed and the scores ``--pool`` reads back, plus
    the script's own ``extra`` fields)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"clips": [c[0] for c in clips], "seed": seed, **extra, "scores": scores}, indent=1))


def pooled_tables(paths: list[Path], ref: str, metrics: tuple[str, ...], label: str, ref_text: str) -> list[str]:
    """Per-clip mean over several runs' --json (same clips, e.g. other seeds), settings common to all, as
    paired tables against ``ref`` (described as ``ref_text``)."""
    from pnsc.evaluation.stats import paired_table

    runs = [json.loads(p.read_text()) for p in paths]
    if any(r["clips"] != runs[0]["clips"] for r in runs):
        raise ValueError("the runs to pool scored different clips")
    lines = []
    for fam in runs[0]["scores"]:
        labs = [lab for lab in runs[0]["scores"][fam] if all(lab in r["scores"].get(fam, {}) for r in runs)]
        sc = {lab: {m: list(np.mean([r["scores"][fam][lab][m] for r in runs], axis=0)) for m in metrics}
              for lab in labs}
        seeds = ", ".join(str(r.get("seed", 0)) for r in runs)
        lines += ["", f"{fam}, {len(runs[0]['clips'])} validation clips, per-clip mean over seeds {seeds}; "
                  f"paired difference to {ref_text} (95 % CI, wins)"]
        lines += paired_table(sc, ref, metrics, label=label)
    return lines


def pool_or_check_shard(p: argparse.ArgumentParser, a: argparse.Namespace, ref: str, metrics: tuple[str, ...],
                        label: str, ref_text: str) -> bool:
    """With ``--pool``: print the pooled tables and return True (nothing to decode). Otherwise refuse a shard
    that is not a validation shard (never test material) and return False."""
    if a.pool:
        try:
            print("\n".join(pooled_tables(a.pool, ref, metrics, label, ref_text)))
        except (OSError, ValueError, KeyError) as e:
            p.error(f"cannot pool {[str(x) for x in a.pool]}: {e}")
        return True
    if not a.val_shard.is_file() or "test" in a.val_shard.name:
        p.error(f"{a.val_shard}: not a validation shard")
    return False
