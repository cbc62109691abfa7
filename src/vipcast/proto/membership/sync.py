"""State transfer of the membership protocol: a newcomer's member table (SYNC) and members'
serving sets (PULL), both paged to one MTU per datagram and both answers echoing the asker's
nonce (so they also prove the answering boot fresh)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vipcast.proto.membership.codec import (
    MTU_PAYLOAD,
    Datagram,
    Kind,
    Rumor,
    State,
    header_size,
)
from vipcast.proto.membership.host import MemberHost
from vipcast.proto.membership.members import Member

#: datagrams answered at once to one SYNC_REQ or PULL (the asker asks on from where they end)
PAGES_PER_ANSWER = 4
#: serving-set pulls under way at once
PULLS_AT_ONCE = 8
#: room for a page's own fields (start, total, count, version)
_PAGE_HEAD = 12


class SyncMixin(MemberHost):
    """Mixed into :class:`~vipcast.proto.membership.protocol.Membership`."""

    if TYPE_CHECKING:
        _declared: frozenset[str]
        _wanting: set[str]
        _serving_version: int

        def _apply(
            self, rumor: Rumor, now: float, source: str | None = None, *, spread: bool = True
        ) -> None: ...
        def _self_rumor(self) -> Rumor: ...

    def _init_sync(self) -> None:
        self._synced = False
        self._sync_at = -1e9
        self._sync_token = 0
        self._sync_next = 0
        self._pull_check_at: float | None = None

    # -- the asking side -------------------------------------------------------------------
    def _start_sync(self, now: float) -> None:
        if not self.members:
            self._synced = True
        if self._synced:
            return
        self._request_sync(0, now)

    def _request_sync(self, start: int, now: float) -> None:
        alive = [n for n, m in self.members.items() if m.state == State.ALIVE]
        peer = self.rng.choice(sorted(alive or self.members))
        self._sync_token = self._nonce("sync", peer, now)
        self._sync_at, self._sync_next = now, start
        self._send(peer, Kind.SYNC_REQ, token=self._sync_token, start=start, rumors=False)

    def _sync_step(self, now: float) -> None:
        if not self._synced and now >= self._sync_at + self.timers.request_timeout:
            self._request_sync(self._sync_next, now)
        pulling = []
        for name in list(self._wanting):
            m = self.members.get(name)
            if m is None or m.wanted_version <= m.serving_version:
                self._wanting.discard(name)
            elif m.state in (State.ALIVE, State.SUSPECT):
                pulling.append(m)
        busy = [m for m in pulling if now < m.pulled_at + self.timers.request_timeout]
        for member in pulling:
            if len(busy) >= PULLS_AT_ONCE:
                break
            if now >= member.pulled_at + self.timers.request_timeout:
                pages = (member.pages or {}).get(member.wanted_version, {})
                self._pull(member, _first_gap(pages), now)
                busy.append(member)
        # look again when the oldest pull under way times out (or is answered)
        self._pull_check_at = (
            min(m.pulled_at for m in busy) + self.timers.request_timeout if busy else None
        )

    def _pull(self, member: Member, start: int, now: float) -> None:
        member.pulled_at = now
        token = self._nonce("pull", member.name, now)
        self._send(member.name, Kind.PULL, token=token, start=start, rumors=False)

    def _sync_deadlines(self) -> list[float]:
        times = []
        if not self._synced:
            times.append(self._sync_at + self.timers.request_timeout)
        if self._pull_check_at is not None and self._wanting:
            times.append(self._pull_check_at)
        return times

    # -- both sides ------------------------------------------------------------------------
    def _handle_sync(self, member: Member, d: Datagram, now: float) -> None:
        if d.kind == Kind.SYNC_REQ:
            self._answer_sync(d.sender, d.token, d.start)
        elif d.kind == Kind.PULL:
            self._answer_pull(d.sender, d.token, d.start)
        elif d.kind == Kind.SYNC and d.token == self._sync_token and not self._synced:
            for record in d.records:
                self._apply(record, now, spread=False)
            end = d.start + len(d.records)
            if end >= d.total:
                self._synced = True
            elif end > self._sync_next:
                self._sync_next = end
                if end % (PAGES_PER_ANSWER * max(1, len(d.records))) == 0 or not d.records:
                    self._request_sync(end, now)
        elif d.kind == Kind.SERVING:
            self._take_page(member, d, now)

    def _answer_sync(self, to: str, token: int, start: int) -> None:
        records = [self._self_rumor()] + [
            m.rumor() for _, m in sorted(self.members.items()) if m.state is not None
        ]
        budget = MTU_PAYLOAD - header_size(self.node) - _PAGE_HEAD
        index = start
        for _ in range(PAGES_PER_ANSWER):
            if index >= len(records) and index > start:
                break
            page: list[Rumor] = []
            room = budget
            while index < len(records) and records[index].size() <= room:
                room -= records[index].size()
                page.append(records[index])
                index += 1
            self._send(to, Kind.SYNC, token=token, start=index - len(page),
                       total=len(records), records=tuple(page), rumors=False)
            if index >= len(records):
                break

    def _answer_pull(self, to: str, token: int, start: int) -> None:
        addresses = sorted(self._declared)
        budget = MTU_PAYLOAD - header_size(self.node) - _PAGE_HEAD
        index = start
        for _ in range(PAGES_PER_ANSWER):
            page: list[str] = []
            room = budget
            while index < len(addresses):
                size = 5 if ":" not in addresses[index] else 17
                if size > room:
                    break
                room -= size
                page.append(addresses[index])
                index += 1
            self._send(to, Kind.SERVING, token=token, start=index - len(page),
                       total=len(addresses), version=self._serving_version,
                       addresses=tuple(page), rumors=False)
            if index >= len(addresses):
                break

    def _take_page(self, member: Member, d: Datagram, now: float) -> None:
        if d.version <= member.serving_version:
            return
        if d.version > member.wanted_version:
            member.wanted_version = d.version
            self._wanting.add(member.name)
        if d.version != member.wanted_version:
            return
        if member.pages is None:
            member.pages = {}
        pages = member.pages.setdefault(d.version, {})
        for old in [v for v in member.pages if v != d.version]:
            del member.pages[old]
        pages[d.start] = d.addresses
        got = sum(len(p) for p in pages.values())
        if got >= d.total:
            member.serving = frozenset(ip for p in pages.values() for ip in p)
            member.serving_version = d.version
            member.pages = None
            self._dirty = True
            self._pull_check_at = now
        elif len(pages) % PAGES_PER_ANSWER == 0:
            self._pull(member, _first_gap(pages), now)


def _first_gap(pages: dict[int, tuple[str, ...]]) -> int:
    """Where the pages received so far (start -> addresses) first miss one."""
    index = 0
    while pages.get(index):
        index += len(pages[index])
    return index
