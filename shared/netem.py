"""Seeded, reproducible network impairments for testers (like Linux netem, per message).

:class:`Impairments` holds the settings; :class:`Netem` applies them to a stream of messages:
``netem.process(message, now) -> [(deliver_at, message), ...]`` (zero, one or two deliveries).

- ``loss``: probability that a message is dropped. With ``burst`` (mean burst length in
  messages, > 1) losses follow a two-state Gilbert-Elliott chain whose long-run loss rate is
  ``loss`` and whose mean run of consecutive losses is ``burst`` (loss in the bad state is 1,
  none in the good state).
- ``delay`` (ms): constant one-way delay; ``jitter`` (ms): extra delay, uniform in 0..2*jitter
  mean ``jitter`` (messages may overtake each other when jitter exceeds the send spacing).
- ``reorder``: probability that a message is held back by one packet interval (plus jitter)
  so the next message overtakes it.
- ``duplicate``: probability that a message is delivered twice (the copy 0..10 ms later).

The same seed and the same message sequence give the same impairment pattern. ``loss`` can be
changed live (``set_loss``), keeping the chain's burst length.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

PACKET_INTERVAL_MS = 40.0


class NetemError(ValueError):
    """Impossible impairment settings."""


@dataclass
class Impairments:
    loss: float = 0.0
    burst: float = 0.0  # mean burst length in messages; <= 1: independent (random) loss
    delay: float = 0.0  # ms
    jitter: float = 0.0  # ms
    reorder: float = 0.0
    duplicate: float = 0.0
    seed: int = 0

    def validate(self) -> "Impairments":
        for name in ("loss", "reorder", "duplicate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise NetemError(f"--{name} must be a probability in 0..1, got {v}")
        if self.loss >= 1.0 and self.burst > 1:
            raise NetemError("--loss 1 with --burst makes no sense (everything is lost)")
        for name in ("delay", "jitter"):
            v = getattr(self, name)
            if not 0.0 <= v <= 60_000:
                raise NetemError(f"--{name} must be 0..60000 ms, got {v}")
        if self.burst < 0 or self.burst > 1000:
            raise NetemError(f"--burst must be a mean burst length 0..1000 (packets), got {self.burst}")
        return self

    @property
    def active(self) -> bool:
        return any((self.loss, self.delay, self.jitter, self.reorder, self.duplicate))

    def to_dict(self) -> dict:
        return asdict(self)


class Netem:
    """Applies :class:`Impairments` message by message; deterministic for a given seed."""

    def __init__(self, imp: Impairments | None = None):
        self.imp = (imp or Impairments()).validate()
        self._rng = random.Random(self.imp.seed)
        self._bad = False
        self.counts = {"in": 0, "dropped": 0, "duplicated": 0, "reordered": 0, "delivered": 0}
        self._last_deliver = float("-inf")

    def set_loss(self, loss: float) -> None:
        """Change the loss rate live (the demo's ``l`` key)."""
        Impairments(loss=loss, burst=self.imp.burst).validate()
        self.imp.loss = float(loss)

    def _lost(self) -> bool:
        p, burst = self.imp.loss, self.imp.burst
        if p <= 0:
            self._bad = False
            return False
        if burst <= 1.0:
            return self._rng.random() < p
        # Gilbert-Elliott with loss only in the bad state: P(bad->good) = 1/burst and the
        # stationary bad probability p give P(good->bad) = p / (burst * (1 - p)).
        r = 1.0 / burst
        q = min(1.0, p * r / max(1e-9, 1.0 - p))
        self._bad = (self._rng.random() >= r) if self._bad else (self._rng.random() < q)
        return self._bad

    def process(self, message: bytes, now: float) -> list[tuple[float, bytes]]:
        """Deliveries ``[(time_s, message)]`` for one message sent at ``now`` (seconds)."""
        imp = self.imp
        self.counts["in"] += 1
        # Draw every random number each time so one setting does not shift another's pattern.
        lost = self._lost()
        u_jit, u_reo, u_dup, u_dup_t = (self._rng.random() for _ in range(4))
        if lost:
            self.counts["dropped"] += 1
            return []
        delay_ms = imp.delay + (2.0 * imp.jitter * u_jit if imp.jitter else 0.0)
        if u_reo < imp.reorder:
            delay_ms += PACKET_INTERVAL_MS * 1.5
            self.counts["reordered"] += 1
        t = now + delay_ms / 1000.0
        out = [(t, message)]
        if u_dup < imp.duplicate:
            out.append((t + 0.010 * u_dup_t, message))
            self.counts["duplicated"] += 1
        self.counts["delivered"] += len(out)
        return out


def add_impairment_arguments(p) -> None:
    """The tester's impairment options (``pnsc send`` and ``pnsc netem``)."""
    g = p.add_argument_group("impairments (seeded, reproducible)")
    g.add_argument("--loss", type=float, default=0.0, metavar="P", help="message loss probability 0..1")
    g.add_argument("--burst", type=float, default=0.0, metavar="MEAN_LEN",
                   help="bursty loss: Gilbert-Elliott with this mean burst length (messages)")
    g.add_argument("--jitter", type=float, default=0.0, metavar="MS", help="mean extra delay, uniform 0..2*MS")
    g.add_argument("--reorder", type=float, default=0.0, metavar="P", help="probability a message is overtaken")
    g.add_argument("--duplicate", type=float, default=0.0, metavar="P", help="probability a message is sent twice")
    g.add_argument("--delay", type=float, default=0.0, metavar="MS", help="constant one-way delay")
    g.add_argument("--seed", type=int, default=0, help="impairment random seed")


def impairments_from_args(args) -> Impairments:
    return Impairments(loss=args.loss, burst=args.burst, delay=args.delay, jitter=args.jitter,
                       reorder=args.reorder, duplicate=args.duplicate, seed=args.seed).validate()
