"""Pools at allocation time: which pool holds an address, and the next free address of a pool.

Free addresses are found with a per-range cursor over a set of used addresses, never by listing
a range: within one ``allocate`` call addresses are only taken (releases happen before), so
everything below a cursor stays used and each range is walked at most once per call. A /64 costs
as much as a /30.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache

from vipcast.alloc.model import PoolInput, ServiceInput


def is_buggy(version: int, value: int) -> bool:
    """IPv4 addresses ending in .0 or .255, which ``avoidBuggyIPs`` skips."""
    return version == 4 and (value & 0xFF) in (0, 0xFF)


#: the last part of a dotted quad, by value
_OCTETS = tuple(str(i) for i in range(256))


def ip_text(version: int, value: int) -> str:
    """Canonical text of an address (RFC 5952, as :mod:`ipaddress` writes it), formatted here
    directly: this runs for every address of every service (allocation, then the planner's
    prefixes). Addresses are handed out next to one another, so the text of all but the last
    byte (IPv4) or group (IPv6, when not zero) is remembered: :func:`_v4_head`, :func:`_v6_head`.
    """
    if version == 4:
        if 0 <= value < 1 << 32:
            return _v4_head(value >> 8) + _OCTETS[value & 255]
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    if not 0 <= value < 1 << 128:
        raise ValueError(f"{value} is not an IPv6 address")
    if value & 0xFFFF:
        return _v6_head(value >> 16) + f"{value & 0xFFFF:x}"
    return _v6_text(value)


@lru_cache(maxsize=4096)
def _v4_head(high: int) -> str:
    """``"a.b.c."`` of the IPv4 addresses ``high << 8 | d``."""
    return f"{high >> 16}.{(high >> 8) & 255}.{high & 255}."


@lru_cache(maxsize=4096)
def _v6_head(high: int) -> str:
    """The text of the IPv6 addresses ``high << 16 | g`` for any group ``g`` but 0, up to it:
    with the last group not zero, where "::" goes depends on the first seven groups only, so
    it is the text of ``high << 16 | 1`` less its final "1"."""
    return _v6_text(high << 16 | 1)[:-1]


def _v6_text(value: int) -> str:
    """RFC 5952 text of an IPv6 address given as an integer in range."""
    groups = [(value >> shift) & 0xFFFF for shift in range(112, -16, -16)]
    # the longest run of two or more zero groups (the first of equal ones) becomes "::"
    best_at, best_len, at, run = -1, 1, -1, 0
    for i, group in enumerate(groups):
        if group:
            run = 0
            continue
        if not run:
            at = i
        run += 1
        if run > best_len:
            best_at, best_len = at, run
    if best_at < 0:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_at])
    tail = ":".join(f"{g:x}" for g in groups[best_at + best_len:])
    return f"{head}::{tail}"


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _parse_v6_groups(text: str) -> int | None:
    """The value of plain hexadecimal IPv6 text (no embedded IPv4, no zone); None otherwise."""
    head, sep, tail = text.partition("::")
    if sep:
        high = head.split(":") if head else []
        low = tail.split(":") if tail else []
        if len(high) + len(low) > 7:
            return None
        groups = [*high, *["0"] * (8 - len(high) - len(low)), *low]
    else:
        groups = text.split(":")
        if len(groups) != 8:
            return None
    value = 0
    for group in groups:
        if not 0 < len(group) <= 4 or not _HEX_DIGITS.issuperset(group):
            return None
        value = value << 16 | int(group, 16)
    return value


def parse_address(text: str) -> tuple[int, int]:
    """(version, integer value) of an address; ValueError when it is not one.

    Canonical dotted quads and plain hexadecimal IPv6 take fast paths; anything else goes
    through :mod:`ipaddress` (which also words the error). The value of the text before the
    last byte (IPv4) or group (IPv6) is remembered (:func:`_v4_high`, :func:`_v6_high`): a
    plan parses thousands of neighbouring addresses.
    """
    head, dot, last = text.rpartition(".")
    if dot:
        octet = _OCTET_VALUES.get(last)
        if octet is not None:
            high = _v4_high(head)
            if high is not None:
                return 4, high | octet
    else:
        head, colon, last = text.rpartition(":")
        if colon and 0 < len(last) <= 4 and _HEX_DIGITS.issuperset(last):
            high = _v6_high(head)
            if high is not None:
                return 6, high | int(last, 16)
    parts = text.split(".")
    if len(parts) == 4 and text.isascii():
        try:
            a, b, c, d = map(int, parts)
        except ValueError:
            pass
        else:
            # canonical text only ("01", "+1", " 1" or "1_0" take the slow path)
            if (0 <= a <= 255 and 0 <= b <= 255 and 0 <= c <= 255 and 0 <= d <= 255
                    and f"{a}.{b}.{c}.{d}" == text):
                return 4, (a << 24) | (b << 16) | (c << 8) | d
    text = text.strip()
    if ":" in text:  # skip ip_address's IPv4 attempt (an exception per call)
        value = _parse_v6_groups(text)
        if value is not None:
            return 6, value
        return 6, int(ipaddress.IPv6Address(text))
    return 4, int(ipaddress.IPv4Address(text))


#: a canonical byte's text -> its value
_OCTET_VALUES = {text: value for value, text in enumerate(_OCTETS)}


@lru_cache(maxsize=4096)
def _v4_high(head: str) -> int | None:
    """The value of the IPv4 addresses ``head + "." + d``, less ``d``; None unless ``head`` is
    three canonical bytes."""
    parts = head.split(".")
    if len(parts) != 3:
        return None
    values = [_OCTET_VALUES.get(part) for part in parts]
    if None in values:
        return None
    a, b, c = values
    assert a is not None and b is not None and c is not None
    return a << 24 | b << 16 | c << 8


@lru_cache(maxsize=4096)
def _v6_high(head: str) -> int | None:
    """The value of the IPv6 addresses ``head + ":" + g`` for a group ``g`` of 1-4 hex digits,
    less ``g``: that of ``head + ":0"`` when it is plain hexadecimal IPv6, else None."""
    return _parse_v6_groups(head + ":0")


def pool_rank(pool: PoolInput) -> tuple[bool, bool, int, bool, bool, str]:
    """Sort key, MetalLB's order made total: pools with a serviceAllocation first, by priority
    (lower first; unset or 0 last), then the more specific selectors, then pools without a
    serviceAllocation; ties by name."""
    priority = pool.rank_priority
    return (
        not pool.is_pinned,
        priority is None,
        priority or 0,
        not pool.service_selectors,
        not (pool.namespaces or pool.namespace_selectors),
        pool.name,
    )


def rank_note(pool: PoolInput) -> str:
    """How ``pool`` ranks, in words (for reasons)."""
    if pool.rank_priority is not None:
        return f"priority {pool.rank_priority}"
    if pool.is_pinned:
        return "serviceAllocation, no priority (0 counts as unset)"
    return "no serviceAllocation"


def serves(pool: PoolInput, service: ServiceInput) -> bool:
    """The pool's serviceAllocation lets this service take addresses from it."""
    if pool.namespaces and service.namespace not in pool.namespaces:
        return False
    if pool.namespace_selectors and not any(
        s.matches(service.namespace_labels) for s in pool.namespace_selectors
    ):
        return False
    return not pool.service_selectors or any(
        s.matches(service.labels) for s in pool.service_selectors
    )


class PoolIndex:
    """All pools of one allocation run, ranked, with lookup by address and free cursors."""

    def __init__(self, pools: Iterable[PoolInput]) -> None:
        self.ranked: tuple[PoolInput, ...] = tuple(sorted(pools, key=pool_rank))
        self.by_name: dict[str, PoolInput] = {p.name: p for p in self.ranked}
        self._used: dict[int, set[int]] = {4: set(), 6: set()}
        # per (pool name, range index): the next value that may be free
        self._cursor: dict[tuple[str, int], int] = {}
        self._full: set[tuple[str, int]] = set()
        # lookup tables per family: range starts, (first, last, pool), running max of last
        self._starts: dict[int, list[int]] = {}
        self._spans: dict[int, list[tuple[int, int, str]]] = {}
        self._reach: dict[int, list[int]] = {}
        for version in (4, 6):
            spans = sorted(
                (r.first, r.last, p.name)
                for p in self.ranked
                for r in p.ranges
                if r.version == version
            )
            reach: list[int] = []
            for _first, last, _name in spans:
                reach.append(max(last, reach[-1]) if reach else last)
            self._starts[version] = [s[0] for s in spans]
            self._spans[version] = spans
            self._reach[version] = reach

    def pools_of(self, version: int, value: int) -> list[str]:
        """Names of the pools whose ranges contain the address (several if pools overlap)."""
        spans, reach = self._spans[version], self._reach[version]
        i = bisect_right(self._starts[version], value) - 1
        names: list[str] = []
        while i >= 0 and reach[i] >= value:
            first, last, name = spans[i]
            if first <= value <= last and name not in names:
                names.append(name)
            i -= 1
        return names

    def take(self, version: int, value: int) -> None:
        self._used[version].add(value)

    def release(self, version: int, value: int) -> None:
        """Give an address back (a refused request); cursors past it step back."""
        self._used[version].discard(value)
        self._full = {k for k in self._full if k[1] != version}
        for pool in self.ranked:
            for index, rng in enumerate(pool.ranges):
                key = (pool.name, index)
                if rng.version == version and rng.first <= value <= rng.last:
                    self._cursor[key] = min(self._cursor.get(key, value), value)

    def is_used(self, version: int, value: int) -> bool:
        return value in self._used[version]

    def peek_free(self, pool: PoolInput, version: int) -> int | None:
        """The lowest free address of ``version`` in ``pool`` (not taken); None when full."""
        if (pool.name, version) in self._full:
            return None
        used = self._used[version]
        for index, rng in enumerate(pool.ranges):
            if rng.version != version:
                continue
            key = (pool.name, index)
            value = self._cursor.get(key, rng.first)
            while value <= rng.last and (
                value in used or (pool.avoid_buggy_ips and is_buggy(version, value))
            ):
                value += 1
            self._cursor[key] = value
            if value <= rng.last:
                return value
        self._full.add((pool.name, version))
        return None

    def is_full(self, pool: PoolInput, version: int) -> bool:
        """Known to have no free address of ``version`` (found out earlier in this run)."""
        return (pool.name, version) in self._full
