"""The asyncio driver of :mod:`vipcast.proto.membership`: one UDP socket, a heartbeat to every
peer each interval, expiry at the view's next deadline, and a callback on every view change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from vipcast.proto.membership import Membership, Verdict, View
from vipcast.runtime.l2_metrics import L2Metrics

log = logging.getLogger(__name__)

DEFAULT_PORT = 7946
#: copies of the "leaving" datagram sent on a graceful stop (UDP may drop one)
LEAVING_COPIES = 3


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, agent: MembershipAgent) -> None:
        self._agent = agent

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._agent.received(data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP unreachable from a dead peer
        log.debug("membership: %s", exc)


class MembershipAgent:
    def __init__(
        self,
        membership: Membership,
        peers: Mapping[str, tuple[str, int]],
        bind: tuple[str, int],
        on_change: Callable[[View], None],
        metrics: L2Metrics,
    ) -> None:
        self.membership = membership
        self._peers = dict(peers)
        self._bind = bind
        self._on_change = on_change
        self._metrics = metrics
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=self._bind
        )
        self.membership.start(loop.time())
        self._task = loop.create_task(self._run(), name="l2-membership")

    @property
    def running(self) -> bool:
        return self._transport is not None

    def send_now(self) -> None:
        """An extra heartbeat at once (this node's serving set changed)."""
        if self._transport is not None:
            self._send_all(self.membership.heartbeat())

    def received(self, data: bytes) -> None:
        result = self.membership.receive(data, asyncio.get_running_loop().time())
        self._metrics.heartbeats.labels(result.verdict.value).inc()
        if result.verdict not in (Verdict.ACCEPTED, Verdict.SELF):
            log.info("membership: refused datagram (%s, %s)", result.verdict.value, result.node)
        if result.changed:
            self._changed()
        self._wake.set()  # the next expiry deadline may have moved

    def _changed(self) -> None:
        view = self.membership.view
        log.info("membership: alive=%s quorum=%s", sorted(view.alive), view.quorum)
        self._on_change(view)

    def _send_all(self, datagram: bytes) -> None:
        assert self._transport is not None
        for host, port in self._peers.values():
            try:
                self._transport.sendto(datagram, (host, port))
            except OSError as exc:
                log.debug("membership: send to %s failed: %s", host, exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.membership.config.interval
        next_heartbeat = loop.time()
        while True:
            now = loop.time()
            if now >= next_heartbeat:
                self._send_all(self.membership.heartbeat())
                next_heartbeat = max(next_heartbeat + interval, now)
            settled = self.membership.view.settled
            if self.membership.expire(now):
                self._changed()
                if self.membership.view.settled and not settled:
                    # the start-up wait is over: declare what we serve now, not an interval later
                    self._send_all(self.membership.heartbeat())
                    next_heartbeat = now + interval
            deadline = min(next_heartbeat, self.membership.next_deadline() or next_heartbeat)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - loop.time()))

    async def stop(self, *, graceful: bool) -> None:
        """Stop heartbeats; if ``graceful``, tell the peers first that we are leaving."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._transport is not None:
            if graceful:
                for _ in range(LEAVING_COPIES):
                    self._send_all(self.membership.leaving())
            self._transport.close()
            self._transport = None
