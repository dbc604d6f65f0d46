#!/usr/bin/env python3
"""How each release scored on held-out speech, round after round, from the committed release scores.

Every round since 19 that shipped a decoder committed its release's per-utterance scores
(``docs/figures/roundN/release_scores/{s0,s1,s2,55}.json``: decoder seeds 0-2 of the 20 held-out utterances and
seed 0 of the 55). This reads them all and gives, per release and system, the mean of each metric over the 20
(per-utterance means over the three seeds first) and over the 55; Codec 2 1600 on the same 20 utterances comes
from a ``pnsc eval`` report (``--peers``, default ``docs/report/scores.json``: Codec 2 is deterministic, so one
seed is its score). Prints a markdown table and draws the history (``--out``), so that what more training
still buys is read off the figure, not from scattered tables.

    python scripts/release_history.py [--figures docs/figures] [--out docs/figures/release_history.png]
        [--json docs/figures/release_history.json]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_reports import load_pooled  # noqa: E402
from pnsc.evaluation.stats import mean_ci  # noqa: E402

SYSTEMS = ("plpcnet-s", "lpcnet-bl-s", "plpcnet-l", "lpcnet-bl-l")
METRICS = ("pesq_wb", "estoi", "visqol", "dnsmos_ovrl")
PEER = "codec2-1600"
ROUND_RE = re.compile(r"^round(\d+)$")


def _mean(per: dict, metric: str) -> float | None:
    """One system's mean of a metric over its utterances (those that have a finite score)."""
    return mean_ci([v.get(metric) for v in per.values()])["mean"]


def release_rounds(figures: Path) -> list[tuple[int, Path]]:
    """``(round, release_scores folder)`` of every round with all four score files, in round order."""
    out = []
    for d in figures.iterdir():
        m = ROUND_RE.match(d.name)
        rs = d / "release_scores"
        if m and all((rs / f"{n}.json").is_file() for n in ("s0", "s1", "s2", "55")):
            out.append((int(m.group(1)), rs))
    return sorted(out)


def history(figures: Path, metrics=METRICS, systems=SYSTEMS) -> list[dict]:
    """Per release: ``{"round", "seeds": {system: {metric: mean}}, "55": {...}, "utterances": {"seeds", "55"}}``."""
    rows = []
    for rnd, rs in release_rounds(figures):
        seeds = load_pooled(",".join(str(rs / f"s{k}.json") for k in range(3)))
        s55 = load_pooled(str(rs / "55.json"))
        row = {"round": rnd, "seeds": {}, "55": {}, "utterances": {}}
        for label, rep in (("seeds", seeds), ("55", s55)):
            for s in systems:
                if s in rep:
                    row[label][s] = {m: _mean(rep[s], m) for m in metrics}
            row["utterances"][label] = max((len(rep[s]) for s in systems if s in rep), default=0)
        rows.append(row)
    return rows


def peer_scores(report: Path, metrics=METRICS, peer: str = PEER) -> dict[str, float | None]:
    """The peer's mean per metric in one ``pnsc eval`` report (empty when the report has no such system)."""
    per = load_pooled(str(report))
    return {m: _mean(per[peer], m) for m in metrics} if peer in per else {}


def markdown(rows: list[dict], peer: dict, metrics=METRICS, systems=SYSTEMS) -> str:
    """A table per metric: a row per release and held-out set, a column per system; Codec 2 last."""
    lines: list[str] = []
    for m in metrics:
        lines += [f"**{m}**", "", "| release | set | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]
        for r in rows:
            for label in ("seeds", "55"):
                cells = [r[label].get(s, {}).get(m) for s in systems]
                lines.append(f"| round {r['round']} | {'20 × 3 seeds' if label == 'seeds' else 'the 55'} | "
                             + " | ".join("–" if c is None else f"{c:.3f}" for c in cells) + " |")
        if peer.get(m) is not None:
            lines.append(f"| {PEER} | the 20 | " + " | ".join(f"{peer[m]:.3f}" for _ in systems) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict], peer: dict, out: Path, metrics=METRICS, systems=SYSTEMS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"pesq_wb": "PESQ-WB", "estoi": "ESTOI", "visqol": "ViSQOL", "dnsmos_ovrl": "DNSMOS OVRL"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    x = [r["round"] for r in rows]
    for ax, m in zip(axes, metrics):
        for k, s in enumerate(systems):
            y = [r["seeds"].get(s, {}).get(m) for r in rows]
            line, = ax.plot(x, y, marker="o", label=s)
            ax.plot(x, [r["55"].get(s, {}).get(m) for r in rows], ls="--", marker=".", color=line.get_color(),
                    alpha=0.6)
        if peer.get(m) is not None:
            ax.axhline(peer[m], color="black", lw=1, ls=":", label=f"{PEER} (the 20)")
        ax.set_title(names.get(m, m))
        ax.set_xlabel("release (round)")
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Held-out speech per release: solid 20 utterances × 3 decoder seeds, dashed the 55 (seed 0)",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    p.add_argument("--peers", type=Path, default=REPO / "docs" / "report" / "scores.json",
                   help="a pnsc eval report of the same 20 utterances with Codec 2 1600 in it")
    p.add_argument("--out", type=Path, default=None, help="the figure (PNG)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    rows = history(a.figures) if a.figures.is_dir() else []
    if not rows:
        p.error(f"no release scores under {a.figures}/round*/release_scores")
    peer = peer_scores(a.peers) if a.peers.is_file() else {}
    sys.stdout.write(markdown(rows, peer))
    if a.out:
        plot(rows, peer, a.out)
    if a.json:
        a.json.write_text(json.dumps({"releases": rows, "peer": {PEER: peer}}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
