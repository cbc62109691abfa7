"""Socket options of BGP connections on loopback: TCP MD5, TTL/GTSM, source binding; backoff."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from vipcast.core.backoff import Backoff
from vipcast.runtime.bgp.transport import (
    IP_MINTTL,
    TransportError,
    TransportOptions,
    connect,
    connecting_socket,
    listening_socket,
    md5sig,
    normalize_address,
)


def test_md5sig_layout() -> None:
    raw = md5sig("192.0.2.1", "secret")
    assert len(raw) == 216
    assert int.from_bytes(raw[0:2], "little") == socket.AF_INET
    assert raw[4:8] == bytes([192, 0, 2, 1])
    assert int.from_bytes(raw[130:132], "little") == 6
    assert raw[136:142] == b"secret"
    raw6 = md5sig("2001:db8::1", "k")
    assert int.from_bytes(raw6[0:2], "little") == socket.AF_INET6
    assert raw6[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    with pytest.raises(TransportError):
        md5sig("192.0.2.1", "x" * 81)


def test_normalize_address() -> None:
    assert normalize_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalize_address("2001:DB8::1") == "2001:db8::1"


def test_gtsm_options_on_socket() -> None:
    sock = connecting_socket("127.0.0.1", TransportOptions(gtsm_hops=1))
    try:
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 255
        assert sock.getsockopt(socket.IPPROTO_IP, IP_MINTTL) == 255
    finally:
        sock.close()
    sock = connecting_socket("127.0.0.1", TransportOptions(ttl=1))
    try:
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 1
    finally:
        sock.close()


async def _accepting(password: str | None) -> tuple[asyncio.Server, int, list[str]]:
    seen: list[str] = []
    sock = listening_socket("127.0.0.1", 0, {"127.0.0.2": password} if password else None)

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.append(transport.get_extra_info("peername")[0])
            transport.close()

    server = await asyncio.get_running_loop().create_server(Accept, sock=sock)
    return server, sock.getsockname()[1], seen


@pytest.mark.parametrize(
    ("client_key", "accepted"),
    [("right-key", True), ("wrong-key", False), (None, False)],
)
async def test_md5_accepts_only_the_right_key(client_key: str | None, accepted: bool) -> None:
    server, port, seen = await _accepting("right-key")
    try:
        options = TransportOptions(source_address="127.0.0.2", md5_password=client_key)
        if accepted:
            transport, _ = await connect("127.0.0.1", port, options, asyncio.Protocol, 5.0)
            transport.close()
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.02)
            assert seen == ["127.0.0.2"]
        else:
            with pytest.raises((TimeoutError, OSError)):
                await connect("127.0.0.1", port, options, asyncio.Protocol, 1.0)
            assert seen == []
    finally:
        server.close()
        await server.wait_closed()


def test_backoff_grows_with_jitter_and_caps() -> None:
    backoff = Backoff(base=1.0, cap=8.0, jitter=0.25, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    for n, delay in enumerate(delays):
        raw = min(8.0, 2.0**n)
        assert 0.75 * raw <= delay <= raw
    backoff.reset()
    assert backoff.next_delay() <= 1.0
