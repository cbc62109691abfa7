"""Who is alive on the LAN, without the API server: SWIM with HMAC and replay protection.

Sans-IO, in aioquic's shape: the caller passes ``now`` (monotonic seconds) into every call,
sends what :meth:`Membership.datagrams_to_send` returns (to the named member's address),
feeds every received datagram to :meth:`Membership.receive`, and calls
:meth:`Membership.tick` at :meth:`Membership.next_deadline`. Randomness comes from the
``random.Random`` it is handed, so a run is reproducible from its seed.

Failure detection (SWIM, Das et al. 2002, with Lifeguard's buddy notice): each
``probe_interval`` one member is pinged, round-robin over a list shuffled anew each round; no
ack within ``probe_timeout`` → ``indirect_checks`` others are asked to ping it; no ack by the
end of the period → the member is suspected. A suspicion not refuted within the suspicion
timeout becomes a death. A member refutes a suspicion of itself by raising its incarnation.
Membership changes and serving-set changes ride as rumors on every datagram, and on gossip
datagrams sent to ``gossip_nodes`` random members while rumors are pending.

Serving sets: each member numbers its set; a change is a rumor carrying the new version and,
when small, the delta from the previous version. A member holding an older version pulls the set
from its owner (paged, one MTU each). A new member pulls the member table from one peer (SYNC).

Authentication and replay: every datagram carries a truncated HMAC-SHA256 under the shared key,
the sender's random 64-bit boot nonce and a per-boot sequence number. A receiver counts a
sender's datagrams only once that boot was proven fresh: by an answer that echoes a nonce the
receiver chose (an ack to its ping, a response to its challenge). Until then it answers pings
(so the sender can verify it) and challenges the sender; rumors are ignored. A datagram recorded
before the sender or the receiver restarted therefore never counts again. See
docs/membership.md.

Split-brain rule (unchanged): a node whose view lacks a quorum (more than half of the members
not known to have left, itself included) owns nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address

from vipcast.proto.membership.authentication import REQUESTS, AuthenticationMixin, Verdict
from vipcast.proto.membership.codec import (
    MTU_PAYLOAD,
    Datagram,
    Kind,
    Rumor,
    State,
    WireError,
    decode,
    encode,
)
from vipcast.proto.membership.config import MembershipConfig
from vipcast.proto.membership.detection import DetectionMixin, _Pending, _Probe
from vipcast.proto.membership.dissemination import DisseminationMixin
from vipcast.proto.membership.members import Member, RumorQueue
from vipcast.proto.membership.sync import SyncMixin
from vipcast.proto.membership.view import Interner, View, ViewMixin

#: serving addresses this node declares at most (in address order; the rest go to others)
MAX_SERVING = 3000
#: members told at once of a graceful stop (all of them in a small cluster)
LEAVE_FANOUT = 16
#: copies of each LEAVE (UDP may drop one; the later copies count as replays, harmlessly)
LEAVE_COPIES = 3
#: a request (challenge, pull, sync) is sent again after ``request_timeout``, and its answer
#: still counts for this many timeouts: on a loaded machine a round trip can take longer than
#: one, and an answer refused as stale each time would leave the request unanswered for good
ANSWER_WINDOW = 4


@dataclass(frozen=True)
class Received:
    verdict: Verdict
    #: the alive set, serving sets or quorum changed
    changed: bool = False
    node: str | None = None


class Membership(AuthenticationMixin, DisseminationMixin, DetectionMixin, SyncMixin, ViewMixin):
    """The state machine: receive, tick, leave, what to send, the view (see the module text)."""

    def __init__(
        self,
        config: MembershipConfig,
        boot: int,
        rng: random.Random,
        *,
        intern: Interner | None = None,
    ) -> None:
        """``intern``: shared by members run in one process (the simulator), which then hold
        the alive set their views have in common once (see :class:`~.view.Interner`)."""
        if not 0 < boot < 2**64:
            raise ValueError("the boot nonce must be a non-zero 64-bit number")
        self.config = config
        self.timers = config.timers
        self.node = config.node
        self.boot = boot
        self.incarnation = 0
        self.rng = rng
        self._intern = intern
        self._sequence = 0
        self.members: dict[str, Member] = {}
        self._rumors = RumorQueue()
        self._pending: dict[int, _Pending] = {}
        self._outbox: list[tuple[str, bytes]] = []
        self._order: list[str] = []
        self._probe: _Probe | None = None
        self._next_probe = 0.0
        self._next_gossip = 0.0
        self._started: float | None = None
        self._serving: frozenset[str] = frozenset()
        self._declared: frozenset[str] = frozenset()
        self._serving_version = 0
        self._left = False
        #: suspected members and when their suspicion runs out
        self._suspects: dict[str, float] = {}
        #: per suspected member: when the suspicion began here and who was heard suspecting
        #: that incarnation (Lifeguard's confirmations; the first one is not a confirmation)
        self._accusers: dict[str, tuple[float, int, set[str]]] = {}
        #: Lifeguard's local health score, 0 (healthy) .. awareness_max - 1
        self.health = 0
        #: members whose serving set is older than a version we heard of
        self._wanting: set[str] = set()
        #: the member table changed since the view was last computed
        self._dirty = True
        self._name_list: list[str] = []
        self._view = View(frozenset({self.node}), frozenset(), False, False, {})
        #: the deadline :meth:`next_deadline` last gave; a tick much later means this node
        #: stalled (see :meth:`_stalled`), and whether that stall was already given its grace
        self._promised: float | None = None
        self._graced = False
        self._init_sync()
        self.set_members(config.members, 0.0)

    # -- inputs ----------------------------------------------------------------------------
    def start(self, now: float, *, announce: bool = True) -> None:
        """Begin: announce this boot (a rumor) and fetch the member table unless it is known.
        ``announce=False`` is for a member restored into a cluster that already knows it (the
        simulator's warm start)."""
        self._started = now
        self._next_probe = now
        self._next_gossip = now
        if announce:
            self._rumors.push(self._self_rumor(), self._transmits())
        self._refresh(now)
        self._start_sync(now)

    def set_members(self, names: Iterable[str], now: float) -> bool:
        """The members as the source of truth lists them now: newcomers are probed from now on,
        the removed are forgotten (and no longer count for the quorum)."""
        wanted = set(names) - {self.node}
        for name in list(self.members):
            if name not in wanted:
                del self.members[name]
                self._rumors.discard(name)
                self._suspects.pop(name, None)
                self._accusers.pop(name, None)
                self._wanting.discard(name)
                self._dirty = True
        for name in sorted(wanted - set(self.members)):
            self.members[name] = Member(name)
            self._dirty = True
            # randrange(k + 1) draws what randint(0, k) drew, at less cost (25 M draws at 5,000)
            self._order.insert(self.rng.randrange(len(self._order) + 1), name)
        self._order = [n for n in self._order if n in self.members]
        return self._refresh(now)

    def set_serving(self, ips: Iterable[str], now: float) -> bool:
        """Declare the VIPs this node can serve now; True if the view changed."""
        canonical = sorted({ip_address(ip) for ip in ips}, key=lambda a: (a.version, a))
        self._serving = frozenset(str(a) for a in canonical[:MAX_SERVING])
        self._declare()
        return self._refresh(now)

    @property
    def serving(self) -> frozenset[str]:
        return self._serving

    def receive(self, data: bytes, now: float) -> Received:
        try:
            d = decode(data, self.config.key, self.node)
        except WireError:
            return Received(Verdict.MALFORMED)
        if d is None:
            return Received(Verdict.BAD_MAC)
        if d.sender == self.node:
            return Received(Verdict.SELF, node=d.sender)
        member = self.members.get(d.sender)
        if member is None:
            return Received(Verdict.UNKNOWN_MEMBER, node=d.sender)
        held = member.held
        verdict = self._authenticate(member, d, now)
        if verdict != Verdict.ACCEPTED:
            return Received(verdict, self._refresh(now), d.sender)
        self._process(member, d, now)
        if held is not None and member.held is held:
            # first contact: the datagram held back until the sender's boot was proven fresh
            member.held = None
            if member.accept(held.boot, held.sequence):
                self._process(member, held, now, answered=True)
        return Received(Verdict.ACCEPTED, self._refresh(now), d.sender)

    def learn(self, rumors: Iterable[Rumor], now: float, *, proven: bool = False) -> bool:
        """Apply member records as if a SYNC answer had brought them; True if the view changed.

        ``proven``: also count their boots as proven fresh, as after each pair has exchanged
        one challenge (a cluster up for longer than one probe round). Only the simulator's
        warm start uses it, to begin where a long-running cluster is."""
        for rumor in rumors:
            self._apply(rumor, now, spread=False)
            member = self.members.get(rumor.node)
            if proven and member is not None and member.boot == rumor.boot:
                member.prove()
        return self._refresh(now)

    def _process(self, member: Member, d: Datagram, now: float, answered: bool = False) -> None:
        # the rumors first: the owner's own change (with its delta) rides a datagram whose
        # header already carries the new version; read first, the header would make that
        # delta look stale, and every member would pull the set instead (and pass on the
        # version without the delta). The header after: a version newer than what the
        # rumors brought still leads to a pull, so nothing rests on rumors arriving
        for rumor in d.rumors:
            self._apply(rumor, now, source=d.sender)
        if (
            d.incarnation > member.incarnation
            or member.state is None
            or d.serving_version > member.wanted_version
        ):
            self._apply(Rumor(d.sender, d.boot, d.incarnation, State.ALIVE, d.serving_version),
                        now)
        if not (answered and d.kind in REQUESTS):
            self._handle(member, d, now)
        if member.state in (State.SUSPECT, State.DEAD):
            self._tell(member, now)

    def tick(self, now: float) -> bool:
        """Run the timers due at ``now``; True if the view changed."""
        if self._started is None or self._left:
            return False
        if self._stalled(now):
            return self._grace(now)
        for token in [t for t, p in self._pending.items() if p.expires <= now]:
            del self._pending[token]
        self._probe_step(now)
        for name in [n for n, t in self._suspects.items() if t <= now]:
            del self._suspects[name]
            self._accusers.pop(name, None)
            member = self.members[name]
            if member.state == State.SUSPECT:
                # its serving set is kept (see _apply): a refutation brings it back at once
                member.state, self._dirty = State.DEAD, True
                self._rumors.push(member.rumor(), self._transmits())
        if self._rumors and now >= self._next_gossip:
            self._next_gossip = now + self.timers.gossip_interval
            for name in self._pick(self.timers.gossip_nodes, exclude=()):
                self._send(name, Kind.GOSSIP)
        self._sync_step(now)
        return self._refresh(now)

    def leave(self, now: float) -> None:
        """A graceful stop: tell members now so they take over at once (no suspicion)."""
        self._left = True
        self._dirty = True
        self.incarnation += 1
        rumor = Rumor(self.node, self.boot, self.incarnation, State.LEFT, self._serving_version)
        self._rumors.push(rumor, self._transmits())
        names = [n for n, m in self.members.items() if m.state in (State.ALIVE, State.SUSPECT)]
        if len(names) > LEAVE_FANOUT:
            names = self.rng.sample(names, LEAVE_FANOUT)
        for _ in range(LEAVE_COPIES):
            for name in names:
                self._send(name, Kind.LEAVE, first=rumor)

    # -- outputs ---------------------------------------------------------------------------
    def datagrams_to_send(self) -> list[tuple[str, bytes]]:
        """(member name, datagram) pairs to send now."""
        out, self._outbox = self._outbox, []
        return out

    def next_deadline(self) -> float | None:
        if self._started is None or self._left:
            return None
        times = [self._next_probe]
        if self._probe is not None and not self._probe.indirect:
            times.append(self._probe.sent + self._probe_timeout())
        if self._rumors:
            times.append(self._next_gossip)
        times.extend(self._suspects.values())
        if not self._view.settled:
            times.append(self._started + self.timers.settle_after)
        times.extend(self._sync_deadlines())
        self._promised = min(times)
        return self._promised

    @property
    def view(self) -> View:
        return self._view

    def status(self, now: float) -> dict[str, object]:
        """Plain data: each member's state as known here."""
        peers: dict[str, object] = {}
        for name, m in sorted(self.members.items()):
            peers[name] = {
                "state": "unknown" if m.state is None else m.state.name.lower(),
                "incarnation": m.incarnation,
                "verified": m.verified,
                "serving_version": m.serving_version,
                "serving": sorted(m.serving) if m.state in (State.ALIVE, State.SUSPECT) else [],
            }
        return {
            "node": self.node,
            "incarnation": self.incarnation,
            "alive": sorted(self._view.alive),
            "quorum": self._view.quorum,
            "settled": self._view.settled,
            "serving": sorted(self._serving),
            "serving_version": self._serving_version,
            "peers": peers,
        }

    # -- what arrives ----------------------------------------------------------------------
    def _handle(self, member: Member, d: Datagram, now: float) -> None:
        kind = d.kind
        if kind == Kind.PING:
            self._send(d.sender, Kind.ACK, token=d.token)
        elif kind == Kind.CHALLENGE:
            self._send(d.sender, Kind.RESPONSE, token=d.token, rumors=False)
        elif kind == Kind.ACK:
            pending = self._pending.get(d.token)
            if pending is None:
                return
            if pending.purpose == "probe":
                pending.acked = True
            elif pending.purpose == "relay" and not pending.acked:
                pending.acked = True
                self._send(pending.reply_to, Kind.ACK, token=pending.reply_token)
        elif kind == Kind.PING_REQ:
            if d.target in self.members and d.target != d.sender:
                token = self._nonce("relay", d.target, now, self.timers.probe_interval)
                relay = self._pending[token]
                relay.reply_to, relay.reply_token = d.sender, d.token
                self._send(d.target, Kind.PING, token=token)
        elif kind == Kind.LEAVE:
            pass  # the LEFT rumor it carries did the work
        else:
            self._handle_sync(member, d, now)

    # -- sending ---------------------------------------------------------------------------
    def _nonce(self, purpose: str, peer: str, now: float, lifetime: float | None = None) -> int:
        token = self.rng.getrandbits(64) or 1
        if lifetime is None:
            lifetime = ANSWER_WINDOW * self.timers.request_timeout
        expires = now + lifetime
        self._pending[token] = _Pending(purpose, frozenset({peer}), expires)
        return token

    def _send(
        self,
        to: str,
        kind: Kind,
        *,
        token: int = 0,
        rumors: bool = True,
        first: Rumor | None = None,
        **body: object,
    ) -> None:
        self._sequence += 1
        head = Datagram(kind, self.node, self.boot, self._sequence, self.incarnation, token,
                        serving_version=self._serving_version, **body)  # type: ignore[arg-type]
        data = encode(head, self.config.key, to)
        if rumors or first is not None:
            budget = MTU_PAYLOAD - len(data)
            notice = first
            member = self.members.get(to)
            if notice is None and member is not None and member.state in (
                State.SUSPECT, State.DEAD
            ):
                notice = member.rumor()
            taken = self._rumors.take(budget, notice) if rumors else (first,)
            if taken and taken[0] is not None:
                data = encode(_with_rumors(head, taken), self.config.key, to)  # type: ignore[arg-type]
        self._outbox.append((to, data))


def _with_rumors(head: Datagram, rumors: tuple[Rumor, ...]) -> Datagram:
    return Datagram(
        head.kind, head.sender, head.boot, head.sequence, head.incarnation, head.token, rumors,
        head.serving_version, head.target, head.start, head.total, head.records, head.version,
        head.addresses,
    )


__all__ = ["MAX_SERVING", "Membership", "Received"]
