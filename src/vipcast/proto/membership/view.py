"""What the membership protocol tells its users: the :class:`View` (who is alive, who left, who
is dead, the quorum, and what each alive member says it can serve), computed from the member
table whenever it changed.

One agent holds one view. The simulator holds one per member, each naming every member: at
5,000 members that is 25 M entries, so the serving sets are a read-only mapping over the alive
set and the members that serve something (:class:`ServingMap`) rather than a dict with an entry
per member, and members run in one process may share their equal alive sets
(:class:`Interner`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vipcast.proto.membership.codec import State
from vipcast.proto.membership.host import MemberHost

_NOTHING: frozenset[str] = frozenset()


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
    #: members known dead: seen alive in this boot, then suspected and not refuted in time.
    #: Never a member not heard from yet (no speaker there, or not started), nor one that
    #: left (a graceful stop is a restart of the agent, not a dead machine)
    dead: frozenset[str] = frozenset()
    #: this member's own incarnation: it rises each time the member refutes a suspicion or a
    #: death of itself, i.e. each time other members may have counted it out and given what
    #: it owned to another node (an L2 owner then announces its VIPs again, docs/l2.md)
    incarnation: int = 0


class ServingMap(Mapping[str, frozenset[str]]):
    """Per alive member, the VIPs it says it can serve (an empty set for one that serves
    nothing): equal to that dict, without holding an entry per member."""

    __slots__ = ("_alive", "_sets")

    def __init__(self, alive: frozenset[str], sets: Mapping[str, frozenset[str]]) -> None:
        self._alive = alive
        #: the non-empty sets of alive members only (so that equal maps hold equal dicts)
        self._sets = {name: ips for name, ips in sets.items() if ips and name in alive}

    def __getitem__(self, name: str) -> frozenset[str]:
        if name not in self._alive:
            raise KeyError(name)
        return self._sets.get(name, _NOTHING)

    def __iter__(self) -> Iterator[str]:
        return iter(self._alive)

    def __len__(self) -> int:
        return len(self._alive)

    def __contains__(self, name: object) -> bool:
        return name in self._alive

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ServingMap):
            return self._alive == other._alive and self._sets == other._sets
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ServingMap({dict(sorted(self.items()))!r})"


class Interner:
    """Holds one copy of equal frozensets: members that run in one process (the simulator)
    share the alive set their views have in common instead of each holding its own. Keeps the
    ``size`` values last asked for; a value not among them is kept as it is."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._values: dict[frozenset[str], frozenset[str]] = {}

    def __call__(self, value: frozenset[str]) -> frozenset[str]:
        held = self._values.pop(value, None)
        if held is None:
            held = value
            if len(self._values) >= self._size:
                del self._values[next(iter(self._values))]
        self._values[held] = held
        return held


class ViewMixin(MemberHost):
    """Mixed into :class:`~vipcast.proto.membership.protocol.Membership`."""

    if TYPE_CHECKING:
        _view: View
        _synced: bool
        _started: float | None
        _wanting: set[str]
        _declared: frozenset[str]
        _intern: Interner | None
        incarnation: int

        def _declare(self) -> None: ...

    def _compute_view(self, now: float) -> View:
        # one pass over the table, comparing states by identity (a simulated member runs this
        # for a table of 5,000 after every change it hears of)
        alive, left, dead = [self.node], [], []
        serving = {self.node: self._declared} if self._declared else {}
        known = True
        live, suspect, gone, failed = State.ALIVE, State.SUSPECT, State.LEFT, State.DEAD
        for name, m in self.members.items():
            state = m.state
            if state is live or state is suspect:
                alive.append(name)
                if m.serving:
                    serving[name] = m.serving
            elif state is None:
                known = False
            elif state is gone:
                left.append(name)
            elif state is failed:
                dead.append(name)
        started = self._started is not None
        if known:
            self._synced = True
        # settled early only once every member's state and serving set is known here
        settled = not self.members or self._view.settled or (started and (
            (known and not self._wanting)
            or now >= (self._started or 0.0) + self.timers.settle_after
        ))
        voters = len(self.members) + 1 - len(left)
        quorum = settled and 2 * len(alive) > voters
        everyone = frozenset(alive)
        if self._intern is not None:
            everyone = self._intern(everyone)
        return View(everyone, frozenset(left), quorum, settled, ServingMap(everyone, serving),
                    frozenset(dead), self.incarnation)

    def _refresh(self, now: float) -> bool:
        if not self._dirty and (self._view.settled or self._started is None or (
            now < self._started + self.timers.settle_after
        )):
            return False
        self._dirty = False
        view = self._compute_view(now)
        if view.settled and not self._view.settled:
            self._view = view
            self._declare()
            view = self._compute_view(now)
        changed = view != self._view or view.serving != self._view.serving
        self._view = view
        return changed
