#!/usr/bin/env python3
"""Two `scripts/exposure_bias.py` results of the same clips and seed, paired per clip.

For each clip set (validation, training speakers) and decoding mode, NEW minus OLD (95 % CI, Student t,
wins/n); then the gaps that the training recipe is meant to move, per clip, NEW's gap minus OLD's:

  free running   B_tf_sampled - A_free_running   (what the decoder loses to its own past; noise injection's target)
  sampling       C_tf_mean - B_tf_sampled        (what drawing a sample costs against the distribution's mean)

and the teacher-forced statistics (cross-entropy, entropy, prediction gain). A row whose CI excludes zero is
marked ``*``.

    python scripts/compare_exposure_bias.py OLD.json NEW.json [--old-label bf16] [--new-label fp32]
        [--metrics pesq_wb stoi estoi dnsmos_ovrl] [--markdown OUT.md]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pnsc.evaluation.stats import paired_difference, show_table  # noqa: E402

DEFAULT_METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_ovrl")
GAPS = (("free running (B - A)", "B_tf_sampled", "A_free_running"),
        ("sampling (C - B)", "C_tf_mean", "B_tf_sampled"))
TF_STATS = ("cross_entropy", "entropy", "pred_gain_db")


def load(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"compare_exposure_bias: cannot read {path}: {e}")
    if not isinstance(d, dict) or not isinstance(d.get("sets"), dict):
        raise SystemExit(f"compare_exposure_bias: {path} is not an exposure_bias.py result (no 'sets')")
    return d


def _cell(d: dict) -> str:
    if d["mean"] is None:
        return "–"
    ci = "n/a" if d["ci95"] is None else f"{d['ci95']:.3f}"
    return f"{d['mean']:+.3f} ± {ci} ({d['wins']}/{d['n']})" + (" *" if d["significant"] else "")


def compare_set(old: dict, new: dict, name: str, metrics) -> list[str]:
    """Markdown lines for one clip set present in both results."""
    if old["clips"] != new["clips"]:
        raise SystemExit(f"compare_exposure_bias: the {name} clips differ (same --limit, shards and seed needed)")
    so, sn = old["scores"], new["scores"]
    modes = [m for m in so if m in sn]
    lines = [f"{name} speakers, {len(old['clips'])} clips", "", "| mode | " + " | ".join(metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for mode in modes:
        lines.append(f"| {mode} | " + " | ".join(
            _cell(paired_difference(sn[mode][m], so[mode][m])) for m in metrics) + " |")
    lines += ["", "gap, NEW minus OLD (per clip; negative = NEW loses less)", "",
              "| gap | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for label, hi, lo in GAPS:
        if not all(k in so and k in sn for k in (hi, lo)):
            continue
        cells = []
        for m in metrics:
            g_new = [a - b for a, b in zip(sn[hi][m], sn[lo][m])]
            g_old = [a - b for a, b in zip(so[hi][m], so[lo][m])]
            mean_old = sum(g_old) / len(g_old)
            cells.append(f"{_cell(paired_difference(g_new, g_old))} [OLD {mean_old:+.3f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    to, tn = old.get("teacher_forced_loss", {}), new.get("teacher_forced_loss", {})
    stats = []
    for k in TF_STATS:
        if k in to and k in tn:
            d = paired_difference(tn[k]["per_clip"], to[k]["per_clip"])
            ci = "n/a" if d["ci95"] is None else f"{d['ci95']:.4f}"
            stats.append(f"{k} {tn[k]['mean']:.4f} / {to[k]['mean']:.4f} ({d['mean']:+.4f} ± {ci})")
    if stats:
        lines += ["", "teacher-forced, NEW / OLD (difference): " + ", ".join(stats)]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--old-label", default=None, help="name of OLD in the heading (default: its checkpoint)")
    p.add_argument("--new-label", default=None)
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--markdown", type=Path, default=None)
    a = p.parse_args(argv)
    old, new = load(a.old), load(a.new)
    if old.get("seed") != new.get("seed"):
        raise SystemExit(f"compare_exposure_bias: seeds differ ({old.get('seed')} / {new.get('seed')})")
    lo, ln = a.old_label or old.get("checkpoint", str(a.old)), a.new_label or new.get("checkpoint", str(a.new))
    lines = [f"{ln} (NEW) against {lo} (OLD), same clips and seed {new.get('seed')}: paired mean ± 95 % CI "
             "(wins/n)", ""]
    sets = [s for s in old["sets"] if s in new["sets"]]
    if not sets:
        raise SystemExit("compare_exposure_bias: no clip set in common")
    for s in sets:
        for m in a.metrics:
            if any(m not in sc for sc in old["sets"][s]["scores"].values()):
                raise SystemExit(f"compare_exposure_bias: no metric {m!r} in {a.old} ({s})")
        lines += compare_set(old["sets"][s], new["sets"][s], s, a.metrics)
    text = "\n".join(lines)
    show_table(text, a.markdown, end="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
