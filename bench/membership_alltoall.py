"""The all-to-all heartbeat membership vipcast used before the SWIM protocol (issue 19), kept
here unchanged so the benchmark measures it beside its replacement, and an adapter that gives it
the simulator's sans-IO shape (the runtime used to send a heartbeat to every peer each interval
and an extra one when the serving set changed).

Each datagram: magic "VCM2" | kind | name | incarnation u64 | sequence u64 | serving count u16
| serving entries | HMAC-SHA256 (32 bytes). Every member sends one to every other member every
``interval`` (0.1 s); a member unheard for ``dead_after`` (0.35 s) is dead.
"""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from ipaddress import ip_address

MAGIC = b"VCM2"
COUNTERS = struct.Struct("!QQH")
DIGEST_SIZE = 32
MAX_NAME = 255
#: serving entries in one datagram (3,000 IPv6 entries: 51 kB, below the UDP maximum)
MAX_SERVING = 3000


class MembershipError(ValueError):
    """A heartbeat datagram that is malformed (before authentication)."""


class Kind(IntEnum):
    ALIVE = 1
    LEAVING = 2


@dataclass(frozen=True)
class Heartbeat:
    kind: Kind
    node: str
    incarnation: int
    sequence: int
    #: the VIPs the sender can serve now (canonical address strings)
    serving: frozenset[str] = frozenset()

    def encode(self, key: bytes) -> bytes:
        name = self.node.encode()
        if not 0 < len(name) <= MAX_NAME:
            raise ValueError(f"node name of {len(name)} bytes")
        if len(self.serving) > MAX_SERVING:
            raise ValueError(f"{len(self.serving)} serving entries (at most {MAX_SERVING})")
        entries = b"".join(
            bytes([len(packed)]) + packed
            for packed in sorted(ip_address(ip).packed for ip in self.serving)
        )
        body = (
            MAGIC
            + bytes([self.kind, len(name)])
            + name
            + COUNTERS.pack(self.incarnation, self.sequence, len(self.serving))
            + entries
        )
        return body + hmac.digest(key, body, hashlib.sha256)


def _decode_serving(data: bytes, count: int) -> frozenset[str]:
    out: list[str] = []
    offset = 0
    for _ in range(count):
        if offset >= len(data):
            raise MembershipError(f"{count} serving entries announced, {len(out)} present")
        size = data[offset]
        if size not in (4, 16) or offset + 1 + size > len(data):
            raise MembershipError(f"serving entry of {size} bytes at offset {offset}")
        out.append(str(ip_address(data[offset + 1 : offset + 1 + size])))
        offset += 1 + size
    if offset != len(data):
        raise MembershipError(f"{len(data) - offset} bytes after the serving entries")
    return frozenset(out)


def decode_heartbeat(data: bytes, key: bytes) -> Heartbeat | None:
    """The heartbeat, or None if its HMAC is wrong; raises :class:`MembershipError` if the
    datagram is malformed."""
    if len(data) < len(MAGIC) + 2 + COUNTERS.size + DIGEST_SIZE or data[:4] != MAGIC:
        raise MembershipError("not a vipcast heartbeat")
    kind, name_length = data[4], data[5]
    fixed = 6 + name_length + COUNTERS.size
    if name_length == 0 or len(data) < fixed + DIGEST_SIZE:
        raise MembershipError(f"heartbeat of {len(data)} bytes with a {name_length}-byte name")
    body, digest = data[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
    if not hmac.compare_digest(digest, hmac.digest(key, body, hashlib.sha256)):
        return None
    try:
        node = body[6 : 6 + name_length].decode()
        heartbeat_kind = Kind(kind)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MembershipError(f"authenticated but unreadable heartbeat: {exc}") from exc
    incarnation, sequence, count = COUNTERS.unpack_from(body, 6 + name_length)
    serving = _decode_serving(body[fixed:], count)
    return Heartbeat(heartbeat_kind, node, incarnation, sequence, serving)


class Verdict(Enum):
    ACCEPTED = "accepted"
    MALFORMED = "malformed"
    BAD_MAC = "bad-mac"
    REPLAY = "replay"
    UNKNOWN_MEMBER = "unknown-member"
    SELF = "self"


@dataclass(frozen=True)
class Received:
    verdict: Verdict
    #: the alive set or quorum changed
    changed: bool = False
    node: str | None = None


@dataclass(frozen=True)
class MembershipConfig:
    node: str
    #: every member including this node
    members: frozenset[str]
    key: bytes
    interval: float = 0.1
    #: a peer unheard for this long is dead (≈ 4 missed heartbeats at the default interval)
    dead_after: float = 0.35

    def __post_init__(self) -> None:
        if self.node not in self.members:
            raise ValueError(f"{self.node!r} is not among the members {sorted(self.members)}")
        if not self.key:
            raise ValueError("an empty membership key authenticates nothing")


@dataclass
class _Peer:
    incarnation: int = 0
    sequence: int = 0
    last_heard: float | None = None
    left: bool = False
    serving: frozenset[str] = frozenset()


@dataclass(frozen=True)
class View:
    alive: frozenset[str]
    left: frozenset[str]
    #: a majority of the voting members is alive, and the start-up wait is over
    quorum: bool
    #: the start-up wait is over (always True for an agent alone)
    settled: bool = True
    #: per alive node, the VIPs it says it can serve now; None: servability not considered
    serving: Mapping[str, frozenset[str]] | None = field(default=None, hash=False)


@dataclass
class Membership:
    config: MembershipConfig
    #: this agent's start time in ns (any value larger than the previous run's)
    incarnation: int
    _sequence: int = 0
    _peers: dict[str, _Peer] = field(default_factory=dict)
    _view: View | None = None
    #: when this agent began listening; no quorum before ``dead_after`` has passed since
    _started: float | None = None
    #: the VIPs this node can serve now (sent in every heartbeat)
    _serving: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self._peers = {name: _Peer() for name in self.config.members if name != self.config.node}
        self._view = self._compute_view(0.0)

    def start(self, now: float) -> None:
        """Begin listening. Until ``dead_after`` has passed the view has no quorum: a fresh
        agent has not yet had the chance to hear every live peer, and must not take a VIP from
        one it simply has not heard yet."""
        self._started = now
        self._refresh(now)

    def set_serving(self, ips: Iterable[str], now: float) -> bool:
        """Declare the VIPs this node can serve now; True if the view changed.

        Addresses are kept in canonical form; beyond :data:`MAX_SERVING` (in address order)
        the rest are not declared, so other nodes take them.
        """
        canonical = sorted({ip_address(ip) for ip in ips}, key=lambda a: (a.version, a))
        self._serving = frozenset(str(a) for a in canonical[:MAX_SERVING])
        return self._refresh(now)

    @property
    def serving(self) -> frozenset[str]:
        return self._serving

    # -- what to send ------------------------------------------------------------------------
    def heartbeat(self) -> bytes:
        """The next "alive" datagram. Until the start-up wait is over it declares nothing
        servable: this node cannot own anything yet, and the current owners must not let go
        of their VIPs before it can take them."""
        self._sequence += 1
        serving = self._serving if self.view.settled else frozenset()
        return Heartbeat(
            Kind.ALIVE, self.config.node, self.incarnation, self._sequence, serving
        ).encode(self.config.key)

    def leaving(self) -> bytes:
        self._sequence += 1
        return Heartbeat(Kind.LEAVING, self.config.node, self.incarnation, self._sequence).encode(
            self.config.key
        )

    # -- what arrives --------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> Received:
        try:
            heartbeat = decode_heartbeat(data, self.config.key)
        except MembershipError:
            return Received(Verdict.MALFORMED)
        if heartbeat is None:
            return Received(Verdict.BAD_MAC)
        if heartbeat.node == self.config.node:
            return Received(Verdict.SELF, node=heartbeat.node)
        peer = self._peers.get(heartbeat.node)
        if peer is None:
            return Received(Verdict.UNKNOWN_MEMBER, node=heartbeat.node)
        if (heartbeat.incarnation, heartbeat.sequence) <= (peer.incarnation, peer.sequence):
            return Received(Verdict.REPLAY, node=heartbeat.node)
        peer.incarnation, peer.sequence = heartbeat.incarnation, heartbeat.sequence
        if heartbeat.kind == Kind.LEAVING:
            peer.left, peer.last_heard, peer.serving = True, None, frozenset()
        else:
            peer.left, peer.last_heard, peer.serving = False, now, heartbeat.serving
        return Received(Verdict.ACCEPTED, self._refresh(now), heartbeat.node)

    def expire(self, now: float) -> bool:
        """Declare dead the peers unheard for ``dead_after``; True if the view changed."""
        return self._refresh(now)

    def next_deadline(self) -> float | None:
        """When the view changes next if nothing arrives: a silent peer declared dead, or the
        end of the start-up wait."""
        times = [
            p.last_heard + self.config.dead_after
            for p in self._peers.values()
            if p.last_heard is not None
        ]
        if self._started is not None and not self.view.settled:
            times.append(self._started + self.config.dead_after)
        return min(times) if times else None

    # -- the view ------------------------------------------------------------------------------
    @property
    def view(self) -> View:
        assert self._view is not None
        return self._view

    def _compute_view(self, now: float) -> View:
        alive = {self.config.node}
        for name, peer in self._peers.items():
            if peer.last_heard is not None and now - peer.last_heard < self.config.dead_after:
                alive.add(name)
            elif peer.last_heard is not None:
                peer.last_heard = None
        left = frozenset(name for name, peer in self._peers.items() if peer.left)
        voters = len(self.config.members) - len(left)
        settled = not self._peers or (
            self._started is not None and now - self._started >= self.config.dead_after
        )
        serving = {
            name: self._serving if name == self.config.node else self._peers[name].serving
            for name in alive
        }
        return View(
            frozenset(alive), left, settled and 2 * len(alive) > voters, settled, serving
        )

    def _refresh(self, now: float) -> bool:
        view = self._compute_view(now)
        changed = view != self._view
        self._view = view
        return changed

    def status(self, now: float) -> dict[str, object]:
        """Plain data: each peer's state and age of its last heartbeat."""
        peers: dict[str, object] = {}
        for name, peer in sorted(self._peers.items()):
            state = "left" if peer.left else "alive" if name in self.view.alive else "dead"
            age = None if peer.last_heard is None else round(now - peer.last_heard, 3)
            peers[name] = {
                "state": state,
                "last_heard_s": age,
                "incarnation": peer.incarnation,
                "serving": sorted(peer.serving) if state == "alive" else [],
            }
        return {
            "node": self.config.node,
            "alive": sorted(self.view.alive),
            "quorum": self.view.quorum,
            "serving": sorted(self._serving),
            "peers": peers,
        }


class AllToAll:
    """The old protocol driven as its runtime drove it, in the simulator's sans-IO shape."""

    def __init__(self, node: str, members: frozenset[str], key: bytes, incarnation: int) -> None:
        self.m = Membership(MembershipConfig(node, members, key), incarnation)
        self.node = node
        self.peers = sorted(members - {node})
        self._out: list[tuple[str, bytes]] = []
        self._next = 0.0
        self._ticked = -1.0

    @property
    def view(self) -> View:
        return self.m.view

    def start(self, now: float, *, announce: bool = True) -> None:
        self.m.start(now)
        self._next = now

    def _broadcast(self) -> None:
        datagram = self.m.heartbeat()
        self._out.extend((peer, datagram) for peer in self.peers)

    def tick(self, now: float) -> bool:
        self._ticked = now
        if now >= self._next:
            self._broadcast()
            self._next = max(self._next + self.m.config.interval, now)
        return self.m.expire(now)

    def receive(self, data: bytes, now: float) -> object:
        return self.m.receive(data, now)

    def datagrams_to_send(self) -> list[tuple[str, bytes]]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        deadline = self.m.next_deadline()
        deadline = self._next if deadline is None else min(self._next, deadline)
        # its expiry compares now - heard < dead_after, its deadline is heard + dead_after: one
        # float ulp apart they disagree, so never ask to be woken again at the same instant
        return max(deadline, self._ticked + 1e-6)

    def set_serving(self, ips: Iterable[str], now: float) -> bool:
        changed = self.m.set_serving(ips, now)
        self._broadcast()
        return changed

    def leave(self, now: float) -> None:
        for _ in range(3):
            datagram = self.m.leaving()
            self._out.extend((peer, datagram) for peer in self.peers)
