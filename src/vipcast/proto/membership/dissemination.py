"""Dissemination of the membership protocol: the rumors heard applied to the member table
(precedence, Lifeguard's suspicion confirmations, serving-set deltas, pulls for what a delta
cannot bring), this node's refutation of a suspicion of itself, and this node's own record and
serving set published as rumors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vipcast.proto.membership.codec import MAX_DELTA, Kind, Rumor, State
from vipcast.proto.membership.host import MemberHost
from vipcast.proto.membership.members import Member, RumorQueue, overrides
from vipcast.proto.membership.replay import UNPROVEN

if TYPE_CHECKING:
    from vipcast.proto.membership.view import View


class DisseminationMixin(MemberHost):
    """Mixed into :class:`~vipcast.proto.membership.protocol.Membership`."""

    if TYPE_CHECKING:
        boot: int
        incarnation: int
        _left: bool
        _rumors: RumorQueue
        _suspects: dict[str, float]
        _accusers: dict[str, tuple[float, int, set[str]]]
        _wanting: set[str]
        _pull_check_at: float | None
        _serving: frozenset[str]
        _declared: frozenset[str]
        _serving_version: int
        _view: View

        def _probe_out_of_turn(self, member: Member, now: float) -> None: ...
        def _confirm(self, member: Member, accuser: str, now: float) -> None: ...
        def _suspect(self, member: Member, accuser: str, now: float) -> None: ...
        def _health_change(self, delta: int) -> None: ...

    # -- what others say -------------------------------------------------------------------
    def _apply(
        self, rumor: Rumor, now: float, source: str | None = None, *, spread: bool = True
    ) -> None:
        if rumor.node == self.node:
            self._about_me(rumor, source, now)
            return
        member = self.members.get(rumor.node)
        if member is None:
            return
        if member.boot == 0:
            # a boot first heard of in a rumor: not proven fresh here
            member.boot, member.highest = rumor.boot, UNPROVEN
        elif rumor.boot != member.boot:
            if rumor.boot not in member.retired and rumor.state == State.ALIVE:
                # another boot of a member we know: learn the truth from the member itself
                self._probe_out_of_turn(member, now)
            return
        news = False
        if (
            source is not None
            and rumor.state == State.SUSPECT
            and member.state == State.SUSPECT
            and rumor.incarnation == member.incarnation
        ):
            self._confirm(member, source, now)
        if overrides(rumor, member):
            member.incarnation, member.state = rumor.incarnation, rumor.state
            if rumor.state == State.SUSPECT:
                self._suspect(member, source or "", now)
            else:
                self._suspects.pop(member.name, None)
                self._accusers.pop(member.name, None)
            if rumor.state == State.LEFT:
                # a graceful stop ends the boot: the next one starts its sets afresh. A dead
                # member keeps its set and version (they count only while it is alive): if it
                # was falsely declared dead, its refutation brings it back with the set it
                # serves, and the node that took its VIPs meanwhile gives them back on that
                # datagram, not after a pull (two owners until then); a set it changed
                # meanwhile has a higher version and is pulled as usual
                member.serving, member.pages = frozenset(), None
                member.serving_version = member.wanted_version = 0
                self._wanting.discard(member.name)
            news = self._dirty = True
        if rumor.serving_version > member.wanted_version:
            member.wanted_version = rumor.serving_version
            if rumor.delta is not None and member.serving_version == rumor.serving_version - 1:
                added, removed = rumor.delta
                member.serving = (member.serving - removed) | added
                member.serving_version = rumor.serving_version
            else:
                self._wanting.add(member.name)
                self._pull_check_at = now
            news = self._dirty = True
        if news and spread:
            delta = rumor.delta if member.serving_version == rumor.serving_version else None
            self._rumors.push(member.rumor(delta), self._transmits())

    def _about_me(self, rumor: Rumor, source: str | None, now: float) -> None:
        if rumor.boot != self.boot or self._left:
            return
        if rumor.state != State.ALIVE and rumor.incarnation >= self.incarnation:
            # suspected: a sign that this node may be the slow one (Lifeguard)
            self._health_change(+1)
            self.incarnation = rumor.incarnation + 1
            self._dirty = True  # the view carries the incarnation (its users react to it)
            mine = self._self_rumor()
            self._rumors.push(mine, self._transmits())
            # the refutation goes at once, in one hop, to the member that told us and to up to
            # refute_fanout - 1 others (all of a small cluster): each of them may have a
            # suspicion running out, and gossip alone reached some only after theirs had
            fanout = self.timers.refute_fanout - 1
            names = [n for n, m in self.members.items()
                     if n != source and m.state in (State.ALIVE, State.SUSPECT)] if fanout else []
            if len(names) > fanout:
                names = self.rng.sample(names, fanout)
            for name in ([source] if source is not None else []) + names:
                self._send(name, Kind.GOSSIP, first=mine)
    # -- this node's own record --------------------------------------------------------------
    def _self_rumor(self, delta: tuple[frozenset[str], frozenset[str]] | None = None) -> Rumor:
        state = State.LEFT if self._left else State.ALIVE
        return Rumor(self.node, self.boot, self.incarnation, state, self._serving_version, delta)

    def _declare(self) -> None:
        """Publish the serving set: nothing before the start-up wait is over (this node cannot
        own anything yet, and the current owners must not let go before it can take over)."""
        declared = self._serving if self._view.settled else frozenset()
        if declared == self._declared:
            return
        added, removed = declared - self._declared, self._declared - declared
        self._declared = declared
        self._serving_version += 1
        self._dirty = True
        delta = (added, removed) if len(added) + len(removed) <= MAX_DELTA else None
        self._rumors.push(self._self_rumor(delta), self._transmits())

    def _transmits(self) -> int:
        return self.timers.retransmits(len(self.members) + 1)
