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
    """Whether the in-process receiver (jitter buffer + concealment + redundancy) and the runtime
    decoder are in this checkout."""
    try:
        from pnsc.receiver.core import ReceiverCore, run_events  # noqa: F401
        from pnsc.receiver.runtime import StreamingDecoder  # noqa: F401
        from pnsc.sender.stream import SenderCore  # noqa: F401
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


T0 = 1000.0  # virtual clock start (s)
NET_S = 0.001  # constant one-way network time


def sender_messages(audio: np.ndarray, group: int | None, redundancy: int) -> list[bytes]:
    """The real sender's messages for ``audio`` (hello first), with a fixed speaker group
    (the classifier's decision for the utterance; None = unknown) and ``redundancy`` K."""
    from pnsc.sender.stream import SenderConfig, SenderCore

    s = SenderCore(SenderConfig(group=group, classify=False, redundancy=redundancy), sid=1)
    msgs = [s.hello()]
    msgs += s.push(np.asarray(audio, np.float32), T0)
    msgs += s.flush()
    return msgs


def receive(msgs: list[bytes], mask: np.ndarray, core) -> np.ndarray:
    """Messages through the loss ``mask`` (packet k lost if mask[k]) into the receiver core
    (realtime playout on a simulated 10 ms clock) -> float32 audio."""
    from pnsc.receiver.core import run_events

    ev = [(T0, msgs[0])]
    ev += [(T0 + (k + 1) * SLOT_S + NET_S, m) for k, m in enumerate(msgs[1:]) if not (k < len(mask) and mask[k])]
    y, _ = run_events(ev, core=core, tail_s=0.3, start=T0)
    return y.astype(np.float32) / 32768.0


def pnsc_curves(utts, groups: dict, rates, bursts, redundancies, scorer, progress, seed: int = 0,
                size: str = "s", precision: str | None = None, models_dir: str | None = None) -> dict:
    """PLPCNet-<size> through sender -> loss -> receiver (jitter buffer, concealment, redundancy K)."""
    from pnsc.receiver.core import ReceiverConfig, ReceiverCore
    from pnsc.receiver.decoders import open_decoder

    decoder = open_decoder(size, seed=seed, models_dir=models_dir, precision=precision)
    msgs = {(u.id, k): sender_messages(u.audio, groups.get(u.id), k) for u in utts for k in redundancies}
    curves = {}
    for k in redundancies:
        for burst in bursts:
            label = (f"PLPCNet-{size.upper()} receiver, {'redundancy %d' % k if k else 'no redundancy'}, "
                     f"{'bursty (mean burst %g)' % burst if burst > 1 else 'random'}")

            def through_receiver(u, i, rate, k=k, burst=burst):
                m_ = msgs[(u.id, k)]
                mask = loss_mask(len(m_) - 1, LossCondition(rate, burst, seed + i))
                core = ReceiverCore(ReceiverConfig(size=size, seed=seed, models_dir=models_dir,
                                                   precision=precision, time_scaling=False), decoder=decoder)
                return receive(m_, mask, core)

            stats = _curve(rates, utts, scorer, progress, label, through_receiver)
            curves[label] = {"rates": list(rates), "stats": stats}
    return curves


LOSS_METRICS = ("pesq_wb", "estoi")


def _curve(rates, utts, scorer, progress, label: str, decode_one) -> list[dict]:
    """Scores at each loss rate: ``decode_one(utterance, index, rate)`` gives the received audio; an
    utterance the scorer rejects (too short, silent) is left out of that rate's mean."""
    from .errors import EvalError
    from .stats import mean_ci

    stats = []
    for rate in progress(rates, label):
        vals: dict[str, list[float]] = {m: [] for m in scorer.metrics}
        for i, u in enumerate(utts):
            try:
                sc = scorer.score(u.audio, decode_one(u, i, rate))
            except EvalError:
                continue
            for m in scorer.metrics:
                vals[m].append(sc.get(m, np.nan))
        stats.append({m: mean_ci(v) for m, v in vals.items()})
    return stats


def opus_curves(utts, peers, rates, bursts, scorer, progress, seed: int = 0) -> dict:
    """Opus with libopus concealment: {label: {'rates', 'stats'}} for every Opus peer and loss kind."""
    curves = {}
    for p in peers:
        if p.kind != "opus":
            continue
        for burst in bursts:
            label = f"{p.name} PLC, {'bursty (mean burst %g)' % burst if burst > 1 else 'random'}"
            def through_opus(u, i, rate, p=p, burst=burst):
                n_slots = int(np.ceil(len(u.audio) / 16000 / SLOT_S))
                mask = loss_mask(n_slots, LossCondition(rate, burst, seed + i))
                return p.run_with_loss(u.audio, lambda n: expand_mask(mask, n, 0.02))

            stats = _curve(rates, utts, scorer, progress, label, through_opus)
            curves[label] = {"rates": list(rates), "stats": stats}
    return curves


def summarize(curves: dict, metrics) -> list[str]:
    """One sentence per curve: each metric at the lowest and at the highest loss rate."""
    from .metrics import LABELS

    out = []
    for label, c in curves.items():
        parts = []
        for metric in metrics:
            st = [s.get(metric, {}) for s in c["stats"]]
            if st and st[0].get("mean") is not None and st[-1].get("mean") is not None:
                parts.append(f"{LABELS[metric]} {st[0]['mean']:.2f} -> {st[-1]['mean']:.2f}")
        if parts:
            out.append(f"{label}, {100 * c['rates'][0]:.0f}% -> {100 * c['rates'][-1]:.0f}% loss: "
                       + ", ".join(parts) + ".")
    return out


def run_loss(utts, peers, rates, bursts, metrics, progress, seed: int = 0, groups: dict | None = None,
             redundancies=(0, 2), size: str = "s", precision: str | None = None,
             models_dir: str | None = None) -> dict:
    """Quality-versus-loss curves: pnsc through the real receiver path (when it is in this checkout)
    and Opus with its own concealment, on the same 40 ms loss patterns."""
    from .metrics import Scorer

    scorer = Scorer(tuple(m for m in LOSS_METRICS if m in metrics) or ("pesq_wb",))
    curves = {}
    ok, why = receiver_path_available()
    missing = None
    if ok:
        curves.update(pnsc_curves(utts, groups or {}, rates, bursts, redundancies, scorer, progress, seed,
                                  size, precision, models_dir))
    else:
        missing = ("the in-process receiver path (jitter buffer, concealment, redundancy) is not in this "
                   f"checkout ({why}); no pnsc loss curve is drawn.")
    curves.update(opus_curves(utts, peers, rates, bursts, scorer, progress, seed))
    res = {"metrics": list(scorer.metrics), "curves": curves, "utterances": [u.id for u in utts],
           "missing": missing, "redundancies": list(redundancies), "size": size,
           "setup": "constant 1 ms network time, no jitter; receiver time scaling off (it would only move the "
                    "alignment); same per-40 ms loss pattern for pnsc and Opus (both 20 ms Opus packets of a lost "
                    "slot are lost); Opus decoded by libopus with its own concealment"}
    res["summary_lines"] = summarize(curves, scorer.metrics)
    return res
