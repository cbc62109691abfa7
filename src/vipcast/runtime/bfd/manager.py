"""asyncio driver of :mod:`vipcast.proto.bfd`: sockets, one timer per session, callbacks.

:class:`BfdManager` owns the UDP sockets. Each session gets its own transmit socket (source
port 49152-65535, TTL / hop limit 255, bound to the local address and, for single hop, to the
interface when one is given). Received packets arrive on listening sockets bound to the local
address and port 3784 (single hop) or 4784 (multihop), with the TTL / hop limit read from the
ancillary data, and are handed to the session named by Your Discriminator, or, while that is
still zero, the session of the source address.

A client's hook (the BGP speaker's is :class:`vipcast.runtime.bfd.bgp.BgpBfd`, which listens
to every change and decides with the RFC 5882 binding of :mod:`vipcast.proto.bfd.client`)::

    handle = manager.add_peer("192.0.2.1", "192.0.2.10", profile)
    handle.on_down(lambda change: driver.abort())   # Up -> Down: drop the session now
    ...
    handle.close()                                  # tells the peer AdminDown, frees sockets

Per RFC 5882 §3.2, :meth:`BfdHandle.on_down` is not called when the remote merely signals
AdminDown: that is the remote turning BFD off, not a failure of the path.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from vipcast.obs.bfd_metrics import BfdMetrics
from vipcast.obs.registry import CollectorRegistry
from vipcast.proto.bfd import (
    MULTIHOP_PORT,
    SINGLE_HOP_PORT,
    SINGLE_HOP_TTL,
    SOURCE_PORT_MAX,
    SOURCE_PORT_MIN,
    BFDPacketError,
    Diag,
    DropReason,
    Session,
    SessionConfig,
    State,
    StateChanged,
    decode,
)
from vipcast.runtime.bfd.handle import BfdHandle, BfdStatus, ChangeCallback, session_config
from vipcast.runtime.clock import Clock, LoopClock, Timer
from vipcast.spec.objects import BFDProfileSpec

# Linux values; Python's socket module lacks IP_RECVTTL
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_INT = struct.Struct("@i")
_READS_PER_WAKEUP = 64
_SIOCGIFINDEX = 0x8933
#: DSCP CS6 (network control), as routers mark their own BFD
_NETWORK_CONTROL = 0xC0

SocketFactory = Callable[[int], socket.socket]

log = logging.getLogger(__name__)

__all__ = [
    "BfdHandle",
    "BfdManager",
    "BfdStatus",
    "ChangeCallback",
    "SocketFactory",
    "session_config",
]


def _plain_socket(family: int) -> socket.socket:
    return socket.socket(family, socket.SOCK_DGRAM)


@dataclass
class _Listener:
    sock: socket.socket
    multihop: bool
    users: int = 0


class BfdManager:
    """All BFD sessions of one process.

    ``registry`` receives the metrics (none are kept without one); ``rng`` draws
    discriminators, source ports and jitter; ``socket_factory(family)`` makes every UDP socket
    (tests pass one that creates sockets inside a network namespace). ``port`` and
    ``multihop_port`` exist for tests; RFC 5881/5883 fix them at 3784 and 4784. ``clock``
    drives every session timer (default: the running loop's; tests hand a
    :class:`~vipcast.runtime.clock.ManualClock` to move time themselves).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        socket_factory: SocketFactory = _plain_socket,
        port: int = SINGLE_HOP_PORT,
        multihop_port: int = MULTIHOP_PORT,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._rng = rng if rng is not None else random.Random()
        self._metrics = BfdMetrics(registry) if registry is not None else None
        self._socket = socket_factory
        self._ports = {False: port, True: multihop_port}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_discr: dict[int, BfdHandle] = {}
        self._by_peer: dict[tuple[str, bool], BfdHandle] = {}
        self._listeners: dict[tuple[str, int, int], _Listener] = {}

    # ------------------------------------------------------------------ public

    def now(self) -> float:
        return self._clock.now()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """A timer on the sessions' clock (the BGP binding's recovery bound uses it)."""
        return self._clock.call_at(when, callback)

    def add_peer(
        self,
        peer_addr: str,
        local_addr: str | None = None,
        profile: BFDProfileSpec | SessionConfig | None = None,
        multihop: bool = False,
        interface: str | None = None,
    ) -> BfdHandle:
        """Start (or share) the session with ``peer_addr``; needs a running event loop.

        A second call for the same peer and hop mode returns the same handle, held once more.
        Raises OSError if the kernel refuses the sockets (address not local, port taken).
        """
        address, _, zone = peer_addr.partition("%")
        peer = str(ipaddress.ip_address(address))
        interface = interface or zone or None  # "fe80::1%eth0" names its link
        key = (peer, multihop)
        existing = self._by_peer.get(key)
        if existing is not None:
            existing.users += 1
            return existing
        family = socket.AF_INET6 if ":" in peer else socket.AF_INET
        if _link_local(peer) and not interface:
            raise ValueError(f"link-local peer {peer} needs an interface")
        config = session_config(profile, multihop)
        link = interface if not multihop else None
        listener_key = self._listen(family, local_addr, multihop, interface)
        try:
            tx, scope = self._transmit_socket(family, local_addr, link)
        except OSError:
            self._unlisten(listener_key)
            raise
        dest: tuple[str, int] | tuple[str, int, int, int] = (peer, self._ports[multihop])
        if family == socket.AF_INET6:
            dest = (peer, self._ports[multihop], 0, scope if _link_local(peer) else 0)
        discr = self._new_discriminator()
        handle = BfdHandle(
            manager=self,
            peer=peer,
            local=local_addr,
            multihop=multihop,
            interface=interface,
            session=Session(config, discr, self._rng.random),
            tx=tx,
            listener_key=listener_key,
            dest=dest,
            since=self.now(),
        )
        self._by_discr[discr] = handle
        self._by_peer[key] = handle
        self._gauge(handle)
        handle.session.start(self.now())
        self.pump(handle)
        return handle

    def sessions(self) -> list[BfdHandle]:
        return list(self._by_peer.values())

    def status(self) -> list[BfdStatus]:
        return [h.status() for h in self._by_peer.values()]

    def close(self) -> None:
        """Take every session down (AdminDown to the peers) and close all sockets."""
        for handle in list(self._by_peer.values()):
            handle.users = 1
            self.release(handle)

    # ------------------------------------------------------------------ per session

    def release(self, handle: BfdHandle) -> None:
        if handle.closed:
            return
        handle.users -= 1
        if handle.users > 0:
            return
        handle.session.admin_down(self.now())
        self.pump(handle)
        handle.closed = True
        if handle._timer is not None:
            handle._timer.cancel()
        handle.tx.close()
        self._by_discr.pop(handle.session.local_discr, None)
        self._by_peer.pop((handle.peer, handle.multihop), None)
        self._unlisten(handle.listener_key)
        if self._metrics is not None:
            self._metrics.forget(handle.peer)
        handle._changed.set()

    def pump(self, handle: BfdHandle) -> None:
        """Send what the session queued, deliver its events, re-arm its timer."""
        if handle.closed:
            return
        session = handle.session
        for data in session.packets_to_send():
            try:
                handle.tx.sendto(data, handle.dest)
            except OSError as exc:  # no route, link down, buffer full: BFD will notice
                log.debug("bfd %s: send failed: %s", handle.peer, exc)
                if self._metrics is not None:
                    self._metrics.send_errors.labels(handle.peer).inc()
                continue
            handle.sent += 1
            if self._metrics is not None:
                self._metrics.packets_sent.labels(handle.peer).inc()
        while (change := session.next_event()) is not None:
            self._deliver(handle, change)
        if handle.was_polling and not session.polling and session.state is State.UP:
            log.info(
                "bfd %s: Poll Sequence done: tx %g ms, rx %g ms, detection %g ms",
                handle.peer,
                session.tx_interval_us / 1000,
                session.rx_interval_us / 1000,
                session.detection_time_us / 1000,
            )
        handle.was_polling = session.polling
        self._arm(handle)

    def _deliver(self, handle: BfdHandle, change: StateChanged) -> None:
        handle.since = self.now()
        if change.diag is not Diag.NONE:
            handle.last_diag = change.diag.name
        log.info(
            "bfd %s: %s -> %s (%s)",
            handle.peer,
            change.old.name,
            change.new.name,
            change.diag.name,
        )
        if self._metrics is not None:
            self._metrics.transitions.labels(handle.peer, change.new.name, change.diag.name).inc()
            self._gauge(handle)
        callbacks = list(handle._on_change)
        if change.new is State.UP:
            callbacks += handle._on_up
        remote_off = handle.session.remote_state is State.ADMIN_DOWN
        if change.old is State.UP and change.new is State.DOWN and not remote_off:
            callbacks += handle._on_down
        for callback in callbacks:
            try:
                callback(change)
            except Exception:
                log.exception("bfd %s: state-change callback failed", handle.peer)
        event, handle._changed = handle._changed, asyncio.Event()
        event.set()

    def _gauge(self, handle: BfdHandle) -> None:
        if self._metrics is None:
            return
        s = handle.session
        self._metrics.session_state.labels(handle.peer).set(int(s.state))
        self._metrics.session_up.labels(handle.peer).set(1 if s.state is State.UP else 0)
        self._metrics.detection_time.labels(handle.peer).set(s.detection_time_us / 1e6)
        self._metrics.tx_interval.labels(handle.peer).set(s.tx_interval_us / 1e6)

    def _arm(self, handle: BfdHandle) -> None:
        deadline = handle.session.next_deadline()
        timer = handle._timer
        if timer is not None:
            if deadline is not None and timer.when() == deadline and not timer.cancelled():
                return
            timer.cancel()
            handle._timer = None
        if deadline is not None:
            handle._timer = self._clock.call_at(deadline, lambda: self._fire(handle, deadline))

    def _fire(self, handle: BfdHandle, deadline: float) -> None:
        handle._timer = None
        if handle.closed:
            return
        # the loop may wake a hair early; the session must see the deadline reached
        handle.session.handle_timer(max(self.now(), deadline))
        self.pump(handle)
        if self._metrics is not None:
            self._gauge(handle)

    # ------------------------------------------------------------------ receive

    def _on_readable(self, listener: _Listener) -> None:
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, ancdata, _flags, addr = listener.sock.recvmsg(512, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. a queued ICMP error
                log.debug("bfd: receive error: %s", exc)
                continue
            self._receive(data, _ttl(ancdata), str(addr[0]).split("%")[0], listener.multihop)

    def _receive(self, data: bytes, ttl: int | None, source: str, multihop: bool) -> None:
        try:
            packet = decode(data)
        except BFDPacketError as exc:
            self._dropped(None, exc.reason)
            return
        if packet.your_discr:
            handle = self._by_discr.get(packet.your_discr)
            if handle is not None and (handle.peer != source or handle.multihop != multihop):
                handle = None
        else:
            handle = self._by_peer.get((source, multihop))
        if handle is None:
            self._dropped(None, DropReason.NO_SESSION)
            return
        reason = handle.session.receive_control(packet, self.now(), ttl)
        if reason is None:
            handle.received += 1
            if self._metrics is not None:
                self._metrics.packets_received.labels(handle.peer).inc()
        else:
            self._dropped(handle, reason)
        self.pump(handle)
        if self._metrics is not None and reason is None:
            self._gauge(handle)

    def _dropped(self, handle: BfdHandle | None, reason: DropReason) -> None:
        if handle is not None:
            handle.dropped += 1
        if self._metrics is not None:
            self._metrics.packets_dropped.labels(reason.name).inc()

    # ------------------------------------------------------------------ sockets

    def _listen(
        self, family: int, local: str | None, multihop: bool, interface: str | None
    ) -> tuple[str, int, int]:
        port = self._ports[multihop]
        bind_addr = local if local else ("::" if family == socket.AF_INET6 else "0.0.0.0")
        sock = self._socket(family)
        try:
            scope = _ifindex(sock, interface) if interface and _link_local(bind_addr) else 0
            key = (bind_addr, port, scope)
            listener = self._listeners.get(key)
            if listener is not None:
                sock.close()
                listener.users += 1
                return key
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                sock.bind((bind_addr, port, 0, scope))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                sock.bind((bind_addr, port))
        except OSError:
            sock.close()
            raise
        listener = _Listener(sock, multihop, users=1)
        self._listeners[key] = listener
        self._running_loop().add_reader(sock.fileno(), self._on_readable, listener)
        return key

    def _unlisten(self, key: tuple[str, int, int]) -> None:
        listener = self._listeners.get(key)
        if listener is None:
            return
        listener.users -= 1
        if listener.users <= 0:
            del self._listeners[key]
            self._running_loop().remove_reader(listener.sock.fileno())
            listener.sock.close()

    def _transmit_socket(
        self, family: int, local: str | None, interface: str | None
    ) -> tuple[socket.socket, int]:
        """A bound transmit socket and the interface's index (0 without an interface)."""
        sock = self._socket(family)
        try:
            sock.setblocking(False)
            scope = _ifindex(sock, interface) if interface else 0
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, SINGLE_HOP_TTL)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _NETWORK_CONTROL)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, SINGLE_HOP_TTL)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _NETWORK_CONTROL)
            if interface:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            address = local or ("::" if family == socket.AF_INET6 else "0.0.0.0")
            for attempt in range(64):
                port = self._rng.randint(SOURCE_PORT_MIN, SOURCE_PORT_MAX)
                try:
                    if family == socket.AF_INET6:
                        sock.bind((address, port, 0, scope if _link_local(address) else 0))
                    else:
                        sock.bind((address, port))
                    break
                except OSError:
                    if attempt == 63:
                        raise
        except OSError:
            sock.close()
            raise
        return sock, scope

    def _new_discriminator(self) -> int:
        while True:
            discr = self._rng.randint(1, 0xFFFF_FFFF)
            if discr not in self._by_discr:
                return discr

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop


def _ttl(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, value in ancdata:
        if (level, kind) in (
            (socket.IPPROTO_IP, socket.IP_TTL),
            (socket.IPPROTO_IPV6, IPV6_HOPLIMIT),
        ):
            if len(value) >= _INT.size:
                return int(_INT.unpack_from(value)[0])
            if len(value) == 1:
                return value[0]
    return None


def _link_local(address: str) -> bool:
    return ":" in address and ipaddress.ip_address(address).is_link_local


def _ifindex(sock: socket.socket, interface: str) -> int:
    """The index of ``interface`` in the socket's own network namespace (SIOCGIFINDEX)."""
    request = struct.pack("16si", interface.encode()[:15], 0)
    try:
        reply = fcntl.ioctl(sock.fileno(), _SIOCGIFINDEX, request)
    except OSError as exc:
        raise OSError(exc.errno, f"interface {interface!r}: {exc.strerror}") from exc
    return int(struct.unpack("16si", reply)[1])
