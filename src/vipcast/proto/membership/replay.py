"""Replay protection for one peer's datagrams: its boot nonce and a sliding sequence window.

A peer's datagrams are numbered 1, 2, 3, … within one boot. A receiver accepts each number at
most once and none older than :data:`WINDOW` below the highest seen (the sliding window of
RFC 4303 §3.4.3, with UDP's reordering in mind). A datagram of another boot is never judged
here: a new boot is adopted only through a fresh answer to a nonce the receiver chose (see
:mod:`vipcast.proto.membership.protocol`), so a datagram recorded before the peer restarted, or
before the receiver restarted, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

#: sequence numbers remembered below the highest seen (one sequence counts a sender's datagrams
#: to every member, so a receiver sees a sparse subset of it: the window is wide)
WINDOW = 1024


@dataclass(slots=True)
class ReplayWindow:
    boot: int
    highest: int = 0
    #: bit i set: ``highest - i`` was seen
    seen: int = 0

    def accept(self, boot: int, sequence: int) -> bool:
        """True (and remember it) if ``sequence`` of ``boot`` is new; False if a replay."""
        if boot != self.boot or sequence <= 0:
            return False
        if sequence > self.highest:
            shift = sequence - self.highest
            self.seen = ((self.seen << shift) | 1) & ((1 << WINDOW) - 1)
            self.highest = sequence
            return True
        offset = self.highest - sequence
        if offset >= WINDOW or self.seen >> offset & 1:
            return False
        self.seen |= 1 << offset
        return True
