#!/usr/bin/env python3
"""Objective quality of decoded speech: wide-band PESQ and STOI per decoder, against the originals.

Input: a ``decoded.npz`` written by ``scripts/gpu_eval_decoders.py`` (keys ``<decoder>/<utt>``
with float32 16 kHz audio, plus ``ref/<utt>``). Output: ``scores.json``, ``quality.png`` (bars
with 95% intervals) and ``index.html`` with audio players, in ``--out``.

Usage: python scripts/eval_quality.py decoded.npz --out docs/report
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path

import numpy as np


def score(ref: np.ndarray, deg: np.ndarray) -> dict[str, float]:
    from pesq import pesq
    from pystoi import stoi

    n = min(len(ref), len(deg))
    ref, deg = ref[:n].astype(np.float64), deg[:n].astype(np.float64)
    out = {"stoi": float(stoi(ref, deg, 16000, extended=False))}
    try:
        out["pesq_wb"] = float(pesq(16000, ref, deg, "wb"))
    except Exception as exc:  # PESQ refuses e.g. utterances without detectable speech
        print(f"pesq failed: {exc}", file=sys.stderr)
        out["pesq_wb"] = float("nan")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("decoded", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/report"))
    ap.add_argument("--players", type=int, default=3, help="utterances with audio players in the HTML")
    args = ap.parse_args()
    import soundfile as sf

    z = np.load(args.decoded)
    refs = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("ref/")}
    decoders = sorted({k.split("/", 1)[0] for k in z.files if not k.startswith("ref/")})
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for dec in decoders:
        scores[dec] = {utt: score(refs[utt], z[f"{dec}/{utt}"]) for utt in refs if f"{dec}/{utt}" in z.files}
        print(dec, {m: round(float(np.nanmean([s[m] for s in scores[dec].values()])), 3) for m in ("pesq_wb", "stoi")})

    summary = {}
    for dec, per in scores.items():
        summary[dec] = {}
        for m in ("pesq_wb", "stoi"):
            v = np.array([s[m] for s in per.values()], dtype=float)
            v = v[np.isfinite(v)]
            summary[dec][m] = {"mean": float(v.mean()) if v.size else None,
                               "ci95": float(1.96 * v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None,
                               "n": int(v.size)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scores.json").write_text(json.dumps({"summary": summary, "per_utterance": scores}, indent=1))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, m in zip(axes, ("pesq_wb", "stoi")):
        means = [summary[d][m]["mean"] or 0 for d in decoders]
        cis = [summary[d][m]["ci95"] or 0 for d in decoders]
        ax.bar(range(len(decoders)), means, yerr=cis, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(decoders)), decoders, rotation=45, ha="right", fontsize=8)
        ax.set_title(m.upper().replace("_", "-"))
    fig.tight_layout()
    fig.savefig(args.out / "quality.png", dpi=110)

    audio_dir = args.out / "audio"
    audio_dir.mkdir(exist_ok=True)
    rows = []
    for utt in sorted(refs)[: args.players]:
        sf.write(audio_dir / f"{utt}-ref.flac", refs[utt], 16000)
        cells = [f"<td>{html.escape(utt)}<br><audio controls src='audio/{utt}-ref.flac'></audio></td>"]
        for dec in decoders:
            if f"{dec}/{utt}" in z.files:
                sf.write(audio_dir / f"{utt}-{dec}.flac", z[f"{dec}/{utt}"], 16000)
                s = scores[dec][utt]
                cells.append(f"<td>{s['pesq_wb']:.2f} / {s['stoi']:.2f}<br>"
                             f"<audio controls src='audio/{utt}-{dec}.flac'></audio></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = "".join(
        f"<tr><td>{html.escape(d)}</td><td>{summary[d]['pesq_wb']['mean']:.3f} ± {summary[d]['pesq_wb']['ci95'] or 0:.3f}</td>"
        f"<td>{summary[d]['stoi']['mean']:.3f} ± {summary[d]['stoi']['ci95'] or 0:.3f}</td><td>{summary[d]['stoi']['n']}</td></tr>"
        for d in decoders
    )
    head = "<th>utterance (original)</th>" + "".join(f"<th>{html.escape(d)}<br>PESQ / STOI</th>" for d in decoders)
    (args.out / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>pnsc decoded speech</title>"
        "<h1>pnsc: decoded speech at 1.6 kb/s</h1>"
        "<table border=1><tr><th>decoder</th><th>PESQ-WB (mean ± 95% CI)</th><th>STOI</th><th>utterances</th></tr>"
        f"{table}</table><img src='quality.png'><h2>Listen</h2><table border=1><tr>{head}</tr>{''.join(rows)}</table>"
    )
    print(f"wrote {args.out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
