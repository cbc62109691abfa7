"""Failure detection of the membership protocol: SWIM's probe round (direct ping, then
``indirect_checks`` others asked to ping, then a suspicion), suspicions that run out into
deaths (Lifeguard's dynamic suspicion: shrinking as others confirm), Lifeguard's local health
(a member that sees its own slowness probes less eagerly and, after a stall, reads before it
accuses) and the buddy notice (a suspected member hears it from us at once)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vipcast.proto.membership.codec import Kind, State
from vipcast.proto.membership.host import MemberHost
from vipcast.proto.membership.members import Member, RumorQueue


@dataclass(slots=True)
class _Pending:
    """A nonce we sent: who may echo it, what for, until when."""

    purpose: str
    peers: frozenset[str]
    expires: float
    #: probe: the target; relay: the requester and its nonce
    target: str = ""
    reply_to: str = ""
    reply_token: int = 0
    acked: bool = False


@dataclass(slots=True)
class _Probe:
    target: str
    token: int
    sent: float
    indirect: bool = False


class DetectionMixin(MemberHost):
    """Mixed into :class:`~vipcast.proto.membership.protocol.Membership`."""

    if TYPE_CHECKING:
        health: int
        _pending: dict[int, _Pending]
        _probe: _Probe | None
        _next_probe: float
        _order: list[str]
        _name_list: list[str]
        _suspects: dict[str, float]
        _accusers: dict[str, tuple[float, int, set[str]]]
        _rumors: RumorQueue
        _promised: float | None
        _graced: bool

        def _transmits(self) -> int: ...
        def _refresh(self, now: float) -> bool: ...

    # -- stalls (Lifeguard) ----------------------------------------------------------------
    def _stalled(self, now: float) -> bool:
        """This tick comes more than a probe timeout after the deadline we gave: this node
        stalled (a GC pause, a loaded machine, a long synchronous step). The acks and
        refutations that arrived meanwhile may still sit unread in the socket. Once per stall."""
        promised, self._promised = self._promised, None
        if promised is None or now - promised <= self._probe_timeout() or self._graced:
            self._graced = False
            return False
        self._graced = True
        self._health_change(+1)
        return True

    def _grace(self, now: float) -> bool:
        """Lifeguard's point that a slow member must not accuse others: after a stall, nothing
        is concluded (no probe judged, no suspicion expired) until the datagrams that arrived
        meanwhile were read; the probe under way waits for its ack again and the suspicions
        due run out a probe timeout later. The next tick proceeds whatever it finds."""
        grace = now + self._probe_timeout()
        if self._probe is not None:
            self._probe.sent = now
            self._probe.indirect = False
            self._next_probe = max(self._next_probe, now + self._probe_interval())
        for name, until in self._suspects.items():
            if until < grace:
                self._suspects[name] = grace
        return self._refresh(now)

    # -- probing ---------------------------------------------------------------------------
    def _probe_step(self, now: float) -> None:
        probe = self._probe
        timed_out = probe is not None and now >= probe.sent + self._probe_timeout()
        if probe is not None and timed_out and not probe.indirect:
            probe.indirect = True
            # None: the nonce expired before this tick ran (this node stalled for longer than
            # the probe lives); the probe is abandoned, not concluded (see _conclude)
            pending = self._pending.get(probe.token)
            if pending is not None and not pending.acked:
                target = self.members.get(probe.target)
                if target is not None and target.state in (State.ALIVE, State.SUSPECT):
                    relays = self._pick(self.timers.indirect_checks, exclude=(probe.target,))
                    pending.peers = pending.peers | frozenset(relays)
                    for name in relays:
                        self._send(name, Kind.PING_REQ, token=probe.token, target=probe.target)
        if now < self._next_probe:
            return
        if probe is not None:
            self._conclude(probe, now)
        self._probe = None
        self._next_probe = max(self._next_probe + self._probe_interval(), now)
        target_name = self._next_target()
        if target_name is None:
            return
        token = self._nonce("probe", target_name, now, 2 * self._probe_interval())
        self._pending[token].target = target_name
        self._probe = _Probe(target_name, token, now)
        self._send(target_name, Kind.PING, token=token)

    def _conclude(self, probe: _Probe, now: float) -> None:
        """No ack by the end of the period: suspect the target. Not when the probe's nonce
        expired unconcluded: this node itself stalled past the probe's lifetime (a GC pause, a
        loaded machine), so the silence is no evidence against the target (Lifeguard's point:
        a slow prober must not accuse others)."""
        member = self.members.get(probe.target)
        pending = self._pending.get(probe.token)
        if pending is not None and pending.acked:
            self._health_change(-1)
        if member is None or pending is None or pending.acked:
            return
        if member.state == State.SUSPECT:
            self._confirm(member, self.node, now)
            return
        if member.state != State.ALIVE:
            return
        member.state, self._dirty = State.SUSPECT, True
        self._suspect(member, self.node, now)
        rumor = member.rumor()
        self._rumors.push(rumor, self._transmits())
        self._tell(member, now)

    def _next_target(self) -> str | None:
        for _ in range(2):
            while self._order:
                name = self._order.pop()
                member = self.members.get(name)
                if member is not None and member.state != State.LEFT:
                    return name
            self._order = sorted(self.members)
            self.rng.shuffle(self._order)
        return None

    def _probe_out_of_turn(self, member: Member, now: float) -> None:
        if now < member.challenged_at + self.timers.request_timeout:
            return
        member.challenged_at = now
        token = self._nonce("probe", member.name, now, self.timers.request_timeout)
        self._send(member.name, Kind.PING, token=token, rumors=False)

    def _pick(self, count: int, exclude: Iterable[str]) -> list[str]:
        """Up to ``count`` distinct random members alive and verified here (sampled with a
        bounded number of tries, not by scanning the table)."""
        if not self.members or count <= 0:
            return []
        skip = set(exclude)
        names = self._names()
        out: list[str] = []
        for _ in range(4 * count + 8):
            name = names[self.rng.randrange(len(names))]
            member = self.members[name]
            if name in skip or member.state != State.ALIVE or not member.verified:
                continue
            out.append(name)
            skip.add(name)
            if len(out) == count:
                break
        return out

    def _names(self) -> list[str]:
        if len(self._name_list) != len(self.members):
            self._name_list = sorted(self.members)
        return self._name_list

    # -- suspicion and local health ---------------------------------------------------------
    def _suspicion(self) -> float:
        return self.timers.suspicion_timeout(len(self.members) + 1)

    def _suspect(self, member: Member, accuser: str, now: float) -> None:
        """A suspicion of ``member`` begins here (ours, or heard from ``accuser``)."""
        self._accusers[member.name] = (now, member.incarnation, {accuser})
        self._suspects[member.name] = now + self.timers.suspicion_after(len(self.members) + 1, 0)

    def _confirm(self, member: Member, accuser: str, now: float) -> None:
        """Another member suspects the same incarnation: the suspicion shrinks (Lifeguard)."""
        entry = self._accusers.get(member.name)
        if entry is None or entry[1] != member.incarnation or member.name not in self._suspects:
            return
        began, _, accusers = entry
        if accuser in accusers:
            return
        accusers.add(accuser)
        after = self.timers.suspicion_after(len(self.members) + 1, len(accusers) - 1)
        self._suspects[member.name] = min(self._suspects[member.name], began + after)

    def _health_change(self, delta: int) -> None:
        self.health = min(max(self.health + delta, 0), max(self.timers.awareness_max - 1, 0))

    def _probe_timeout(self) -> float:
        return self.timers.probe_timeout * (self.health + 1)

    def _probe_interval(self) -> float:
        return self.timers.probe_interval * (self.health + 1)

    # -- the buddy notice ------------------------------------------------------------------
    def _tell(self, member: Member, now: float) -> None:
        """Lifeguard's buddy notice: a member we suspect (or think dead) hears it from us."""
        if now < member.told_at + self.timers.probe_interval:
            return
        member.told_at = now
        self._send(member.name, Kind.GOSSIP, first=member.rumor())
