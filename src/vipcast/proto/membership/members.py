"""The member table's values: what one node knows of another, SWIM's precedence between
rumors, and the queue of rumors still to piggyback (values in, values out)."""

from __future__ import annotations

from dataclasses import dataclass

from vipcast.proto.membership.codec import Datagram, Rumor, State
from vipcast.proto.membership.replay import UNPROVEN, slide

#: boots of a member remembered as superseded (their rumors are ignored)
RETIRED_BOOTS = 4


@dataclass(slots=True)
class _Rare:
    """A member's fields that are rarely set (a restart seen, a pull under way, a rate limit
    hit): kept apart so that the common record of a quiet member stays small (one table holds
    a record per member, on every member: 25 M records in a 5,000-member simulation)."""

    retired: tuple[int, ...] = ()
    pages: dict[int, dict[int, tuple[str, ...]]] | None = None
    held: Datagram | None = None
    challenged_at: float = -1e9
    pulled_at: float = -1e9
    told_at: float = -1e9


_QUIET = _Rare()


@dataclass(slots=True)
class Member:
    name: str
    #: the member's boot nonce as known here; 0: never heard of
    boot: int = 0
    incarnation: int = 0
    state: State | None = None
    #: the replay window of the known boot (:mod:`~vipcast.proto.membership.replay`), folded
    #: into the record: the highest sequence accepted, UNPROVEN until the boot was proven fresh
    #: here (an answer to our nonce; only then its datagrams count), and the bitmap below it
    highest: int = UNPROVEN
    seen: int = 0
    #: the serving set held here and its version; the highest version heard of
    serving: frozenset[str] = frozenset()
    serving_version: int = 0
    wanted_version: int = 0
    #: the rarely set fields below, created on first write
    rare: _Rare | None = None

    @property
    def retired(self) -> tuple[int, ...]:
        """Boots of this member seen superseded (their rumors are ignored)."""
        return (self.rare or _QUIET).retired

    @retired.setter
    def retired(self, value: tuple[int, ...]) -> None:
        if self.rare is None:
            if value == _QUIET.retired:
                return
            self.rare = _Rare()
        self.rare.retired = value

    @property
    def pages(self) -> dict[int, dict[int, tuple[str, ...]]] | None:
        """A SERVING answer being assembled: version -> addresses so far."""
        return (self.rare or _QUIET).pages

    @pages.setter
    def pages(self, value: dict[int, dict[int, tuple[str, ...]]] | None) -> None:
        if self.rare is None:
            if value == _QUIET.pages:
                return
            self.rare = _Rare()
        self.rare.pages = value

    @property
    def held(self) -> Datagram | None:
        """The latest datagram of a boot not yet proven fresh, processed once it is."""
        return (self.rare or _QUIET).held

    @held.setter
    def held(self, value: Datagram | None) -> None:
        if self.rare is None:
            if value == _QUIET.held:
                return
            self.rare = _Rare()
        self.rare.held = value

    @property
    def challenged_at(self) -> float:
        """When we last challenged this member."""
        return (self.rare or _QUIET).challenged_at

    @challenged_at.setter
    def challenged_at(self, value: float) -> None:
        if self.rare is None:
            if value == _QUIET.challenged_at:
                return
            self.rare = _Rare()
        self.rare.challenged_at = value

    @property
    def pulled_at(self) -> float:
        """When we last pulled this member's serving set."""
        return (self.rare or _QUIET).pulled_at

    @pulled_at.setter
    def pulled_at(self, value: float) -> None:
        if self.rare is None:
            if value == _QUIET.pulled_at:
                return
            self.rare = _Rare()
        self.rare.pulled_at = value

    @property
    def told_at(self) -> float:
        """When we last told this member about itself."""
        return (self.rare or _QUIET).told_at

    @told_at.setter
    def told_at(self, value: float) -> None:
        if self.rare is None:
            if value == _QUIET.told_at:
                return
            self.rare = _Rare()
        self.rare.told_at = value

    @property
    def verified(self) -> bool:
        return self.highest != UNPROVEN

    def prove(self) -> None:
        """The known boot was proven fresh: its datagrams count from now on (a new window)."""
        self.highest, self.seen = 0, 0

    def accept(self, boot: int, sequence: int) -> bool:
        """True (and remembered) if ``sequence`` of ``boot`` is new in the proven boot's window;
        False if a replay, too old, of another boot, or the boot is not proven."""
        if boot != self.boot:
            return False
        window = slide(self.highest, self.seen, sequence)
        if window is None:
            return False
        self.highest, self.seen = window
        return True

    def adopt_boot(self, boot: int, incarnation: int) -> None:
        """A boot proven fresh. Another boot than known: the member restarted (or we did), and
        its old state is gone."""
        if boot == self.boot:
            self.prove()
            if self.state is None:
                self.incarnation, self.state = incarnation, State.ALIVE
            return
        if self.boot and self.boot != boot:
            self.retired = (*self.retired, self.boot)[-RETIRED_BOOTS:]
        self.boot, self.incarnation, self.state = boot, incarnation, State.ALIVE
        self.prove()
        self.serving, self.serving_version, self.wanted_version = frozenset(), 0, 0
        self.pages = None

    def rumor(self, delta: tuple[frozenset[str], frozenset[str]] | None = None) -> Rumor:
        assert self.state is not None
        return Rumor(
            self.name, self.boot, self.incarnation, self.state, self.wanted_version, delta
        )


def overrides(rumor: Rumor, member: Member) -> bool:
    """SWIM's precedence for a rumor about ``member`` of the boot it knows (the caller handles
    another boot): alive needs a higher incarnation; suspect beats alive of the same one; dead
    beats alive and suspect of the same one; left (a graceful stop) beats everything of its
    boot; nothing beats left."""
    state, inc = member.state, member.incarnation
    if state is None:
        return True
    if state == State.LEFT:
        return False
    if rumor.state == State.ALIVE:
        return rumor.incarnation > inc
    if rumor.state == State.SUSPECT:
        return (state == State.ALIVE and rumor.incarnation >= inc) or rumor.incarnation > inc
    if rumor.state == State.DEAD:
        return (state != State.DEAD and rumor.incarnation >= inc) or rumor.incarnation > inc
    return rumor.incarnation >= inc  # LEFT


@dataclass(slots=True)
class _Queued:
    rumor: Rumor
    remaining: int
    order: int


class RumorQueue:
    """The latest rumor about each member, each sent a bounded number of times; the least sent
    go first (the newest news spreads fastest)."""

    def __init__(self) -> None:
        self._items: dict[str, _Queued] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, rumor: Rumor, transmits: int) -> None:
        self._order += 1
        self._items[rumor.node] = _Queued(rumor, transmits, self._order)

    def latest(self, node: str) -> Rumor | None:
        item = self._items.get(node)
        return None if item is None else item.rumor

    def discard(self, node: str) -> None:
        self._items.pop(node, None)

    def take(self, budget: int, first: Rumor | None = None) -> tuple[Rumor, ...]:
        """Rumors whose encoded size fits ``budget`` bytes (``first`` before the others, not
        counted against its retransmissions); each taken one has one transmission fewer."""
        out: list[Rumor] = []
        if first is not None and first.size() <= budget:
            out.append(first)
            budget -= first.size()
        ranked = sorted(self._items.values(), key=lambda q: (-q.remaining, -q.order))
        for item in ranked:
            if len(out) >= 255:
                break
            if first is not None and item.rumor.node == first.node:
                continue
            size = item.rumor.size()
            if size > budget:
                continue
            out.append(item.rumor)
            budget -= size
            item.remaining -= 1
            if item.remaining <= 0:
                del self._items[item.rumor.node]
        return tuple(out)
