#!/usr/bin/env python3
"""Training throughput against processes per GPU, from `pnsc.training.lpcnet.bench` results.

    python scripts/plot_bench.py docs/figures/round18/bench_procs.json \
        docs/figures/round20/bench_procs_b768_b1024.json --out docs/figures/round20/throughput.png

One line per (size, batch, precision): summed audio-hours per minute of the processes timed together on one GPU,
against how many shared it; configurations that ran out of memory are marked on the axis. The issue's goal (15
audio-h per GPU-minute) is drawn across; the title names the cards the files were measured on. Prints the same
numbers as a markdown table. A result without "amp" was timed in bf16 (the benchmark's CUDA default).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GOAL = 15.0  # audio-hours per GPU-minute, the decoder issue's throughput goal


Key = tuple[str, int, str]  # (size, batch, precision: bf16, fp16 or fp32)


def precision(r: dict) -> str:
    """The precision a result was timed in: its "amp" ("none" is float32), bf16 where the file predates it."""
    amp = r.get("amp") or "bf16"
    return "fp32" if amp == "none" else str(amp)


def read_bench(path: Path) -> dict:
    """A bench.json as written by `pnsc.training.lpcnet.bench --out`, or a clear error naming the file."""
    try:
        doc = json.loads(path.read_text())
        doc["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"plot_bench: {path}: not a bench.json with results ({e})")
    return doc


def load_points(paths: list[Path]) -> dict[Key, dict[int, float | None]]:
    """{(size, batch, precision): {procs: audio-h/min summed, or None for out of memory}} over the bench files."""
    lines: dict[Key, dict[int, float | None]] = {}
    for path in paths:
        for r in read_bench(path)["results"]:
            try:
                key = (str(r["size"]), int(r["batch"]), precision(r))
                procs = int(r.get("procs", 1))
            except (KeyError, TypeError, ValueError) as e:
                raise SystemExit(f"plot_bench: {path}: a result without size, batch or procs ({e})")
            if r.get("error") == "oom":
                lines.setdefault(key, {})[procs] = None
            elif isinstance(r.get("audio_h_per_min"), (int, float)):
                lines.setdefault(key, {})[procs] = float(r["audio_h_per_min"])
            # skipped or timed-out runs say nothing about throughput
    if not lines:
        raise SystemExit("plot_bench: no measured configuration in " + ", ".join(map(str, paths)))
    return lines


def devices(paths: list[Path]) -> list[str]:
    """The card names the bench files were measured on, in order, each once."""
    names: list[str] = []
    for path in paths:
        name = read_bench(path).get("device_name")
        if name and name not in names:
            names.append(str(name))
    return names


def process_counts(lines: dict[Key, dict[int, float | None]]) -> list[int]:
    """Every process count any configuration ran with, ascending."""
    return sorted({p for pts in lines.values() for p in pts})


def markdown(lines: dict[Key, dict[int, float | None]]) -> str:
    procs = process_counts(lines)
    out = ["| size, batch, precision | " + " | ".join(f"{p} proc." for p in procs) + " |",
           "|---|" + "---|" * len(procs)]
    for (size, batch, prec), pts in sorted(lines.items()):
        cells = ["–" if p not in pts else ("oom" if pts[p] is None else f"{pts[p]:.2f}") for p in procs]
        out.append(f"| {size}, {batch}, {prec} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(lines: dict[Key, dict[int, float | None]], out: Path, cards: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2))
    oom: dict[int, list[str]] = {}
    for i, ((size, batch, prec), pts) in enumerate(sorted(lines.items())):
        ok = sorted((p, v) for p, v in pts.items() if v is not None)
        color = f"C{i % 10}"
        ax.plot([p for p, _ in ok], [v for _, v in ok], marker="o", color=color, label=f"{size}, batch {batch}, {prec}")
        for p in sorted(p for p, v in pts.items() if v is None):
            oom.setdefault(p, []).append(color)
    for p, colors in oom.items():  # a cross per configuration that ran out, stacked above the axis in its colour
        for k, color in enumerate(colors):
            ax.plot([p], [0.5 + 0.7 * k], marker="x", color=color, markersize=8, linestyle="none", clip_on=False)
    if oom:
        ax.plot([], [], marker="x", color="0.3", linestyle="none", label="out of memory (at the axis)")
    ax.axhline(GOAL, color="crimson", linestyle="--", linewidth=1)
    ax.text(0.02, GOAL + 0.2, "goal: 15 audio-h per GPU-minute", transform=ax.get_yaxis_transform(),
            color="crimson", fontsize=8)
    ax.set_xlabel("training processes sharing one GPU (CUDA MPS, timed together)")
    ax.set_ylabel("audio-hours per minute, summed")
    ax.set_ylim(0, max(GOAL + 2, max(v for pts in lines.values() for v in pts.values() if v is not None) + 1))
    ax.set_xticks(process_counts(lines))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title("LPCNet training throughput on one " + (" / ".join(cards) or "GPU"))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", nargs="+", type=Path, help="bench.json files (pnsc.training.lpcnet.bench --out)")
    ap.add_argument("--out", type=Path, help="PNG to write (default: only the table)")
    a = ap.parse_args(argv)
    lines = load_points(a.bench)
    print(markdown(lines))
    if a.out:
        plot(lines, a.out, devices(a.bench))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
