#!/usr/bin/env python3
"""Two `pnsc eval` reports, paired per utterance: what a release changed on the held-out set.

Both ``scores.json`` files must hold the same utterances (the eval set is fixed). For every system present in
both, and every metric, prints the mean of NEW - OLD over the utterances with its 95 % CI (Student t) and how
often NEW wins, as a markdown table:

    python scripts/compare_reports.py OLD/scores.json NEW/scores.json [--systems plpcnet-l ...] [--title TEXT]
        [--markdown OUT.md] [--old-system lpcnet-bl-s] [--by-group]

``git show HEAD:docs/report/scores.json > /tmp/old.json`` gives the committed release's scores.

Decoding is stochastic (``pnsc eval --seed``): OLD and NEW may each be a comma-separated list of reports of
the same utterances decoded with different seeds; each utterance's score is then the mean over that side's
reports before pairing (``OLD_s0/scores.json,OLD_s1/scores.json,...``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pnsc.evaluation.stats import paired_difference, show_table  # noqa: E402

DEFAULT_METRICS = ("pesq_wb", "stoi", "estoi", "visqol", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "spk_sim")


def _load(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
        return d["per_utterance"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"pnsc: error: {path}: not a pnsc eval scores.json ({e})")


def _mean_reports(reports: list[dict]) -> dict:
    """Per system, utterance and metric: the mean over the reports that scored it (seed pooling)."""
    if len(reports) == 1:
        return reports[0]
    out: dict = {}
    # in the first report's order (a set's order changes from run to run, and with it the rows of the tables)
    for s in [s for s in reports[0] if all(s in r for r in reports)]:
        for u in [u for u in reports[0][s] if all(u in r[s] for r in reports)]:
            metrics = set().union(*(r[s][u] for r in reports))
            out.setdefault(s, {})[u] = {}
            for m in metrics:
                vals = [r[s][u].get(m) for r in reports]
                vals = [v for v in vals if isinstance(v, (int, float))]
                out[s][u][m] = sum(vals) / len(vals) if len(vals) == len(reports) else None
    return out


def load_pooled(spec: str) -> dict:
    """One report, or the per-utterance mean of a comma-separated list of them."""
    return _mean_reports([_load(Path(p)) for p in spec.split(",") if p])


def utterance_groups(spec: str) -> dict[str, int | None]:
    """The speaker group the sender's classifier picked for each utterance, from the first report of ``spec``."""
    path = Path(spec.split(",")[0])
    try:
        return json.loads(path.read_text())["classification"]["utterance_group"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"pnsc: error: {path}: no per-utterance speaker groups ({e})")


def paired_rows(old: dict, new: dict, systems: list[str], metrics: tuple[str, ...],
                groups: dict[str, int | None] | None = None) -> list[str]:
    """Markdown rows of NEW - OLD per system (utterances present in both reports only); with ``groups``, a
    row per system and speaker group follows (a personalized decoder changed for one group shows there)."""
    rows = ["| system | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for s in systems:
        utts = sorted(set(old[s]) & set(new[s]))
        subsets = [(s, utts)]
        if groups is not None:
            for g in sorted({groups.get(u) for u in utts}, key=lambda g: (g is None, g)):
                subsets.append((f"{s}, group {g if g is not None else '–'}", [u for u in utts if groups.get(u) == g]))
        for label, chosen in subsets:
            cells = []
            for m in metrics:
                a = [new[s][u].get(m) for u in chosen]
                b = [old[s][u].get(m) for u in chosen]
                a = [float("nan") if v is None else v for v in a]
                b = [float("nan") if v is None else v for v in b]
                d = paired_difference(a, b)
                ci = "" if d.get("ci95") is None else f" ± {d['ci95']:.3f}"
                cells.append(f"{d['mean']:+.3f}{ci} ({d['wins']}/{d['n']})" if d.get("n") else "–")
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", help="scores.json, or several (comma-separated: one per decoder seed)")
    p.add_argument("new", help="scores.json, or several (comma-separated: one per decoder seed)")
    p.add_argument("--systems", nargs="+", default=None, help="default: every system in both reports")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--title", default="NEW minus OLD, paired per utterance: mean ± 95 % CI (t), wins/n")
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--old-system", default=None,
                   help="pair every NEW system with this one OLD system (a personalized decoder against a baseline: "
                        "OLD and NEW may then be the same reports)")
    p.add_argument("--by-group", action="store_true",
                   help="also a row per speaker group (the group the sender's classifier picked, from NEW's first report)")
    a = p.parse_args(argv)
    old, new = load_pooled(a.old), load_pooled(a.new)
    if a.old_system:
        if a.old_system not in old:
            p.error(f"not in the old report(s): {a.old_system}")
        systems = [s for s in (a.systems or list(new)) if s != a.old_system]
        old = {s: old[a.old_system] for s in systems}
    else:
        systems = a.systems or [s for s in new if s in old]
    missing = [s for s in systems if s not in old or s not in new]
    if missing:
        p.error(f"not in both reports: {', '.join(missing)}")
    groups = utterance_groups(a.new) if a.by_group else None
    text = "\n".join([a.title, ""] + paired_rows(old, new, systems, tuple(a.metrics), groups)) + "\n"
    show_table(text, a.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
