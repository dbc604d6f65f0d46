"""Loss curves: per-run ``curves.png`` and the paper's Fig. 5 (eq. 3 weighted PLPCNet validation loss).

    python -m pnsc.training.lpcnet.curves --fig5 OUT.png --baseline RUN_BL_S [--baseline RUN_BL_L ...] \
        --personalized RUN_P_S_G0 RUN_P_S_G1 RUN_P_S_G2 RUN_P_S_G3 [--label PLPCNet-S]

A run folder holds ``history.json`` (list of per-epoch records) written by the trainer.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_history(run: str | Path) -> list[dict]:
    run = Path(run)
    p = run / "history.json"
    if p.is_file():
        return json.loads(p.read_text())
    out = []
    for line in (run / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "epoch":
            out.append(rec)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(history: list[dict], path: str | Path, title: str = "") -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ep = [r["epoch"] + 1 for r in history]
    ax.plot(ep, [r.get("train_loss") for r in history], label="train (noisy teacher forcing)")
    val = [(r["epoch"] + 1, r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), label="validation")
    groups = sorted({g for r in history for g in (r.get("val_groups") or {})}, key=int)
    if len(groups) > 1:
        for g in groups:
            pts = [(r["epoch"] + 1, r["val_groups"][g]) for r in history if g in (r.get("val_groups") or {})]
            ax.plot(*zip(*pts), lw=0.8, ls="--", label=f"val group {g}")
    qa = [r["epoch"] + 1 for r in history if r.get("features") == "qfeatures"]
    if qa:
        ax.axvline(qa[0] - 0.5, color="gray", lw=0.6, ls=":", label="quantized-feature adaptation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats / sample)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def weighted_val(personalized: list[list[dict]]) -> list[tuple[int, float]]:
    """Eq. (3): per epoch, sum_c |H_val^(c)| L_val^(c) / sum_c |H_val^(c)| over the C group decoders
    (|H_val^(c)| = number of validation speakers of the group, recorded as ``val_speakers``)."""
    by_epoch: dict[int, list[tuple[int, float]]] = {}
    for hist in personalized:
        for r in hist:
            if r.get("val_loss") is not None:
                by_epoch.setdefault(r["epoch"], []).append((r.get("val_speakers", 1), r["val_loss"]))
    out = []
    for e in sorted(by_epoch):
        pts = by_epoch[e]
        if len(pts) == len(personalized):
            n = sum(w for w, _ in pts)
            out.append((e, sum(w * v for w, v in pts) / n))
    return out


def plot_fig5(path, baselines: dict[str, list[dict]], personalized: dict[str, list[list[dict]]]) -> dict:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    data = {}
    for label, hist in baselines.items():
        # the baseline's per-group losses weighted like eq. (3) when it has them (same weighting as PLPCNet)
        key = "val_eq3" if hist and all(r.get("val_eq3") is not None for r in hist if r.get("val_loss") is not None) \
            else "val_loss"
        pts = [(r["epoch"] + 1, r[key]) for r in hist if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), label=label + (" (eq. 3 weighted)" if key == "val_eq3" else ""))
            data[label] = pts
    for label, hists in personalized.items():
        pts = [(e + 1, v) for e, v in weighted_val(hists)]
        if pts:
            ax.plot(*zip(*pts), label=f"{label} (eq. 3 weighted)")
            data[label] = pts
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation cross-entropy (nats / sample)")
    ax.set_title("Validation loss (cf. paper Fig. 5)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fig5", required=True, help="output PNG")
    ap.add_argument("--baseline", action="append", default=[], help="baseline run folder (repeatable)")
    ap.add_argument("--personalized", nargs="+", action="append", default=[],
                    help="the C group run folders of one personalized model (repeatable)")
    ap.add_argument("--label", action="append", default=[], help="labels for --personalized sets")
    ap.add_argument("--json", help="also write the plotted points as JSON")
    a = ap.parse_args(argv)
    base = {Path(b).name: read_history(b) for b in a.baseline}
    pers = {}
    for i, runs in enumerate(a.personalized):
        label = a.label[i] if i < len(a.label) else f"personalized-{i}"
        pers[label] = [read_history(r) for r in runs]
    data = plot_fig5(a.fig5, base, pers)
    if a.json:
        Path(a.json).write_text(json.dumps(data, indent=1))
    for k, v in data.items():
        print(f"{k}: last epoch {v[-1][0]} val {v[-1][1]:.4f}, best {min(x for _, x in v):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
