"""The sockets side of a BGP peer: a TCP connection whose bytes and loss go to whoever owns it,
and a link (one sans-IO session and the connection it runs on)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from vipcast.proto.bgp import Session


class Connection(asyncio.Protocol):
    """A TCP connection whose bytes and loss go to whoever owns it (set by :meth:`bind`)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._on_lost: Callable[[], None] | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def bind(self, on_data: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        self._on_data, self._on_lost = on_data, on_lost

    def unbind(self) -> None:
        self._on_data = self._on_lost = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self._on_lost is not None:
            self._on_lost()

    def close(self) -> None:
        self.unbind()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.unbind()
        if self.transport is not None:
            self.transport.abort()


@dataclass(eq=False)
class Link:
    """One session and the TCP connection it runs on."""

    session: Session
    outbound: bool = True
    connection: Connection | None = None
    connect_task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None


def drain_events(session: Session) -> None:
    """Discard the events a session queued (a link whose requests are not for us)."""
    while session.next_event() is not None:
        pass
