"""The asyncio driver of :mod:`vipcast.proto.membership`: one UDP socket, the protocol's timers
on the event loop's clock, and a callback on every view change.

Refused datagrams (bad MAC, replay, malformed, strangers) are counted by verdict
(:meth:`MembershipAgent.counters`, exported by :mod:`vipcast.obs.membership_metrics` as
``vipcast_membership_datagrams_received``) and logged at most once per :data:`LOG_EVERY`
seconds per verdict, with the number suppressed since, so a flood cannot flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from vipcast.proto.membership import Membership, Verdict, View
from vipcast.runtime.clock import Clock, LoopClock, Timer

log = logging.getLogger(__name__)

DEFAULT_PORT = 7946
#: seconds between two log lines about refused datagrams of one verdict
LOG_EVERY = 10.0
_QUIET = (Verdict.ACCEPTED, Verdict.SELF, Verdict.CHALLENGED, Verdict.STALE)


def new_boot() -> int:
    """A random non-zero 64-bit boot nonce (never a clock: see docs/membership.md)."""
    return secrets.randbits(64) | 1


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, agent: MembershipAgent) -> None:
        self._agent = agent

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._agent.received(data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP unreachable from a dead peer
        log.debug("membership: %s", exc)


def _report_crash(task: asyncio.Task[None]) -> None:
    """The timer loop ended by an exception (a bug): say so loudly. Without the loop the node
    still answers (so nobody declares it dead) but sends no gossip, pulls or probes of its own."""
    if not task.cancelled() and task.exception() is not None:
        log.error("membership: the timer loop stopped", exc_info=task.exception())


class MembershipAgent:
    def __init__(
        self,
        membership: Membership,
        peers: Mapping[str, tuple[str, int]],
        bind: tuple[str, int],
        on_change: Callable[[View], None],
        clock: Clock | None = None,
    ) -> None:
        self.membership = membership
        self._peers = dict(peers)
        self._bind = bind
        self._on_change = on_change
        self._received: Counter[str] = Counter()
        self._sent = 0
        self._sent_bytes = 0
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._logged: dict[Verdict, float] = {}
        #: the last view handed to ``on_change``
        self._reported: View | None = None
        self._suppressed: dict[Verdict, int] = {}

    def now(self) -> float:
        """The protocol's time (the clock's)."""
        return self._clock.now()

    _now = now

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=self._bind
        )
        self.membership.start(self._now())
        self._flush()
        self._task = loop.create_task(self._run(), name="membership")
        self._task.add_done_callback(_report_crash)

    def counters(self) -> dict[str, object]:
        """Plain counters for the metrics collector."""
        view = self.membership.view
        return {
            "received": dict(self._received),
            "sent": self._sent,
            "sent_bytes": self._sent_bytes,
            "alive": len(view.alive),
            "dead": len(view.dead),
            "quorum": 1 if view.quorum else 0,
        }

    @property
    def running(self) -> bool:
        return self._transport is not None

    def set_peers(self, peers: Mapping[str, tuple[str, int]]) -> None:
        """The members changed (a node joined or left the cluster): no restart needed."""
        self._peers = dict(peers)
        self.membership.set_members({self.membership.node, *peers}, self._now())
        self._report()
        self._wake.set()

    def send_now(self) -> None:
        """This node's serving set changed: send what the protocol queued at once."""
        if self._transport is not None:
            self.membership.tick(self._now())
            self._report()
            self._flush()
            self._wake.set()

    def received(self, data: bytes) -> None:
        result = self.membership.receive(data, self._now())
        self._received[result.verdict.value] += 1
        if result.verdict not in _QUIET:
            self._log_refused(result.verdict, result.node)
        self._flush()
        self._report()
        self._wake.set()  # the next deadline may have moved

    def _log_refused(self, verdict: Verdict, node: str | None) -> None:
        now = self._now()
        if now < self._logged.get(verdict, -LOG_EVERY) + LOG_EVERY:
            self._suppressed[verdict] = self._suppressed.get(verdict, 0) + 1
            return
        self._logged[verdict] = now
        log.warning(
            "membership: refused a datagram (%s, sender %s); %d more refused for this reason "
            "since the last report",
            verdict.value, node, self._suppressed.pop(verdict, 0),
        )

    def _report(self) -> None:
        """Hand the view to ``on_change`` if it differs from the last one handed over (compared
        by value, so no change is lost whichever call computed it)."""
        view, last = self.membership.view, self._reported
        if view is last or (
            last is not None and view == last and view.serving == last.serving
        ):
            return
        self._changed()

    def _changed(self) -> None:
        view = self.membership.view
        self._reported = view
        log.info("membership: alive=%d quorum=%s", len(view.alive), view.quorum)
        log.debug("membership: alive=%s", sorted(view.alive))
        self._on_change(view)

    def _flush(self) -> None:
        if self._transport is None:
            return
        for name, datagram in self.membership.datagrams_to_send():
            address = self._peers.get(name)
            if address is None:
                continue
            self._sent += 1
            self._sent_bytes += len(datagram)
            try:
                self._transport.sendto(datagram, address)
            except OSError as exc:
                log.debug("membership: send to %s failed: %s", name, exc)

    async def _run(self) -> None:
        """Run the protocol's timers: tick, send, sleep until its next deadline on the clock
        (or until a datagram or a change moves it)."""
        timer: Timer | None = None
        try:
            while True:
                self.membership.tick(self._now())
                self._report()
                self._flush()
                deadline = self.membership.next_deadline()
                self._wake.clear()
                if timer is not None:
                    timer.cancel()
                timer = None if deadline is None else self._clock.call_at(deadline,
                                                                          self._wake.set)
                await self._wake.wait()
        finally:
            if timer is not None:
                timer.cancel()

    async def stop(self, *, graceful: bool) -> None:
        """Stop; if ``graceful``, tell the peers first that we are leaving."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._transport is not None:
            if graceful:
                self.membership.leave(self._now())
                self._flush()
            self._transport.close()
            self._transport = None

