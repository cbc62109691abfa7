"""Replay protection for one peer's datagrams: its boot nonce and a sliding sequence window.

A peer's datagrams are numbered 1, 2, 3, … within one boot. A receiver accepts each number at
most once and none older than :data:`WINDOW` below the highest seen (the sliding window of
RFC 4303 §3.4.3, with UDP's reordering in mind). A datagram of another boot is never judged
here: a new boot is adopted only through a fresh answer to a nonce the receiver chose (see
:mod:`vipcast.proto.membership.protocol`), so a datagram recorded before the peer restarted, or
before the receiver restarted, is refused.

The window is two integers kept in the peer's member record (``highest`` and the ``seen``
bitmap, see :class:`~vipcast.proto.membership.members.Member`), not an object of its own: every
member holds one per member, so a 5,000-member simulation holds 25 M of them.
"""

from __future__ import annotations

#: sequence numbers remembered below the highest seen (one sequence counts a sender's datagrams
#: to every member, so a receiver sees a sparse subset of it: the window is wide)
WINDOW = 1024
_MASK = (1 << WINDOW) - 1
#: ``highest`` of a peer whose boot is not proven fresh here: no sequence is accepted
UNPROVEN = -1


def slide(highest: int, seen: int, sequence: int) -> tuple[int, int] | None:
    """The window ``(highest, seen)`` after accepting ``sequence``, or None if it is refused: a
    replay, older than the window, not a sequence number (<= 0), or the boot is unproven.
    Bit i of ``seen`` set: ``highest - i`` was seen."""
    if highest < 0 or sequence <= 0:
        return None
    if sequence > highest:
        shift = sequence - highest
        return sequence, ((seen << shift) | 1) & _MASK if shift < WINDOW else 1
    offset = highest - sequence
    if offset >= WINDOW or seen >> offset & 1:
        return None
    return highest, seen | 1 << offset
