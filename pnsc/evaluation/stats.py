"""Means with 95% confidence intervals (Student t) and paired differences."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def t_quantile(df: int, p: float = 0.975) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def mean_ci(values, level: float = 0.95) -> dict:
    """``{'mean', 'ci95', 'n'}`` of the finite values (``ci95`` = half width; None below 2 values)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    half = None
    if v.size > 1:
        half = t_quantile(v.size - 1, 0.5 + level / 2) * float(v.std(ddof=1)) / np.sqrt(v.size)
    return {"mean": float(v.mean()), "ci95": half, "n": int(v.size)}


def paired_t_p(d) -> float | None:
    """Two-sided p-value of the paired t-test that the differences ``d`` have mean zero (None below 2 values).

    Equal differences have no spread: p is 0 when they are not zero, 1 when they are."""
    d = np.asarray(d, dtype=float)
    if d.size < 2:
        return None
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return 0.0 if mean != 0.0 else 1.0
    from scipy.stats import t

    return float(2.0 * t.sf(abs(mean) / (sd / np.sqrt(d.size)), d.size - 1))


def paired_difference(a, b, level: float = 0.95) -> dict:
    """Mean of ``a - b`` over pairs where both are finite, with its CI, how often ``a > b``, and the paired
    t-test's two-sided p-value (``p``; what a correction over several metrics needs)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    out = mean_ci(d, level)
    out["wins"] = int((d > 0).sum())
    if out["mean"] is not None and out["ci95"] is not None:
        out["significant"] = bool(abs(out["mean"]) > out["ci95"])
    else:
        out["significant"] = False
    out["p"] = paired_t_p(d)
    return out


def holm(pvalues: dict[str, float | None], alpha: float = 0.05) -> list[str]:
    """The names (in the order given) whose null hypothesis Holm's step-down procedure rejects at family-wise
    level ``alpha``: sorted by p, the k-th smallest (k from 0) must be at most alpha / (m - k), and the first
    that is not stops it. ``None`` p-values (too few items) count in m and are never rejected."""
    m = len(pvalues)
    ranked = sorted((p, name) for name, p in pvalues.items() if p is not None)
    rejected = set()
    for k, (p, name) in enumerate(ranked):
        if p > alpha / (m - k):
            break
        rejected.add(name)
    return [name for name in pvalues if name in rejected]


def paired_table(scores: dict[str, dict[str, list[float]]], ref: str, metrics, label: str = "run") -> list[str]:
    """Markdown table: per entry of ``scores`` ({name: {metric: per-item values}}) the mean of every metric
    and, for all but ``ref``, the paired difference to ``ref`` (95 % CI, wins/n)."""
    lines = [f"| {label} | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, sc in scores.items():
        cells = []
        for m in metrics:
            cell = f"{np.mean(sc[m]):.3f}"
            if name != ref:
                d = paired_difference(sc[m], scores[ref][m])
                ci = "n/a" if d["ci95"] is None else f"{d['ci95']:.3f}"
                cell += f" ({d['mean']:+.3f} ± {ci}, {d['wins']}/{d['n']})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def show_table(text: str, markdown: Path | None, end: str = "") -> None:
    """Print a comparison script's report (then ``end``) and, given a path, write the same text there as
    markdown, its folder made if need be."""
    print(text, end=end)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text)
