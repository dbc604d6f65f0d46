#!/usr/bin/env python3
"""Eq. (3) of the paper from training logs: per-group validation losses of the personalized
decoders weighted by validation speakers per group, against the generic baselines; plots the
paper's Fig. 5 against the audio-hours each model has seen (a fine-tuned run's include its baseline's).

Usage: python scripts/validation_table.py runs/gpu --out docs/figures/fig5_val_loss.png [--json F]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pnsc.training.lpcnet.data import load_group_map, load_splits  # noqa: E402


def epochs(run: Path) -> list[dict]:
    log = run / "log.jsonl"
    if not log.is_file():
        return []
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "epoch" and r.get("val_groups")]


def held(run: Path, ep: list[dict]) -> int:
    """Index in ``ep`` of the validation whose weights the run holds: the last one, or for a run that
    ended on its best weights (train.py --patience; status.json ``weights_epoch``) that epoch's."""
    try:
        at = json.loads((run / "status.json").read_text()).get("weights_epoch")
    except (OSError, ValueError):
        at = None
    return next((i for i, r in enumerate(ep) if r["epoch"] == at), len(ep) - 1)


def audio_hours(run: Path, ep: list[dict]) -> list[tuple[float, bool]]:
    """Audio-hours seen at each epoch record, and whether that value was counted (not interpolated).

    Records carry ``audio_hours_total`` (own + initialisation) since round 4; round-3 records carry the run's
    own counter, which started at zero there, so the checkpoint's offsets (``round2_audio_seconds`` of a
    resumed baseline, ``init_audio_seconds`` of a fine-tune) are added. Round-2 records predate the counter:
    they are placed by linear interpolation in steps between 0 and the first counted record."""
    import torch

    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=False) if (run / "last.pt").is_file() else {}
    offset = ((ck.get("round2_audio_seconds") or 0.0) + (ck.get("init_audio_seconds") or 0.0)) / 3600.0
    known = [(r["step"], r["audio_hours_total"] if "audio_hours_total" in r else r["audio_hours"] + offset)
             if ("audio_hours_total" in r or "audio_hours" in r) else None for r in ep]
    first = next((k for k in known if k is not None), None)
    out = []
    for r, k in zip(ep, known):
        if k is not None:
            out.append((k[1], True))
        elif first is not None and first[0] > 0:
            out.append((r["step"] / first[0] * first[1], False))
        else:
            out.append((float("nan"), False))
    return out


def _latest(series: list[tuple[int, float]], step: int) -> float:
    """Validation loss of the last epoch at or before ``step``."""
    return [v for st, v in series if st <= step][-1]


def began_at(run: Path) -> float | None:
    """The audio-hours a run had seen when its own counting began (its initialisation's, 0 from scratch); None
    when its first validation record predates the counters."""
    ep = epochs(run)
    if not ep or "audio_hours_total" not in ep[0] or "audio_hours" not in ep[0]:
        return None
    return ep[0]["audio_hours_total"] - ep[0]["audio_hours"]


def predecessor(runs: Path, base: str, curves: dict, tol_h: float = 5.0, family: str | None = None) -> str | None:
    """The set-aside run (``<family>.before-<tags>``, family = ``base`` unless given) that ``base`` was restarted
    from, if any: the one whose last validation record lies at most ``tol_h`` audio-hours before where
    ``base``'s own counting began (its initialisation's hours; a run trains on past its last validation pass
    before it stops), or whose recorded end (``status.json`` ``audio_hours``) is where ``base`` began: a baseline
    epoch is about 90 audio-hours, so round 15's averaging branch of BL-S began 11.6 audio-hours after its
    predecessor's last validation."""
    start = began_at(runs / base)
    if start is None or start <= 0.5:
        return None

    def ends_at_start(n: str) -> bool:
        end = _end_hours(runs / n)
        return (end is not None and abs(start - end) <= 0.5) or 0.0 <= start - curves[n][-1][0] + 0.5 <= tol_h

    cands = [n for n in curves if n.startswith(f"{family or base}.before-") and n != base and curves[n]
             and ends_at_start(n)]
    return min(cands, key=lambda n: abs(curves[n][-1][0] - start)) if cands else None


def _end_hours(run: Path) -> float | None:
    """The audio-hours a run had seen when it last stopped (its ``status.json``), if recorded."""
    try:
        h = json.loads((run / "status.json").read_text()).get("audio_hours")
    except (OSError, ValueError, AttributeError):
        return None
    return float(h) if isinstance(h, (int, float)) else None


def lineage(runs: Path, base: str, curves: dict, family: str | None = None) -> list[str]:
    """``base``'s earlier runs, newest first: each set-aside ``<family>.before-*`` run (family = ``base`` unless
    given) the previous one restarted from (round 10's BL-S restarted round 6's, which had restarted rounds 1-4's)."""
    chain, cur = [], base
    while (pred := predecessor(runs, cur, curves, family=family or base)) and pred not in chain:
        chain.append(pred)
        cur = pred
    return chain


def against_baseline(rows: dict) -> dict[str, list[float]]:
    """Each fine-tuned family's loss on each group's validation speakers relative to its size's baseline on the
    same speakers, (ft - baseline) / baseline; negative: the fine-tune is ahead. Round 25 found the float32
    baselines level with or ahead of fine-tunes that had started from older baselines."""
    out = {}
    for size in "sl":
        ft, bl = rows.get(f"plpcnet-{size}-ft"), rows.get(f"lpcnet-bl-{size}")
        if ft and bl:
            out[f"plpcnet-{size}-ft"] = [(f - b) / b for f, b in zip(ft["per_group"], bl["per_group"])]
    return out


def branch_curve(runs: Path, base: str, parent: str, curves: dict) -> tuple[list, list[str]]:
    """Fig. 5's curve of ``base``, a branch of ``parent`` (a run that trained on past the branch point, as the bf16
    runs did beside their float32 branches from round 23): ``parent``'s own earlier runs, ``parent`` up to where
    ``base`` began, then ``base``; and the runs it joins, newest first."""
    start = began_at(runs / base)
    if start is None:
        raise ValueError(f"{base}: its validation records do not say where it began (audio_hours_total)")
    chain = lineage(runs, parent, curves, family=base)
    points = sum((curves[p] for p in reversed(chain)), []) + [p for p in curves[parent] if p[0] <= start]
    return points + curves[base], [parent, *chain]


def last_fifth(curve: list[tuple[float, float, bool]], value: float, begun: float = 0.0) -> dict | None:
    """The issue's convergence test on a baseline's eq. (3) curve (audio-hours, loss, counted): the change of
    ``value`` (the loss of the weights the run holds) against the loss where the last fifth of its audio-hours
    began, training from ``begun`` (0: from scratch). None where the curve starts after that point (a branch
    tabled without its parent's history: pass --parent)."""
    counted = [(h, v) for h, v, ok in curve if ok]
    if not counted:
        return None
    end = counted[-1][0]
    cut = end - (end - begun) / 5
    if counted[0][0] > cut:
        return None
    at = next((h, v) for h, v in counted if h >= cut)
    return {"from_hours": round(at[0], 2), "to_hours": round(end, 2), "at_cut": at[1],
            "change": (value - at[1]) / at[1], "converged": abs(value - at[1]) / at[1] < 0.005}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--groups", type=Path, default=Path("models/training_groups.json"))
    ap.add_argument("--splits", type=Path, default=Path("models/speaker_splits.json"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--parent", action="append", default=[], metavar="BASELINE=RUN",
                    help="the baseline (a float32 branch since round 23) branched from RUN, a run of the same folder "
                         "that trained on past the branch point: Fig. 5 draws RUN's history up to the branch point "
                         "(e.g. --parent lpcnet-bl-l=lpcnet-bl-l.bf16 with both linked into the folder)")
    ap.add_argument("--plot-branches", action="store_true",
                    help="also plot the recipe branches (lpcnet-bl-s.noise3, ...; the table always lists them)")
    ap.add_argument("--ylim", type=float, nargs=2, default=(2.45, 2.9), metavar=("LOW", "HIGH"),
                    help="loss range shown (default 2.45 2.9: where the baselines and fine-tunes meet; "
                         "the first hours of a run from scratch start far above it)")
    args = ap.parse_args()
    gmap = load_group_map(args.groups)
    val = [s for s in load_splits(args.splits)["validation"] if s.isdigit()]  # the 20 LibriSpeech speakers
    C = max(gmap.values()) + 1
    n_val = [sum(gmap.get(s) == c for s in val) for c in range(C)]
    weights = [n / sum(n_val) for n in n_val]

    rows, curves = {}, {}
    branches = sorted(p.name for p in args.runs.glob("lpcnet-bl-[sl].*") if p.is_dir())  # recipe branches
    for name in ("lpcnet-bl-s", "lpcnet-bl-l", *branches):
        ep = epochs(args.runs / name)
        if ep:
            i = held(args.runs / name, ep)
            per = [ep[i]["val_groups"][str(c)] for c in range(C)]
            rows[name] = {"step": ep[i]["step"], "per_group": per, "eq3": sum(w * v for w, v in zip(weights, per))}
            hours = audio_hours(args.runs / name, ep)
            rows[name]["audio_hours"] = round(hours[i][0], 2)
            curves[name] = [(h, sum(w * r["val_groups"][str(c)] for c, w in enumerate(weights)), counted)
                            for r, (h, counted) in zip(ep, hours)]
    parents = {}
    for spec in args.parent:
        base, sep, run = spec.partition("=")
        if not sep or base not in ("lpcnet-bl-s", "lpcnet-bl-l") or not run or base in parents:
            ap.error(f"--parent {spec!r}: BASELINE=RUN, once per baseline (lpcnet-bl-s or lpcnet-bl-l)")
        parents[base] = run
    for base in ("lpcnet-bl-s", "lpcnet-bl-l"):  # Fig. 5 shows a promoted run with the run it restarted from
        if base in parents and base in curves:
            if parents[base] not in curves:
                ap.error(f"--parent {base}={parents[base]}: no validation records of {parents[base]} in {args.runs}")
            curves[base], chain = branch_curve(args.runs, base, parents[base], curves)
            rows[base]["branched_from"], rows[base]["lineage"] = chain[0], chain
            continue
        chain = lineage(args.runs, base, curves)
        if chain:
            curves[base] = sum((curves[p] for p in reversed(chain)), []) + curves[base]
            rows[base]["restarted_from"] = chain[0]
            rows[base]["lineage"] = chain
    for base in ("lpcnet-bl-s", "lpcnet-bl-l"):
        if base in curves:
            rows[base]["last_fifth"] = last_fifth(curves[base], rows[base]["eq3"])
    for size in "sl":
        for variant in ("scratch", "ft"):
            per, steps, series, hours = [], [], [], []
            for c in range(C):
                run = args.runs / f"plpcnet-{size}-g{c}-{variant}"
                ep = epochs(run)
                if not ep:
                    break
                i = held(run, ep)
                per.append(ep[i]["val_groups"][str(c)])
                steps.append(ep[i]["step"])
                hours.append(round(audio_hours(run, ep)[i][0], 2))
                series.append([(r["step"], r["val_groups"][str(c)]) for r in ep])
            if len(per) == C:
                name = f"plpcnet-{size}-{variant}"
                rows[name] = {"step": steps, "audio_hours": hours, "per_group": per,
                              "eq3": sum(w * v for w, v in zip(weights, per))}
                base = curves.get(f"lpcnet-bl-{size}")
                if variant == "scratch" and base:
                    # The baseline at the step closest to where the scratch runs stopped (equal training).
                    at = min(base, key=lambda p: abs(p[0] - sum(steps) / len(steps)))
                    rows[name]["baseline_at_equal_steps"] = {"step": at[0], "eq3": at[1]}
                if variant == "scratch":  # same step axis as the baselines: each group's latest value
                    grid = sorted({st for ser in series for st, _ in ser if st >= max(ser[0][0] for ser in series)})
                    curves[name] = [(g, sum(weights[c] * _latest(series[c], g) for c in range(C)), False)
                                    for g in grid]  # (on a step axis: scratch runs have no baseline hours)

    # Scratch runs of single groups (the full-length scratch-versus-fine-tune question), group by group.
    by_group = {}
    for size in "sl":
        for c in range(C):
            sc, ft = args.runs / f"plpcnet-{size}-g{c}-scratch", args.runs / f"plpcnet-{size}-g{c}-ft"
            ep_sc, ep_ft = epochs(sc), epochs(ft)
            if not ep_sc or f"plpcnet-{size}-scratch" in rows:
                continue
            h_sc = audio_hours(sc, ep_sc)
            entry = {"scratch": {"step": ep_sc[-1]["step"], "audio_hours": round(h_sc[-1][0], 2),
                                 "val": ep_sc[-1]["val_groups"][str(c)]}}
            if ep_ft:
                i = held(ft, ep_ft)
                entry["ft"] = {"step": ep_ft[i]["step"], "audio_hours": round(audio_hours(ft, ep_ft)[i][0], 2),
                               "val": ep_ft[i]["val_groups"][str(c)]}
            base = epochs(args.runs / f"lpcnet-bl-{size}")
            if base:
                entry["baseline"] = {"step": base[-1]["step"], "val": base[-1]["val_groups"][str(c)]}
            # Convergence (the criterion): change over the last fifth of the run's audio-hours.
            own = [(h, r["val_groups"][str(c)], True) for r, (h, _) in zip(ep_sc, h_sc)]
            entry["scratch"]["last_fifth_change"] = last_fifth(own, entry["scratch"]["val"], begun=own[0][0])["change"]
            by_group[f"plpcnet-{size}-g{c}"] = entry
            curves[f"plpcnet-{size}-g{c}-scratch (group {c} only)"] = [
                (h, r["val_groups"][str(c)], counted) for r, (h, counted) in zip(ep_sc, h_sc)]

    print(f"validation speakers per group (LibriSpeech, C={C}): {n_val}")
    print("| decoder | steps | audio-hours seen | " + " | ".join(f"group {c}" for c in range(C)) + " | eq. (3) |")
    print("|---|---|---|" + "---|" * C + "---|")
    for name, r in rows.items():
        print(f"| {name} | {r['step']} | {r.get('audio_hours')} | " + " | ".join(f"{v:.4f}" for v in r["per_group"])
              + f" | **{r['eq3']:.4f}** |")
    for name, r in rows.items():
        if "baseline_at_equal_steps" in r:
            b = r["baseline_at_equal_steps"]
            print(f"{name}: eq. (3) {r['eq3']:.4f} vs its baseline at step {b['step']}: {b['eq3']:.4f}")
    for base in ("lpcnet-bl-s", "lpcnet-bl-l"):
        if base not in rows:
            continue
        lf = rows[base]["last_fifth"]
        if lf is None:
            print(f"{base}: its curve here starts after the last fifth of its training began; "
                  "--parent gives the history the convergence test needs")
        else:
            print(f"{base}: eq. (3) {100 * lf['change']:+.2f} % over the last fifth of its training "
                  f"({lf['from_hours']}-{lf['to_hours']} audio-hours, from {lf['at_cut']:.4f}): "
                  + ("converged" if lf["converged"] else "not converged") + " by the issue's test (under 0.5 %)")
    for name, rel in against_baseline(rows).items():
        rows[name]["vs_baseline_per_group"] = rel
        print(f"{name} against {name.replace('plpcnet', 'lpcnet-bl').removesuffix('-ft')} on each group's validation "
              "speakers: " + ", ".join(f"group {c} {100 * v:+.2f} %" for c, v in enumerate(rel))
              + " (negative: the fine-tune is ahead)")
    for name, e in by_group.items():
        sc = e["scratch"]
        line = (f"{name} group-only: scratch {sc['val']:.4f} after {sc['audio_hours']} audio-h (step {sc['step']}, "
                f"last fifth {100 * sc['last_fifth_change']:+.2f} %)")
        if "ft" in e:
            line += f"; fine-tuned {e['ft']['val']:.4f} ({e['ft']['audio_hours']} audio-h incl. its baseline)"
        if "baseline" in e:
            line += f"; baseline {e['baseline']['val']:.4f}"
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"val_speakers_per_group": n_val, "rows": rows, "scratch_groups": by_group},
                                        indent=1))
    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 5.2))
        for name, pts in curves.items():
            if name.endswith("-scratch"):
                continue
            if "." in name and not args.plot_branches:
                continue
            if "group" in name:  # one group's own validation loss, not eq. (3)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="-.", lw=1, label=name)
                continue  # a step axis; the table compares them at equal steps
            line = ax.plot([p[0] for p in pts if p[2]], [p[1] for p in pts if p[2]], marker="o", ms=3, label=name)
            guess = [p for p in pts if not p[2]] + [p for p in pts if p[2]][:1]
            if len(guess) > 1:
                ax.plot([p[0] for p in guess], [p[1] for p in guess], ls=":", marker=".", ms=3,
                        color=line[0].get_color(), label=f"{name} (before the counter: hours from steps)")
        for name in ("plpcnet-s-ft", "plpcnet-l-ft"):
            if name in rows:
                ax.axhline(rows[name]["eq3"], ls="--", lw=1, color="tab:red" if "-s-" in name else "tab:purple",
                           label=f"{name} (fine-tuned from the baseline, final)")
        ax.set_xlabel("audio-hours seen (15-frame sequences x batch x steps)")
        ax.set_ylabel("eq. (3) weighted validation loss (nats/sample)")
        ax.set_title("Validation loss, cf. the paper's Fig. 5")
        ax.grid(alpha=0.3)
        ax.set_ylim(*args.ylim)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        fig.tight_layout()
        fig.savefig(args.out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
