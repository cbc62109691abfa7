"""Who is alive on the LAN, without the API server: authenticated UDP heartbeats between agents.

Sans-IO. The runtime sends :meth:`Membership.heartbeat` to every peer each ``interval``, feeds
every received datagram to :meth:`Membership.receive`, and calls :meth:`Membership.expire` at
:meth:`Membership.next_deadline`. Time is the caller's monotonic ``now`` in seconds.

Wire format: :mod:`vipcast.proto.membership.codec`.

Heartbeat format recap::

    magic "VCM2" | kind u8 (1 alive, 2 leaving) | name length u8 | name (UTF-8)
    | incarnation u64 | sequence u64 | serving count u16 | serving entries
    | HMAC-SHA256 over everything before it (32 bytes)

    serving entry = address length u8 (4 or 16) | address bytes

The serving entries are the VIPs the sender can serve now (a healthy backend, and verified
through its own data plane); every heartbeat carries the whole set, so a receiver's view of it
is never older than one heartbeat. At most :data:`MAX_SERVING` entries fit one datagram; a
sender with more VIPs declares only the first ones (fail closed: the rest go to other nodes).

The shared key keeps strangers from joining or announcing someone's departure. A peer's
``(incarnation, sequence)`` must grow strictly, so a recorded datagram cannot be replayed; the
incarnation (the sender's start time in ns) lets a restarted agent begin again at sequence 1.

L2 ownership follows from the view (:mod:`vipcast.core.l2owner`): every node computes it from
the same heartbeats, so they agree without the API server.

Split-brain rule: a node whose view lacks a quorum (more than half of the members not known to
have left, itself included) owns nothing: it cannot tell its own isolation from everyone else's
death, and the majority side takes over within the same failover window, so the minority
dropping is what keeps a VIP answered by one node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import ip_address

from vipcast.proto.membership.codec import (
    MAX_SERVING,
    Heartbeat,
    Kind,
    MembershipError,
    decode_heartbeat,
)


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
