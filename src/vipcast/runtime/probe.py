"""Small async probes (TCP connect, HTTP GET) and the verified-announcement gate.

A node must not announce a VIP it cannot serve. Before the first announcement, after a restart,
and whenever a service's backends come back from none, the agent asks :class:`AnnouncementGate`
to *verify* the VIP: a TCP connection from the node itself to ``VIP:port``. The ``output`` nat
chain of the data plane DNATs it exactly as it would a client's, so a success proves the rules,
the routes and at least one backend together. Only then is the VIP reported ready.

Probes return values (:class:`ProbeResult`); a refused or timed-out connection is an expected
outcome, never an exception. Sockets come from a ``SocketFactory`` so tests can create them
inside a network namespace; the default is :class:`socket.socket`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vipcast.spec.health import valid_path

SocketFactory = Callable[[int, int], socket.socket]
#: ``(vip, port, protocol)``: one announced service port
VipKey = tuple[str, int, str]


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
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
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
        await asyncio.wait_for(loop.sock_sendall(sock, request.encode()), _left(deadline))
        while len(data) <= max_body:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 16384), _left(deadline))
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


@dataclass
class AnnouncementGate:
    """Which VIP ports have been verified through the node's own data plane.

    The agent calls :meth:`verify` before announcing a VIP and announces only when it returns
    True; it calls :meth:`invalidate` when a service loses its last healthy backend (so the
    next announcement after recovery is verified again). A fresh gate (agent restart) has
    verified nothing.
    """

    timeout: float = 1.0
    attempts: int = 3
    retry_delay: float = 0.2
    socket_factory: SocketFactory | None = None
    _verified: set[VipKey] = field(default_factory=set)

    def is_verified(self, key: VipKey) -> bool:
        return key in self._verified

    def invalidate(self, key: VipKey) -> None:
        self._verified.discard(key)

    async def verify(self, vip: str, port: int, protocol: str = "TCP") -> ProbeResult:
        """Probe ``vip:port`` from this node; remember a success.

        Only TCP can be verified by a connection; UDP and SCTP ports are accepted as they are
        (reported with ``error="not verifiable"`` and ``ok=True``).
        """
        key = (vip, port, protocol)
        if protocol != "TCP":
            self._verified.add(key)
            return ProbeResult(True, 0.0, "not verifiable")
        result = ProbeResult(False, 0.0, "not tried")
        for attempt in range(max(1, self.attempts)):
            if attempt:
                await asyncio.sleep(self.retry_delay)
            result = await tcp_connect(
                vip, port, timeout=self.timeout, socket_factory=self.socket_factory
            )
            if result.ok:
                self._verified.add(key)
                return result
        self._verified.discard(key)
        return result
