"""Packet store of the jitter buffer: packets by sequence number, duplicates, late arrivals, holes.

The playout policy (when to play, conceal, stretch or shrink) lives in :mod:`.core`, the target
delay in :mod:`.delay_manager` (as WebRTC NetEq keeps its DelayManager apart from its PacketBuffer).
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_AHEAD = 1500  # packets (60 s) beyond the playout point accepted into the buffer
MAX_BEHIND = 1500  # packets this far behind the playout point are "out of range", not just late


@dataclass
class Entry:
    packet: bytes
    ts: int | None  # sender timestamp (ms); None for a redundant copy
    group: int | None  # group carried with the packet (None: not carried)
    confidence: float | None
    redundant: bool  # filled from a redundant copy, not the primary message
    arrival: float = 0.0  # arrival time (s)


class JitterBuffer:
    """Packets waiting for playout. ``next_seq`` is the next packet the playout will take."""

    def __init__(self) -> None:
        self.packets: dict[int, Entry] = {}
        self.next_seq: int | None = None  # None: no stream yet
        self.max_seq: int | None = None
        self.played: dict[int, bool] = {}  # recently played seq -> played from the primary message

    def reset(self) -> None:
        self.__init__()

    def in_range(self, seq: int) -> bool:
        if self.next_seq is None:
            return True
        return self.next_seq - MAX_BEHIND <= seq <= self.next_seq + MAX_AHEAD

    def insert(self, seq: int, entry: Entry) -> str:
        """-> "new", "new-after-copy", "recovered" (a redundant copy filled a hole), "duplicate",
        "late", "covered" (the primary after its redundant copy was played), "redundant" (copy of a
        packet already here or played), "range" (sequence number not plausible)."""
        if not self.in_range(seq):
            return "range"
        if self.next_seq is None:
            self.next_seq = seq
        if seq < self.next_seq:
            if entry.redundant:
                return "redundant"
            if seq in self.played:  # the primary again, or the primary after its copy was played
                return "duplicate" if self.played[seq] else "covered"
            return "late"
        have = self.packets.get(seq)
        if have is not None:
            if entry.redundant:
                return "redundant"
            if have.redundant:  # the primary arrived after its redundant copy: keep group and ts
                self.packets[seq] = entry
                return "new-after-copy"
            return "duplicate"
        self.packets[seq] = entry
        self.max_seq = seq if self.max_seq is None else max(self.max_seq, seq)
        return "recovered" if entry.redundant else "new"

    def has(self, seq: int) -> bool:
        return seq in self.packets

    def has_later(self, seq: int) -> bool:
        return self.max_seq is not None and self.max_seq > seq and any(s > seq for s in self.packets)

    def take(self, seq: int) -> Entry | None:
        """Remove and return packet ``seq`` (None if missing) and move the playout point past it."""
        e = self.packets.pop(seq, None)
        if e is not None:
            self.played[seq] = not e.redundant
        if len(self.played) > 4 * MAX_BEHIND:
            lo = seq - MAX_BEHIND
            self.played = {s: p for s, p in self.played.items() if s >= lo}
        self.next_seq = seq + 1
        return e

    def depth_packets(self) -> int:
        """Packets buffered at or after the playout point."""
        return len(self.packets)

    def span_packets(self) -> int:
        """Stream span buffered: max_seq - next_seq + 1 (holes included), 0 when empty."""
        if self.next_seq is None or self.max_seq is None or self.max_seq < self.next_seq:
            return 0
        return self.max_seq - self.next_seq + 1
