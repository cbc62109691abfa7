"""Small async probes (TCP connect, HTTP GET, UDP query) and the verified-announcement gate.

A node must not announce a VIP it cannot serve. Before the first announcement, after a restart,
and whenever a service's backends come back from none, the agent asks :class:`AnnouncementGate`
to *verify* the VIP: a TCP connection from the node itself to ``VIP:port``. The ``output`` nat
chain of the data plane DNATs it exactly as it would a client's, so a success proves the rules,
the routes and at least one backend together. Only then is the VIP reported ready.

UDP has no handshake. A UDP port is probed with a DNS query (``udp_query``, the one question
every UDP LoadBalancer service most likely is: DNS): any datagram back from ``VIP:port`` is the
same evidence as a TCP connection (verified); an ICMP port unreachable is evidence against
(failed, the path is broken); silence is no evidence either way: the port is *unverified*.
SCTP ports are unverified without a probe. Unverified ports are never counted as verified: the
gate keeps them apart (:meth:`AnnouncementGate.unverified`) and a service whose every port is
unverified may be announced on its health alone, reported as unverified (docs/dataplane.md).

Probes return values (:class:`ProbeResult`); a refused or timed-out connection is an expected
outcome, never an exception. Sockets come from a ``SocketFactory`` so tests can create them
inside a network namespace; the default is :class:`socket.socket`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from vipcast.core.desired import VipKey
from vipcast.spec.health import valid_path

SocketFactory = Callable[[int, int], socket.socket]


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome."""

    ok: bool
    seconds: float
    error: str = ""
    status: int | None = None  # HTTP status, when the probe was HTTP
    body: bytes = b""


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def _connect(
    host: str, port: int, timeout: float, factory: SocketFactory | None, source: str | None
) -> socket.socket:
    sock = (factory or socket.socket)(_family(host), socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if source is not None:
            sock.bind((source, 0))
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):  # not wait_for: see runtime/envoy/process.py
            await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def tcp_connect(
    host: str,
    port: int,
    *,
    timeout: float = 1.0,
    socket_factory: SocketFactory | None = None,
    source: str | None = None,
) -> ProbeResult:
    """Open and close a TCP connection to ``host:port``."""
    start = time.monotonic()
    try:
        sock = await _connect(host, port, timeout, socket_factory, source)
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, time.monotonic() - start, _describe(exc))
    sock.close()
    return ProbeResult(True, time.monotonic() - start)


async def http_get(
    host: str,
    port: int,
    path: str = "/",
    *,
    timeout: float = 1.0,
    socket_factory: SocketFactory | None = None,
    source: str | None = None,
    max_body: int = 65536,
) -> ProbeResult:
    """``GET path`` over HTTP/1.0; ok for a 2xx or 3xx status. The body is kept (bounded)."""
    start = time.monotonic()
    deadline = start + timeout
    if not valid_path(path):  # never put CR/LF or other header bytes on the wire
        return ProbeResult(False, 0.0, "path refused: not RFC 3986 path characters")
    try:
        sock = await _connect(host, port, timeout, socket_factory, source)
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, time.monotonic() - start, _describe(exc))
    loop = asyncio.get_running_loop()
    hostname = f"[{host}]" if ":" in host else host
    request = f"GET {path} HTTP/1.0\r\nHost: {hostname}\r\nUser-Agent: vipcast-probe\r\n\r\n"
    data = b""
    try:
        async with asyncio.timeout(_left(deadline)):
            await loop.sock_sendall(sock, request.encode())
        while len(data) <= max_body:
            async with asyncio.timeout(_left(deadline)):
                chunk = await loop.sock_recv(sock, 16384)
            if not chunk:
                break
            data += chunk
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, time.monotonic() - start, _describe(exc))
    finally:
        sock.close()
    status = _status(data)
    seconds = time.monotonic() - start
    if status is None:
        return ProbeResult(False, seconds, "no HTTP status line")
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    ok = 200 <= status < 400
    return ProbeResult(ok, seconds, "" if ok else f"HTTP {status}", status, body)


def dns_query(query_id: int) -> bytes:
    """A minimal DNS query (RFC 1035 4.1): ``. IN NS``, recursion not desired."""
    header = struct.pack("!HHHHHH", query_id, 0, 1, 0, 0, 0)
    return header + b"\x00" + struct.pack("!HH", 2, 1)


async def udp_query(
    host: str,
    port: int,
    payload: bytes | None = None,
    *,
    timeout: float = 1.0,
    socket_factory: SocketFactory | None = None,
) -> ProbeResult:
    """Send one datagram (a DNS query by default) to ``host:port`` and wait for any answer.

    ``ok`` with the answer in ``body`` when a datagram came back; ``error="refused"`` when the
    ICMP port unreachable came back instead; ``error="no answer"`` after ``timeout``.
    """
    start = time.monotonic()
    if payload is None:
        payload = dns_query(int.from_bytes(os.urandom(2), "big"))
    sock = (socket_factory or socket.socket)(_family(host), socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        # connected: only datagrams from host:port are received, and ICMP errors are reported
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, payload)
        async with asyncio.timeout(timeout):
            data = await loop.sock_recv(sock, 65535)
    except TimeoutError:
        return ProbeResult(False, time.monotonic() - start, "no answer")
    except ConnectionRefusedError:
        return ProbeResult(False, time.monotonic() - start, "refused")
    except OSError as exc:
        return ProbeResult(False, time.monotonic() - start, _describe(exc))
    finally:
        sock.close()
    return ProbeResult(True, time.monotonic() - start, body=data)


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


def _status(data: bytes) -> int | None:
    line = data.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
        return None
    return int(line[1])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


# ---------------------------------------------------------------------------------------------
# verified announcement


#: what the gate knows of one VIP port: evidence it works, or no evidence either way
Verification = Literal["verified", "unverified"]


@dataclass
class AnnouncementGate:
    """Which VIP ports have been verified through the node's own data plane.

    The agent calls :meth:`verify` before announcing a VIP and announces only when
    :meth:`may_announce` says so; it calls :meth:`invalidate` when a service loses its last
    healthy backend (so the next announcement after recovery is verified again). A fresh gate
    (agent restart) has verified nothing.

    A port is *verified* on evidence only: a TCP connection, or an answer to a UDP query, through
    the VIP. A UDP port that stays silent and an SCTP port are *unverified*: announceable (there
    is no evidence against them) but never counted as verified (:meth:`unverified` lists them
    for status and logs). A refused TCP connection or UDP query is evidence against: neither.
    """

    timeout: float = 1.0
    attempts: int = 3
    retry_delay: float = 0.2
    socket_factory: SocketFactory | None = None
    _verified: set[VipKey] = field(default_factory=set)
    _unverified: set[VipKey] = field(default_factory=set)

    def is_verified(self, key: VipKey) -> bool:
        """Evidence that ``key`` works through this node's data plane."""
        return key in self._verified

    def may_announce(self, key: VipKey) -> bool:
        """Verified, or unverifiable with no evidence against it (see the class docstring)."""
        return key in self._verified or key in self._unverified

    def state(self, key: VipKey) -> Verification | None:
        if key in self._verified:
            return "verified"
        return "unverified" if key in self._unverified else None

    def unverified(self) -> frozenset[VipKey]:
        return frozenset(self._unverified)

    def invalidate(self, key: VipKey) -> None:
        self._verified.discard(key)
        self._unverified.discard(key)

    async def verify(self, vip: str, port: int, protocol: str = "TCP") -> ProbeResult:
        """Probe ``vip:port`` from this node; remember what the probe showed.

        TCP: a connection. UDP: a DNS query, any answer counts; a refusal in any attempt fails
        it (the DNAT picks a backend per query: one silent, one refusing is still broken); only
        silence in every attempt leaves the port unverified (``ok=False``,
        ``error="no answer: unverified"``). SCTP: unverified without a probe
        (``error="SCTP: unverified"``).
        """
        key = (vip, port, protocol)
        if protocol == "SCTP":
            self._verified.discard(key)
            self._unverified.add(key)
            return ProbeResult(False, 0.0, "SCTP: unverified")
        result = ProbeResult(False, 0.0, "not tried")
        silent = True  # UDP: every attempt went unanswered, none was refused
        for attempt in range(max(1, self.attempts)):
            if attempt:
                await asyncio.sleep(self.retry_delay)
            if protocol == "UDP":
                result = await udp_query(
                    vip, port, timeout=self.timeout, socket_factory=self.socket_factory
                )
            else:
                result = await tcp_connect(
                    vip, port, timeout=self.timeout, socket_factory=self.socket_factory
                )
            if result.ok:
                self._unverified.discard(key)
                self._verified.add(key)
                return result
            silent = silent and result.error == "no answer"
            if protocol == "UDP" and not silent:
                break  # a refusal is evidence against: no need to ask again
        self.invalidate(key)
        if protocol == "UDP" and silent:
            self._unverified.add(key)
            return ProbeResult(False, result.seconds, "no answer: unverified")
        return result
