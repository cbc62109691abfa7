"""The member table's values: what one node knows of another, SWIM's precedence between
rumors, and the queue of rumors still to piggyback (values in, values out)."""

from __future__ import annotations

from dataclasses import dataclass

from vipcast.proto.membership.codec import Datagram, Rumor, State
from vipcast.proto.membership.replay import ReplayWindow

#: boots of a member remembered as superseded (their rumors are ignored)
RETIRED_BOOTS = 4


@dataclass(slots=True)
class Member:
    name: str
    #: the member's boot nonce as known here; 0: never heard of
    boot: int = 0
    incarnation: int = 0
    state: State | None = None
    #: the boot was proven fresh here (an answer to our nonce); only then its datagrams count
    window: ReplayWindow | None = None
    retired: tuple[int, ...] = ()
    #: the serving set held here and its version; the highest version heard of
    serving: frozenset[str] = frozenset()
    serving_version: int = 0
    wanted_version: int = 0
    #: a SERVING answer being assembled: version -> addresses so far
    pages: dict[int, dict[int, tuple[str, ...]]] | None = None
    #: the latest datagram of a boot not yet proven fresh, processed once it is
    held: Datagram | None = None
    #: rate limits: when we last challenged, pulled from, or told this member about itself
    challenged_at: float = -1e9
    pulled_at: float = -1e9
    told_at: float = -1e9

    @property
    def verified(self) -> bool:
        return self.window is not None and self.window.boot == self.boot

    def adopt_boot(self, boot: int, incarnation: int) -> None:
        """A boot proven fresh. Another boot than known: the member restarted (or we did), and
        its old state is gone."""
        if boot == self.boot:
            self.window = ReplayWindow(boot)
            if self.state is None:
                self.incarnation, self.state = incarnation, State.ALIVE
            return
        if self.boot and self.boot != boot:
            self.retired = (*self.retired, self.boot)[-RETIRED_BOOTS:]
        self.boot, self.incarnation, self.state = boot, incarnation, State.ALIVE
        self.window = ReplayWindow(boot)
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


@dataclass
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
