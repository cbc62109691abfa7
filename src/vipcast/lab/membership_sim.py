"""A discrete-event simulator of node membership: many members of the real sans-IO protocol in
one process, a fake clock, and a network model (latency, jitter, loss, partitions).

Each member is any object with the sans-IO shape of
:class:`~vipcast.proto.membership.Membership` (``receive``, ``tick``, ``datagrams_to_send``,
``next_deadline``, ``view``, ``set_serving``, ``leave``); the benchmark also runs the
all-to-all heartbeat of before through an adapter of that shape. Nothing here sleeps or opens a
socket: the simulated time only advances from one event to the next.

What it records: when each member stops seeing a killed member alive (detection), every time a
member stops seeing a member that is up (a false death), when each member sees a new serving
set (propagation), and the datagrams and bytes each member sends.
"""

from __future__ import annotations

import heapq
import random
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from vipcast.proto.membership import (
    Interner,
    Membership,
    MembershipConfig,
    Rumor,
    State,
    Timers,
    View,
)

#: UDP (8) + IPv4 (20) bytes a datagram costs on the wire beyond its payload
WIRE_OVERHEAD = 28


class Member(Protocol):
    @property
    def view(self) -> View: ...
    def start(self, now: float, *, announce: bool = True) -> None: ...
    def receive(self, data: bytes, now: float) -> object: ...
    def tick(self, now: float) -> bool: ...
    def datagrams_to_send(self) -> list[tuple[str, bytes]]: ...
    def next_deadline(self) -> float | None: ...
    def set_serving(self, ips: Iterable[str], now: float) -> bool: ...
    def leave(self, now: float) -> None: ...


@dataclass
class Network:
    """One-way latency ``latency`` + uniform jitter, independent loss, and partitions."""

    latency: float = 0.0003
    jitter: float = 0.0002
    loss: float = 0.0
    #: node -> partition label; nodes with different labels cannot talk
    side: dict[str, int] = field(default_factory=dict)

    def delay(self, rng: random.Random, src: str, dst: str) -> float | None:
        if self.side.get(src, 0) != self.side.get(dst, 0):
            return None
        if self.loss and rng.random() < self.loss:
            return None
        return self.latency + rng.random() * self.jitter


@dataclass
class Traffic:
    packets: int = 0
    bytes: int = 0


@dataclass
class Simulation:
    members: dict[str, Member]
    network: Network = field(default_factory=Network)
    seed: int = 1
    now: float = 0.0
    up: set[str] = field(default_factory=set)
    sent: dict[str, Traffic] = field(default_factory=dict)
    #: (observer, member) -> time the observer stopped seeing the member alive
    lost_sight: dict[tuple[str, str], float] = field(default_factory=dict)
    #: (observer, member, time) for members that were up when the observer lost sight of them
    false_deaths: list[tuple[str, str, float]] = field(default_factory=list)
    #: (observer, member) -> time the observer first saw the member's watched serving set
    serving_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    watched_serving: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._events: list[tuple[float, int, str, str, bytes]] = []
        self._count = 0
        self._tick_at: dict[str, float] = {}
        self._alive_before: dict[str, frozenset[str]] = {}
        self._serving_before: dict[str, Mapping[str, frozenset[str]] | None] = {}
        self.sent = {name: Traffic() for name in self.members}
        #: member -> end of its current stall (its process runs nothing until then)
        self._stalled_until: dict[str, float] = {}

    # -- control -------------------------------------------------------------------------
    def start_all(self, stagger: float = 0.0, *, announce: bool = True) -> None:
        """Start every member (``announce=False``: members of a warm-started cluster, already
        known to everyone, do not announce themselves again)."""
        for name, member in self.members.items():
            at = self.now + self.rng.random() * stagger
            if announce:
                member.start(at)
            else:
                member.start(at, announce=False)
            self.up.add(name)
            self._after(name)

    def kill(self, name: str) -> float:
        """A crash: the member sends nothing more and receives nothing."""
        self.up.discard(name)
        self._tick_at.pop(name, None)
        return self.now

    def set_serving(self, name: str, ips: Iterable[str]) -> float:
        member = self.members[name]
        self.watched_serving[name] = frozenset(ips)
        member.set_serving(ips, self.now)
        self._after(name)
        return self.now

    def stall(self, name: str, at: float, duration: float) -> None:
        """From ``at``, ``name``'s process runs nothing for ``duration`` seconds (a GC pause, a
        loaded machine): its timers fire late and what arrives meanwhile waits in its socket,
        read in arrival order when the stall ends."""
        self._push(at, "stall", name, repr(duration).encode())

    def reset_traffic(self) -> None:
        self.sent = {name: Traffic() for name in self.members}

    def run_until(self, end: float) -> None:
        events = self._events
        while events and events[0][0] <= end:
            at, _, kind, name, data = heapq.heappop(events)
            self.now = at
            if name not in self.up:
                continue
            member = self.members[name]
            if kind == "stall":
                until = at + float(data.decode())
                self._stalled_until[name] = max(self._stalled_until.get(name, 0.0), until)
                continue
            resume = self._stalled_until.get(name)
            if resume is not None and at < resume:
                if kind == "tick":
                    self._tick_at[name] = resume
                self._push(resume, kind, name, data)
                continue
            if kind == "tick":
                if self._tick_at.get(name) != at:
                    continue
                del self._tick_at[name]
                member.tick(at)
            else:
                member.receive(data, at)
            self._after(name)
        self.now = max(self.now, end)

    # -- internals -------------------------------------------------------------------------
    def _push(self, at: float, kind: str, name: str, data: bytes = b"") -> None:
        self._count += 1
        heapq.heappush(self._events, (at, self._count, kind, name, data))

    def _after(self, name: str) -> None:
        member = self.members[name]
        traffic = self.sent[name]
        for dst, data in member.datagrams_to_send():
            traffic.packets += 1
            traffic.bytes += len(data) + WIRE_OVERHEAD
            if dst not in self.up:
                continue
            delay = self.network.delay(self.rng, name, dst)
            if delay is not None:
                self._push(self.now + delay, "recv", dst, data)
        deadline = member.next_deadline()
        if deadline is not None and self._tick_at.get(name) != deadline:
            deadline = max(deadline, self.now)
            self._tick_at[name] = deadline
            self._push(deadline, "tick", name)
        self._observe(name, member.view)

    def _observe(self, name: str, view: View) -> None:
        before = self._alive_before.get(name)
        if before is not view.alive:
            if before is not None:
                for gone in before - view.alive:
                    self.lost_sight.setdefault((name, gone), self.now)
                    if gone in self.up and gone not in view.left:
                        self.false_deaths.append((name, gone, self.now))
            self._alive_before[name] = view.alive
        if self.watched_serving and view.serving is not self._serving_before.get(name):
            self._serving_before[name] = view.serving
            for owner, ips in self.watched_serving.items():
                key = (name, owner)
                if key not in self.serving_seen and view.serving is not None and (
                    view.serving.get(owner) == ips
                ):
                    self.serving_seen[key] = self.now


def swim_members(
    count: int,
    timers: Timers,
    *,
    seed: int = 1,
    key: bytes = b"simulation-key",
    prefix: str = "n",
) -> dict[str, Member]:
    """``count`` members of the real protocol, each with its own seeded randomness, sharing
    the alive sets their views have in common (one copy instead of ``count``)."""
    rng = random.Random(seed)
    names = [f"{prefix}{i:05d}" for i in range(count)]
    everyone = frozenset(names)
    intern = Interner()
    return {
        name: Membership(
            MembershipConfig(name, everyone, key, timers),
            boot=rng.getrandbits(64) | 1,
            rng=random.Random(rng.getrandbits(64)),
            intern=intern,
        )
        for name in names
    }


def warm_start(members: Mapping[str, Member], now: float = 0.0) -> None:
    """Start where a cluster up for longer than one probe round is: every member knows every
    other alive at its boot, and every pair has proven its boots to each other (each pair's
    one challenge exchange is not simulated: N² datagrams that a running cluster paid once)."""
    swim = [m for m in members.values() if isinstance(m, Membership)]
    records = [Rumor(m.node, m.boot, 0, State.ALIVE) for m in swim]
    for member in swim:
        member.learn((r for r in records if r.node != member.node), now, proven=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
    }


def converged(sim: Simulation, check: Callable[[View], bool]) -> bool:
    return all(check(sim.members[name].view) for name in sim.up)
