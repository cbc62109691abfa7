"""The asyncio driver of one BGP peer: sockets and one timer around sans-IO sessions.

One :class:`~vipcast.proto.bgp.Session` per TCP connection (a "link"). The primary link is the
peer's session: it asks for outgoing connections (``ConnectWanted``), restarts on its own and
carries the routes. An incoming connection while the primary is opening becomes a second link
until RFC 4271 §6.8 collision resolution (the core's pure ``collision_winner``) picks one; the
loser is closed with Cease/Connection Collision Resolution. Only the primary's ``ConnectWanted``
is acted on; any other link is dropped once it has closed.

The driver is thin: every call into a session is followed by :meth:`PeerDriver._pump`, which
writes ``data_to_send()``, handles the events and re-arms the link's single timer at
``next_deadline()``. Writes happen in the call that caused them (no extra loop turn; the
sockets have TCP_NODELAY), and a big route change writes its first part before the rest is
encoded, so the router starts installing while we pack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from vipcast.core.backoff import Backoff
from vipcast.proto.bgp import (
    HEAD_START,
    CloseWanted,
    ConnectWanted,
    Established,
    Initiator,
    NotificationReceived,
    NotificationSent,
    RouteAttributes,
    Session,
    SessionConfig,
    SessionDown,
    State,
    collision_winner,
    head_start,
)
from vipcast.runtime.bgp.link import Connection, Link, drain_events
from vipcast.runtime.bgp.peer_status import PeerStatus, RetiredCounters
from vipcast.runtime.bgp.transport import (
    BGP_PORT,
    TransportOptions,
    connect,
    local_of,
)

OPENING = (State.OPEN_SENT, State.OPEN_CONFIRM)


@dataclass(frozen=True)
class PeerSettings:
    """Everything the runtime needs to keep one peer's session."""

    name: str
    address: str
    session: SessionConfig
    port: int = BGP_PORT
    transport: TransportOptions = field(default_factory=TransportOptions)
    #: how long one outgoing connection attempt may wait for the peer's SYN-ACK. None: until
    #: the ConnectRetry timer starts the next attempt (RFC 4271 §8.2.2, Connect state), with
    #: twice ConnectRetryTime as a backstop. A shorter fixed timeout (it was 5 s) ended an
    #: attempt early and then waited a whole ConnectRetryTime more in Active: with the
    #: default 10 s, 10 s without a SYN toward a peer whose path had just come back
    connect_timeout: float | None = None

    def attempt_timeout(self) -> float:
        """The bound on one outgoing connection attempt (see ``connect_timeout``)."""
        if self.connect_timeout is not None:
            return self.connect_timeout
        return 2.0 * self.session.connect_retry_time


class PeerDriver:
    """Keeps one peer's BGP session up and its Adj-RIB-Out equal to :meth:`set_routes`."""

    def __init__(
        self,
        settings: PeerSettings,
        *,
        backoff: Backoff,
        log: logging.Logger | None = None,
        on_change: Callable[[], None] | None = None,
        on_session: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self._backoff = backoff
        self._log = log or logging.getLogger(f"vipcast.bgp.{settings.name}")
        self._on_change = on_change
        #: called with True when the session reaches Established, False when it leaves it
        self._on_session = on_session
        self._loop = asyncio.get_running_loop()
        self._routes: dict[str, RouteAttributes] = {}
        self._primary = self._new_link(settings.session, outbound=True)
        self._others: list[Link] = []
        self._failures = 0
        self._established_at: float | None = None
        self._last_error: str | None = None
        self._stopped = False
        self._carried = RetiredCounters()

    # ---- public ---------------------------------------------------------------------------

    def start(self) -> None:
        self._primary.session.start(self._now())
        self._pump(self._primary)

    def set_routes(self, routes: Mapping[str, RouteAttributes]) -> None:
        previous, self._routes = self._routes, dict(routes)
        head = head_start(previous, self._routes)
        for link in self._links():
            if head is not None and link.session.state == State.ESTABLISHED:
                # a big change: the first UPDATE goes out (and the router starts on it)
                # before the rest is encoded
                link.session.set_routes(head)
                self._write(link)
            link.session.set_routes(self._routes)
            self._pump(link)

    def update_routes(self, changes: Mapping[str, RouteAttributes | None]) -> None:
        """Change only these prefixes (None: withdraw): the sessions look at them alone."""
        if len(changes) > HEAD_START:
            routes = dict(self._routes)
            for prefix, attrs in changes.items():
                if attrs is None:
                    routes.pop(prefix, None)
                else:
                    routes[prefix] = attrs
            self.set_routes(routes)
            return
        for prefix, attrs in changes.items():
            if attrs is None:
                self._routes.pop(prefix, None)
            else:
                self._routes[prefix] = attrs
        for link in self._links():
            link.session.update_routes(changes)
            self._pump(link)

    def routes(self) -> Mapping[str, RouteAttributes]:
        return self._routes

    async def stop(self, message: str = "", timeout: float = 2.0) -> None:
        """Administrative shutdown: NOTIFICATION Cease/2 on every link, then close."""
        self._stopped = True
        for link in self._links():
            link.session.stop(self._now(), message)
            self._pump(link)
        pending = [
            link.connection.closed
            for link in self._links()
            if link.connection is not None and not link.connection.closed.done()
        ]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self._teardown()

    def abort(self) -> None:
        """Drop everything at once, sending nothing (used on reconfiguration failures)."""
        self._stopped = True
        self._teardown()

    def reset(self) -> None:
        """Drop the TCP connections at once, as if lost (BFD declared the peer down).

        Nothing is sent; the sessions fall back and reconnect with backoff.
        """
        for link in self._links():
            connection = link.connection
            if connection is None:
                continue
            link.connection = None
            connection.unbind()
            connection.abort()
            link.session.connection_lost(self._now())
            self._pump(link)

    def accept(self, connection: Connection) -> bool:
        """An incoming TCP connection from this peer: adopt it, keep it for a collision, or
        refuse it (returns False; the caller closes it)."""
        if self._stopped or connection.transport is None:
            return False
        primary = self._primary
        state = primary.session.state
        now = self._now()
        self._log.debug(
            "%s: incoming connection (session %s, %d other links)",
            self,
            state.value,
            len(self._others),
        )
        connecting = primary.connect_task is not None and not primary.connect_task.done()
        if primary.connection is None and state in (State.CONNECT, State.ACTIVE) and not connecting:
            primary.outbound = False
            self._attach(primary, connection)
            primary.session.connection_made(now, local_of(connection.transport)[0])
            self._pump(primary)
            return True
        if len(self._others) >= 1:
            return False
        graceful = (
            state == State.ESTABLISHED
            and primary.session.negotiated is not None
            and self.settings.session.graceful_restart
        )
        if state in OPENING or graceful or connecting:
            link = self._new_link(replace(self.settings.session, passive=False), outbound=False)
            link.session.set_routes(self._routes)
            link.session.start(now)
            drain_events(link.session)  # its ConnectWanted is not for us: the connection is here
            self._attach(link, connection)
            link.session.connection_made(now, local_of(connection.transport)[0])
            self._others.append(link)
            if graceful:
                # RFC 4724 §4.2: a new connection while Established means the peer restarted
                self._log.info("%s reconnected while Established: replacing the session", self)
                self._retire_primary(link)
                primary.session.connection_lost(now)
                self._detach(primary, abort=True)
                self._pump(primary)
            self._pump(link)
            return True
        return False

    def status(self) -> PeerStatus:
        session = self._primary.session
        stats = session.stats
        connection = self._primary.connection
        local = None
        if connection is not None and connection.transport is not None:
            with contextlib.suppress(OSError, TypeError):
                local = local_of(connection.transport)[0]
        established = session.state == State.ESTABLISHED and self._established_at is not None
        hold = session.idle_hold_until()
        return PeerStatus(
            name=self.settings.name,
            address=self.settings.address,
            port=self.settings.port,
            local_asn=self.settings.session.local_asn,
            peer_asn=self.settings.session.peer_asn,
            state=session.state.value,
            uptime=(time.monotonic() - self._established_at)
            if established and self._established_at is not None
            else None,
            local_address=local,
            prefixes_advertised=stats.prefixes_advertised,
            prefixes_received=stats.prefixes_received,
            updates_sent=self._carried.updates_sent + stats.updates_sent,
            updates_received=self._carried.updates_received + stats.updates_received,
            notifications_sent=self._carried.notifications_sent + stats.notifications_sent,
            notifications_received=self._carried.notifications_received
            + stats.notifications_received,
            established_transitions=self._carried.established + stats.established_count,
            last_error=self._last_error or stats.last_error,
            drops_in_a_row=session.oscillations,
            restart_in=None if hold is None else max(0.0, hold - self._now()),
        )

    @property
    def state(self) -> State:
        return self._primary.session.state

    def __str__(self) -> str:
        return f"peer {self.settings.name} ({self.settings.address})"

    # ---- links ----------------------------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time()

    def _new_link(self, config: SessionConfig, outbound: bool) -> Link:
        return Link(session=Session(config), outbound=outbound)

    def _links(self) -> list[Link]:
        return [self._primary, *self._others]

    def _attach(self, link: Link, connection: Connection) -> None:
        link.connection = connection
        connection.bind(
            lambda data: self._on_data(link, connection, data),
            lambda: self._on_lost(link, connection),
        )

    def _detach(self, link: Link, abort: bool = False) -> None:
        connection, link.connection = link.connection, None
        if connection is not None:
            connection.abort() if abort else connection.close()

    def _on_data(self, link: Link, connection: Connection, data: bytes) -> None:
        if link.connection is not connection:
            return
        link.session.receive_data(data, self._now())
        self._pump(link)

    def _on_lost(self, link: Link, connection: Connection) -> None:
        if link.connection is not connection:
            return
        link.connection = None
        connection.unbind()
        link.session.connection_lost(self._now())
        self._pump(link)

    def _on_timer(self, link: Link) -> None:
        link.timer = None
        link.session.handle_timer(self._now())
        self._pump(link)

    def _cancel_connect(self, link: Link) -> None:
        if link.connect_task is not None:
            link.connect_task.cancel()
            link.connect_task = None

    def _retire_primary(self, successor: Link) -> None:
        """``successor`` (one of the other links) becomes the peer's session."""
        old = self._primary
        self._cancel_connect(old)
        stats = old.session.stats
        self._carried.add(stats)
        # the peer's drops in a row go on counting (RFC 4271 §8.1.1): a successor that won a
        # collision must not reset the damping of a flapping peer
        successor.session.oscillations = max(
            successor.session.oscillations, old.session.oscillations
        )
        self._others = [link for link in self._others if link is not successor] + [old]
        self._primary = successor

    # ---- the pump -------------------------------------------------------------------------

    def _pump(self, link: Link) -> None:
        session = link.session
        self._write(link)
        changed = False
        while (event := session.next_event()) is not None:
            changed = True
            if isinstance(event, ConnectWanted):
                if link is self._primary and not self._stopped:
                    self._start_connect(link)
            elif isinstance(event, CloseWanted):
                self._write(link)
                self._detach(link)
            elif isinstance(event, Established):
                if link is self._primary:
                    self._on_established()
            elif isinstance(event, SessionDown):
                if link is self._primary:
                    self._on_down(event)
            elif isinstance(event, NotificationSent | NotificationReceived):
                self._log.info("%s: %s %s", self, type(event).__name__, event.notification)
            self._write(link)
        self._rearm(link)
        self._promote()
        if link is not self._primary:
            self._resolve_collision()
            self._forget_closed()
        if changed and self._on_change is not None:
            self._on_change()

    def _write(self, link: Link) -> None:
        data = link.session.data_to_send()
        if data and link.connection is not None and link.connection.transport is not None:
            link.connection.transport.write(data)

    def _rearm(self, link: Link) -> None:
        if link.timer is not None:
            link.timer.cancel()
            link.timer = None
        deadline = link.session.next_deadline()
        if deadline is not None and not (self._stopped and link.connection is None):
            link.timer = self._loop.call_at(deadline, self._on_timer, link)

    def _on_established(self) -> None:
        self._backoff.reset()
        self._failures = 0
        self._established_at = time.monotonic()
        negotiated = self._primary.session.negotiated
        self._log.info("%s: Established (%s)", self, negotiated)
        if self._on_session is not None:
            self._on_session(True)

    def _on_down(self, event: SessionDown) -> None:
        self._established_at = None
        reason = event.reason
        if event.notification is not None:
            side = "sent" if event.sent else "received"
            reason = f"{reason} (NOTIFICATION {side}: {event.notification})"
        self._last_error = reason
        self._log.warning("%s: session down: %s", self, reason)
        if self._on_session is not None:
            self._on_session(False)

    def _promote(self) -> None:
        """An Established other link replaces a primary that has no connection left."""
        primary = self._primary
        if primary.connection is not None or primary.session.state == State.ESTABLISHED:
            return
        for other in self._others:
            if other.session.state == State.ESTABLISHED and other.connection is not None:
                self._log.debug("%s: the incoming connection carries the session now", self)
                self._retire_primary(other)
                self._cancel_connect(primary)
                self._on_established()
                return

    def _resolve_collision(self) -> None:
        primary = self._primary
        for other in list(self._others):
            a, b = primary.session, other.session
            # both ends apply the same rule (RFC 4271 §6.8, by BGP identifier) to the same two
            # connections, even when one of them already reached Established on one end
            live = (*OPENING, State.ESTABLISHED)
            if a.peer_router_id is None or b.peer_router_id is None:
                continue
            if a.state not in live or b.state not in live:
                continue
            config = self.settings.session
            winner = collision_winner(
                config.router_id, a.peer_router_id, config.local_asn, config.peer_asn
            )
            outbound, inbound = (primary, other) if primary.outbound else (other, primary)
            loser = inbound if winner == Initiator.LOCAL else outbound
            self._log.info(
                "%s: connection collision, closing the %s one",
                self,
                "inbound" if loser is inbound else "outbound",
            )
            if loser is primary:
                self._retire_primary(other)
            loser.session.resolve_collision(self._now())
            self._pump(loser)

    def _forget_closed(self) -> None:
        keep = []
        for link in self._others:
            if link.connection is None and link.connect_task is None:
                if link.timer is not None:
                    link.timer.cancel()
                continue
            keep.append(link)
        self._others = keep

    # ---- outgoing connections -------------------------------------------------------------

    def _start_connect(self, link: Link) -> None:
        self._cancel_connect(link)
        if link.connection is not None:
            self._detach(link, abort=True)
        delay = self._backoff.next_delay() if self._failures else 0.0
        link.outbound = True
        link.connect_task = self._loop.create_task(
            self._connect(link, delay), name=f"bgp-connect-{self.settings.name}"
        )

    async def _connect(self, link: Link, delay: float) -> None:
        settings = self.settings
        if delay:
            await asyncio.sleep(delay)
        try:
            _, protocol = await connect(
                settings.address,
                settings.port,
                settings.transport,
                Connection,
                settings.attempt_timeout(),
            )
        except (OSError, TimeoutError) as exc:
            link.connect_task = None
            self._failures += 1
            self._last_error = f"connect to {settings.address}:{settings.port}: {exc}"
            self._log.debug("%s: %s", self, self._last_error)
            if link.connection is None and link.session.state in (State.CONNECT, State.ACTIVE):
                link.session.connection_lost(self._now())
                self._pump(link)
            return
        link.connect_task = None
        assert isinstance(protocol, Connection) and protocol.transport is not None
        if link.connection is not None or self._stopped or link is not self._primary:
            protocol.abort()
            return
        self._attach(link, protocol)
        local_address = local_of(protocol.transport)[0]
        self._log.debug("%s: connected from %s", self, local_address)
        link.session.connection_made(self._now(), local_address)
        self._pump(link)

    def _teardown(self) -> None:
        for link in self._links():
            self._cancel_connect(link)
            if link.timer is not None:
                link.timer.cancel()
                link.timer = None
            self._detach(link, abort=link.connection is not None and self._stopped is False)
        self._others = []
