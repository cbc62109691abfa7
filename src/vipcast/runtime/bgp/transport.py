"""TCP sockets for BGP sessions: source binding, TTL/GTSM, TCP MD5 (RFC 2385), listeners.

Everything the kernel needs to know about a BGP connection is set here, before ``connect()``
or ``listen()``, on a plain non-blocking :class:`socket.socket`; asyncio then takes the socket
over. Linux constants the :mod:`socket` module does not export are defined below.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: linux/tcp.h
TCP_MD5SIG = 14
TCP_MD5SIG_MAXKEYLEN = 80
#: linux/in.h, linux/in6.h
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73

BGP_PORT = 179
GTSM_TTL = 255


class TransportError(Exception):
    """The kernel refused a socket option or an address (an environment error)."""


@dataclass(frozen=True)
class TransportOptions:
    """How one peer's TCP connection is set up.

    ``ttl`` is the TTL/hop limit of the packets we send (eBGP: 1 unless multihop). With
    ``gtsm_hops`` set (RFC 5082), we send with TTL 255 and the kernel drops segments whose TTL
    is below ``256 - gtsm_hops``.
    """

    source_address: str | None = None
    ttl: int | None = None
    gtsm_hops: int | None = None
    md5_password: str | None = None

    def outgoing_ttl(self) -> int | None:
        return GTSM_TTL if self.gtsm_hops is not None else self.ttl

    def min_ttl(self) -> int | None:
        return None if self.gtsm_hops is None else 256 - self.gtsm_hops


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def normalize_address(address: str) -> str:
    """The canonical text of an address, with IPv4-mapped IPv6 folded back to IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def md5sig(peer_address: str, password: str) -> bytes:
    """``struct tcp_md5sig`` for ``peer_address`` (an empty password removes the key).

    Layout: sockaddr_storage (128 bytes), flags u8, prefixlen u8, keylen u16, ifindex u32,
    key[80].
    """
    key = password.encode()
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise TransportError(f"TCP MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} bytes")
    ip = ipaddress.ip_address(peer_address)
    if ip.version == 4:
        sockaddr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + ip.packed
    else:
        sockaddr = (
            struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + ip.packed + b"\0" * 4
        )
    storage = sockaddr.ljust(128, b"\0")
    header = struct.pack("=BBHI", 0, 0, len(key), 0)
    return storage + header + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")


def set_md5(sock: socket.socket, peer_address: str, password: str) -> None:
    """Sign (and require signatures on) segments exchanged with ``peer_address``."""
    peer = normalize_address(peer_address)
    if sock.family == socket.AF_INET6 and family_of(peer) == socket.AF_INET:
        peer = f"::ffff:{peer}"
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig(peer, password))
    except OSError as exc:
        raise TransportError(f"TCP_MD5SIG for {peer_address}: {exc}") from exc


def set_ttl(sock: socket.socket, ttl: int | None, min_ttl: int | None) -> None:
    """Outgoing TTL / hop limit and the GTSM minimum for incoming segments."""
    v6 = sock.family == socket.AF_INET6
    try:
        if ttl is not None:
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        if min_ttl is not None:
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, min_ttl)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, min_ttl)
    except OSError as exc:
        raise TransportError(f"TTL options ({ttl=}, {min_ttl=}): {exc}") from exc


def connecting_socket(peer_address: str, options: TransportOptions) -> socket.socket:
    """A non-blocking socket with every option set, bound to the source address if any."""
    sock = socket.socket(family_of(peer_address), socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if options.md5_password:
            set_md5(sock, peer_address, options.md5_password)
        set_ttl(sock, options.outgoing_ttl(), options.min_ttl())
        if options.source_address:
            try:
                sock.bind((options.source_address, 0))
            except OSError as exc:
                raise TransportError(f"bind {options.source_address}: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


async def connect(
    peer_address: str,
    port: int,
    options: TransportOptions,
    protocol_factory: Callable[[], asyncio.Protocol],
    timeout: float,
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """Open a TCP connection to a peer; raises :class:`OSError` (or TimeoutError) on failure."""
    loop = asyncio.get_running_loop()
    sock = connecting_socket(peer_address, options)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (peer_address, port))
        transport, protocol = await loop.create_connection(protocol_factory, sock=sock)
    except BaseException:
        sock.close()
        raise
    return transport, protocol


def listening_socket(
    address: str, port: int, md5_peers: Mapping[str, str] | None = None
) -> socket.socket:
    """A listening socket on ``address:port`` with MD5 keys for the given peers."""
    family = family_of(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and address == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        for peer, password in (md5_peers or {}).items():
            if password:
                set_md5(sock, peer, password)
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise TransportError(f"listen {address}:{port}: {exc}") from exc
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_of(transport: asyncio.BaseTransport) -> tuple[str, int]:
    """The (normalized address, port) at the other end of a TCP transport."""
    name = transport.get_extra_info("peername")
    return normalize_address(str(name[0])), int(name[1])


def local_of(transport: asyncio.BaseTransport) -> tuple[str, int]:
    name = transport.get_extra_info("sockname")
    return normalize_address(str(name[0])), int(name[1])
