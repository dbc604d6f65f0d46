"""A short reading of the results in plain words, generated from the numbers (nothing hard-coded)."""
from __future__ import annotations

from .metrics import LABELS

NAMES = {"plpcnet-s": "PLPCNet-S", "plpcnet-l": "PLPCNet-L", "lpcnet-bl-s": "LPCNet-BL-S",
         "lpcnet-bl-l": "LPCNet-BL-L", "codec2-1600": "Codec 2 1600", "codec2-700C": "Codec 2 700C",
         "opus-6k": "Opus 6 kb/s", "opus-9k": "Opus 9 kb/s"}


def pretty(system: str) -> str:
    return NAMES.get(system, system)


def _fmt(stat: dict | None, digits: int = 2) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    ci = stat.get("ci95")
    return f"{stat['mean']:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci is not None else "")


def _main_metric(res: dict) -> str | None:
    for m in ("pesq_wb", "visqol", "estoi", "stoi", "dnsmos_ovrl"):
        if m in res["metrics"]:
            return m
    return None


def reading(res: dict) -> list[str]:
    """Sentences (HTML-safe plain text) summarizing ``res`` from :func:`runner.run_eval`."""
    out: list[str] = []
    m = _main_metric(res)
    summ = res["summary"]
    systems = [s for s in res["systems"] if s in summ]
    n = len(res["utterances"])
    if m and systems:
        ranked = sorted((s for s in systems if summ[s][m]["mean"] is not None),
                        key=lambda s: summ[s][m]["mean"], reverse=True)
        if ranked:
            order = ", ".join(f"{pretty(s)} {summ[s][m]['mean']:.2f}" for s in ranked)
            out.append(f"Over {n} utterances, {LABELS[m]} ranks the systems: {order}.")
        pnsc = [s for s in ranked if res["systems"][s]["kind"] == "pnsc"]
        peers_low = [s for s in ranked if res["systems"][s]["kind"] != "pnsc"
                     and (res["systems"][s]["bitrate"] or 0) <= 2000]
        if pnsc and peers_low:
            best_p, best_c = pnsc[0], peers_low[0]
            a, b = summ[best_p][m], summ[best_c][m]
            verdict = "above" if a["mean"] > b["mean"] else "below"
            out.append(f"The best pnsc decoder at 1.6 kb/s ({pretty(best_p)}, {_fmt(a)}) is {verdict} the best "
                       f"peer codec at 2 kb/s or less ({pretty(best_c)}, {_fmt(b)}).")
        opus = [s for s in ranked if s.startswith("opus")]
        if pnsc and opus:
            o = opus[-1]
            ratio = (res["systems"][o]["bitrate"] or 0) / 1600.0
            gap = summ[o][m]["mean"] - summ[pnsc[0]][m]["mean"]
            out.append(f"{pretty(o)} spends {ratio:.1f} times the bitrate and scores {abs(gap):.2f} "
                       f"{'higher' if gap > 0 else 'lower'} than {pretty(pnsc[0])}.")
        ref = summ.get("reference", {}).get("dnsmos_ovrl")
        if ref and ref.get("mean") is not None and pnsc and "dnsmos_ovrl" in summ[pnsc[0]]:
            out.append(f"DNSMOS OVRL of the unprocessed references is {_fmt(ref)}, against "
                       f"{_fmt(summ[pnsc[0]]['dnsmos_ovrl'])} for {pretty(pnsc[0])}: the gap is what coding costs "
                       f"by this non-intrusive measure.")
    for pair, by_metric in res.get("paired", {}).items():
        if not m or m not in by_metric:
            continue
        d = by_metric[m]
        if d.get("mean") is None:
            continue
        a, b = [pretty(x.strip()) for x in pair.split(" - ")]
        sig = ("the 95% interval excludes zero" if d["significant"]
               else "the 95% interval includes zero, so this set cannot tell them apart")
        out.append(f"{a} minus {b}, paired over the same {d['n']} utterances: {LABELS[m]} "
                   f"{d['mean']:+.3f} ± {d['ci95'] or 0:.3f}; {a} is higher on {d['wins']} of {d['n']} ({sig}).")
    wrong = res.get("wrong_group") or {}
    cls = res.get("classification") or {}
    for fam, by_metric in wrong.items():
        w = by_metric.get(m) if m else None
        if not w:
            continue
        k = cls.get("num_groups", 4)
        d = w["classified_minus_others"]
        out.append(f"Wrong-group test ({pretty(fam)}, every group's decoder on every utterance): the classified "
                   f"group's decoder is the best by {LABELS[m]} on {w['classified_best']} of {w['n']} utterances "
                   f"(chance alone would give about {w['n'] / k:.1f}); on average it is {d['mean']:+.3f} ± {d['ci95'] or 0:.3f} against "
                   f"the other groups' decoders.")
        if "spk_sim" in by_metric:
            s = by_metric["spk_sim"]
            out.append(f"By speaker similarity the classified group's {pretty(fam)} decoder is best on "
                       f"{s['classified_best']} of {s['n']} utterances.")
    if cls.get("accuracy") is not None:
        out.append(f"The sender's classifier puts {cls['accuracy'] * 100:.0f}% of the {cls['classified']} classified "
                   f"utterances into their speaker's group (speaker group = nearest centroid of the mean "
                   f"embedding over all of that speaker's utterances).")
    loss = res.get("loss") or {}
    out += loss_reading(loss)
    if loss.get("missing"):
        out.append(f"pnsc under packet loss was not measured: {loss['missing']}")
    return out


def _end_points(curve: dict, metric: str) -> tuple[float, float] | None:
    st = [x.get(metric, {}) for x in curve["stats"]]
    if not st or st[0].get("mean") is None or st[-1].get("mean") is None:
        return None
    return st[0]["mean"], st[-1]["mean"]


def loss_reading(loss: dict) -> list[str]:
    """How much each system keeps at the highest random loss rate, and what redundancy buys."""
    curves = loss.get("curves") or {}
    metrics = loss.get("metrics") or []
    if not curves or not metrics:
        return []
    m = "estoi" if "estoi" in metrics else metrics[0]
    top = None
    parts = []
    for label, c in curves.items():
        if "random" not in label:
            continue
        ends = _end_points(c, m)
        if ends is None:
            continue
        top = 100 * c["rates"][-1]
        parts.append(f"{label.replace(', random', '')} {ends[0]:.2f} -> {ends[1]:.2f}")
    out = []
    if parts:
        out.append(f"Random packet loss from 0 to {top:.0f}% ({LABELS[m]}): " + "; ".join(parts) + ".")
    red = [lab for lab in curves if "redundancy" in lab and "no redundancy" not in lab and "random" in lab]
    base = [lab for lab in curves if "no redundancy" in lab and "random" in lab]
    if red and base:
        a, b = _end_points(curves[red[0]], m), _end_points(curves[base[0]], m)
        if a and b:
            k = red[0].split("redundancy ")[1].split(",")[0]
            out.append(f"Carrying {k} earlier packets in each message keeps {LABELS[m]} at {a[1]:.2f} at {top:.0f}% "
                       f"random loss, against {b[1]:.2f} without redundancy.")
    return out
