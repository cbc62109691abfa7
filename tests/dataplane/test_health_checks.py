"""Health-check config, thresholds (pure) and the checker against loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcast.runtime.clock import ManualClock
from vipcast.runtime.health import HealthCheckConfig, HealthChecker, Threshold, parse_health_check
from vipcast.runtime.probe import AnnouncementGate, http_get, tcp_connect


def test_parse_annotation() -> None:
    assert parse_health_check("tcp") == HealthCheckConfig()
    assert parse_health_check("http:/healthz") == HealthCheckConfig(kind="http", path="/healthz")
    assert parse_health_check("http") == HealthCheckConfig(kind="http", path="/")
    assert parse_health_check("HTTP:/h, interval=1s, timeout=0.5, rise=3, fall=1") == (
        HealthCheckConfig(kind="http", path="/h", interval=1.0, timeout=0.5, rise=3, fall=1)
    )
    assert parse_health_check("none").kind == "none"  # type: ignore[union-attr]
    for bad in ("udp", "http:healthz", "tcp:/x", "tcp,interval=0", "tcp,rise=x", "tcp,foo=1"):
        assert isinstance(parse_health_check(bad), str), bad


def test_threshold_rise_and_fall() -> None:
    t = Threshold(rise=2, fall=3)
    assert t.up
    assert [t.observe(False) for _ in range(3)] == [False, False, True]
    assert not t.up
    assert [t.observe(True), t.observe(False), t.observe(True), t.observe(True)] == [
        False, False, False, True]
    assert t.up


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_threshold_flips_only_after_a_full_streak(
    results: list[bool], rise: int, fall: int
) -> None:
    t = Threshold(rise=rise, fall=fall)
    streak_val, streak = True, 0
    for ok in results:
        before = t.up
        streak = streak + 1 if ok == streak_val else 1
        streak_val = ok
        flipped = t.observe(ok)
        assert flipped == (t.up != before)
        if flipped:
            assert t.up == ok and streak >= (rise if ok else fall)


async def _serve(status: bytes = b"200 OK") -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 " + status + b"\r\nContent-Length: 2\r\n\r\nhi")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _held_port() -> socket.socket:
    """127.0.0.1 at a port the kernel chose, bound (SO_REUSEPORT) and not listening: while
    it is open a connection to the port is refused, and no other process can take the port
    (a listener of ours may share it, SO_REUSEPORT, and this socket may listen later)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_probes_against_loopback() -> None:
    async def main() -> None:
        ok_srv, ok_port = await _serve()
        bad_srv, bad_port = await _serve(b"503 Service Unavailable")
        async with ok_srv, bad_srv:
            assert (await tcp_connect("127.0.0.1", ok_port)).ok
            good = await http_get("127.0.0.1", ok_port, "/healthz")
            assert good.ok and good.status == 200 and good.body == b"hi"
            bad = await http_get("127.0.0.1", bad_port, "/healthz")
            assert not bad.ok and bad.status == 503
        closed = await tcp_connect("127.0.0.1", ok_port, timeout=1.0)
        assert not closed.ok and closed.error

    asyncio.run(main())


def test_checker_takes_a_dead_backend_out_and_back() -> None:
    async def main() -> None:
        # the port stays ours while the server is down, to serve it again (nobody else's
        # socket can take it in between)
        held = _held_port()
        port = held.getsockname()[1]
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port,
                                            reuse_port=True)
        checker = HealthChecker(HealthCheckConfig(interval=0.05, timeout=0.5, rise=2, fall=2))
        flips: list[frozenset[tuple[str, int]]] = []
        checker.on_change(lambda: flips.append(checker.down()))
        try:
            checker.track({("127.0.0.1", port): ("default/web",)})
            await asyncio.sleep(0.3)
            assert checker.down() == frozenset()
            server.close()
            await server.wait_closed()
            await _until(lambda: checker.is_down("127.0.0.1", port), 10)
            assert flips == [frozenset({("127.0.0.1", port)})]
            held.listen()
            again = await asyncio.start_server(lambda r, w: w.close(), sock=held)
            async with again:
                await _until(lambda: not checker.is_down("127.0.0.1", port), 10)
            assert flips[-1] == frozenset()
            checker.track({})
            assert checker.down() == frozenset()
        finally:
            await checker.close()
            held.close()

    asyncio.run(main())


def test_checker_probes_on_its_clock_and_flips_after_fall_probes() -> None:
    """On a ManualClock the schedule is exact: one probe at tracking, then one per interval of
    clock time, none in between however long the machine takes; down after ``fall`` failures,
    up after ``rise`` successes."""

    async def main() -> None:
        clock = ManualClock()
        checker = HealthChecker(HealthCheckConfig(interval=10.0, timeout=2.0, rise=2, fall=3),
                                clock=clock)
        held = _held_port()  # nothing listens, nobody else can: every probe is refused
        port = held.getsockname()[1]
        flips: list[tuple[float, bool]] = []
        checker.on_change(lambda: flips.append((clock.now(), checker.is_down("127.0.0.1", port))))
        results: list[object] = []

        async def probed() -> None:
            """Wait (real time, generous) until one more probe result is in."""
            seen = len(results)
            for _ in range(2000):
                last = checker.last_result("127.0.0.1", port)
                if last is not None and (not results or last is not results[-1]):
                    results.append(last)
                if len(results) > seen:
                    return
                await asyncio.sleep(0.005)
            pytest.fail("no probe result")

        try:
            t0 = clock.now()
            checker.track({("127.0.0.1", port): ("default/web",)})
            await probed()
            await asyncio.sleep(0.2)  # real time passes, clock time does not: no second probe
            assert checker.last_result("127.0.0.1", port) is results[-1]
            assert not checker.is_down("127.0.0.1", port)
            await clock.advance(9.9)
            await asyncio.sleep(0.05)
            assert checker.last_result("127.0.0.1", port) is results[-1]
            await clock.advance(0.1)
            await probed()
            assert not checker.is_down("127.0.0.1", port)  # 2 failures < fall
            await clock.advance(10.0)
            await probed()
            assert checker.is_down("127.0.0.1", port)
            assert flips == [(t0 + 20.0, True)]
            held.listen()
            again = await asyncio.start_server(lambda r, w: w.close(), sock=held)
            async with again:
                await clock.advance(10.0)
                await probed()
                assert checker.is_down("127.0.0.1", port)  # 1 success < rise
                await clock.advance(10.0)
                await probed()
                assert not checker.is_down("127.0.0.1", port)
            assert flips == [(t0 + 20.0, True), (t0 + 40.0, False)]
            assert len(results) == 5
        finally:
            await checker.close()
            held.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_per_service_config_and_none() -> None:
    async def main() -> None:
        checker = HealthChecker(HealthCheckConfig(interval=0.05, fall=1))
        checker.configure({"a/skip": HealthCheckConfig(kind="none")})
        try:
            # nothing listens on port 9 on loopback: a checked target goes down, "none" stays up
            checker.track({("127.0.0.1", 9): ("a/skip",), ("127.0.0.2", 9): ("b/checked",)})
            await _until(lambda: checker.is_down("127.0.0.2", 9), 10)
            assert not checker.is_down("127.0.0.1", 9)
        finally:
            await checker.close()

    asyncio.run(main())


def test_announcement_gate() -> None:
    async def main() -> None:
        server, port = await _serve()
        gate = AnnouncementGate(timeout=0.5, attempts=2, retry_delay=0.01)
        async with server:
            assert (await gate.verify("127.0.0.1", port)).ok
            assert gate.is_verified(("127.0.0.1", port, "TCP"))
        gate.invalidate(("127.0.0.1", port, "TCP"))
        assert not (await gate.verify("127.0.0.1", port)).ok
        assert not gate.is_verified(("127.0.0.1", port, "TCP"))

    asyncio.run(main())


def test_announcement_gate_udp_needs_an_answer_and_sctp_stays_unverified() -> None:
    """UDP: an answer verifies, an ICMP port unreachable refuses, silence leaves it unverified
    (announceable, never counted as verified); SCTP is unverified without a probe."""

    class Answer(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data[:2] + b"answer", addr)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = AnnouncementGate(timeout=0.3, attempts=2, retry_delay=0.01)
        answering, _ = await loop.create_datagram_endpoint(Answer, local_addr=("127.0.0.1", 0))
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            silent.bind(("127.0.0.1", 0))
            port = answering.get_extra_info("sockname")[1]
            quiet = silent.getsockname()[1]
            ok = await gate.verify("127.0.0.1", port, "UDP")
            assert ok.ok and ok.body.endswith(b"answer")
            assert gate.is_verified(("127.0.0.1", port, "UDP"))
            assert gate.state(("127.0.0.1", port, "UDP")) == "verified"

            no_answer = await gate.verify("127.0.0.1", quiet, "UDP")
            key = ("127.0.0.1", quiet, "UDP")
            assert not no_answer.ok and no_answer.error == "no answer: unverified"
            assert not gate.is_verified(key) and gate.may_announce(key)
            assert gate.unverified() == {key}
            assert silent.recv(512)[2:4] == b"\x00\x00"  # the DNS query arrived (flags 0)
        finally:
            answering.close()
            silent.close()
        refused = await gate.verify("127.0.0.1", port, "UDP")  # nothing bound there now
        assert not refused.ok and refused.error == "refused"
        assert not gate.may_announce(("127.0.0.1", port, "UDP"))

        sctp = await gate.verify("127.0.0.1", 9, "SCTP")
        assert not sctp.ok and sctp.error == "SCTP: unverified"
        assert not gate.is_verified(("127.0.0.1", 9, "SCTP"))
        assert gate.may_announce(("127.0.0.1", 9, "SCTP"))
        gate.invalidate(("127.0.0.1", 9, "SCTP"))
        assert not gate.may_announce(("127.0.0.1", 9, "SCTP"))

    asyncio.run(main())


async def _until(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)
