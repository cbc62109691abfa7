"""Two vipcast BFD endpoints over loopback: bring-up, failure detection, callbacks, status."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
from bfdlab import MutableSocket
from prometheus_client import CollectorRegistry

from vipcast.proto.bfd import Diag, SessionConfig, State, StateChanged
from vipcast.runtime.bfd.manager import BfdManager
from vipcast.runtime.clock import ManualClock

FAST = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3)


@pytest.fixture
def mutable_sockets() -> tuple[Callable[[int], socket.socket], list[MutableSocket]]:
    made: list[MutableSocket] = []

    def factory(family: int) -> socket.socket:
        s = MutableSocket(family, socket.SOCK_DGRAM)
        made.append(s)
        return s

    return factory, made


async def _advance_until(clock: ManualClock, done: Callable[[], bool], *, limit: float,
                         step: float = 0.01) -> float:
    """Advance the manual clock in ``step``s until ``done()``; the clock time that took.

    Fails after ``limit`` seconds of clock time (protocol time, not the machine's: a loaded
    machine only makes the test slower, never changes what it sees)."""
    start = clock.now()
    while not done():
        assert clock.now() - start < limit, f"not reached within {limit} s of clock time"
        await clock.advance(step)
        # the packets sent at this instant cross loopback: let the readers run
        for _ in range(3):
            await asyncio.sleep(0.001)
    return clock.now() - start


def test_loopback_up_detect_recover_close(
    loopback_pair: tuple[str, str],
    mutable_sockets: tuple[Callable[[int], socket.socket], list[MutableSocket]],
) -> None:
    """Both sessions run on one ManualClock: the test moves protocol time itself, so the
    detection bounds below are the protocol's (RFC 5880 6.8.4), exact on any machine."""
    a_addr, b_addr = loopback_pair
    factory, b_sockets = mutable_sockets

    async def main() -> None:
        clock = ManualClock()
        registry = CollectorRegistry()
        a = BfdManager(registry=registry, clock=clock)
        b = BfdManager(socket_factory=factory, clock=clock)
        try:
            ha = a.add_peer(b_addr, a_addr, FAST)
            hb = b.add_peer(a_addr, b_addr, FAST)
            assert a.add_peer(b_addr, a_addr, FAST) is ha  # shared, held twice
            downs: list[StateChanged] = []
            ups: list[StateChanged] = []
            b_downs: list[StateChanged] = []
            ha.on_down(downs.append)
            ha.on_up(ups.append)
            hb.on_down(b_downs.append)

            both_up = lambda: ha.state is State.UP and hb.state is State.UP  # noqa: E731
            await _advance_until(clock, both_up, limit=10)
            # let the Poll Sequence settle the fast timers (0.5 s of protocol time)
            await _advance_until(clock, lambda: ha.status().tx_interval_ms == 100
                                 and (ha.status().uptime_s or 0) >= 0.5, limit=10)
            st = ha.status()
            assert (st.state, st.remote_state) == ("UP", "UP")
            assert st.tx_interval_ms == 100 and st.detection_time_ms == 300
            assert st.rx_interval_ms == 100 and st.detect_mult == 3
            assert st.last_diag == "NONE" and st.uptime_s is not None and st.uptime_s >= 0.5
            assert st.packets_received > 3 and st.packets_sent > 3
            assert len(ups) == 1

            # b falls silent: a goes Down once no packet came for its detection time (300 ms),
            # counted from b's last packet, sent at most one interval (100 ms) before the mute
            for s in b_sockets:
                s.muted = True
            muted_at = clock.now()
            while clock.now() - muted_at < 0.19:
                await clock.advance(0.01)
                await asyncio.sleep(0.001)
                assert ha.state is State.UP, f"down {clock.now() - muted_at:.2f} s after the mute"
            await _advance_until(clock, lambda: ha.state is State.DOWN, limit=1.0)
            assert clock.now() - muted_at <= 0.31, clock.now() - muted_at
            assert downs and downs[0].diag is Diag.CONTROL_DETECTION_TIME_EXPIRED
            assert ha.status().local_diag == "CONTROL_DETECTION_TIME_EXPIRED"
            assert ha.status().uptime_s is None

            for s in b_sockets:
                s.muted = False
            await _advance_until(clock, both_up, limit=10)
            assert len(ups) == 2
            # Up again: the last failure's diagnostic stays visible, uptime restarts
            back = ha.status()
            assert back.last_diag == "CONTROL_DETECTION_TIME_EXPIRED"
            assert back.uptime_s is not None and back.uptime_s < 5

            # closing a (both holds) tells b AdminDown: b goes Down but does not call on_down
            b_downs.clear()
            ha.close()
            assert ha.state is State.UP  # still held once
            ha.close()
            await _advance_until(clock, lambda: hb.state is State.DOWN, limit=5)
            assert hb.session.local_diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN
            assert b_downs == []
            assert a.sessions() == []
            text = registry.get_sample_value(
                "vipcast_bfd_state_transitions_total",
                {"peer": b_addr, "state": "UP", "diag": "NONE"},
            )
            assert text == 2
        finally:
            a.close()
            b.close()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_add_peer_on_foreign_address_fails_cleanly(loopback_pair: tuple[str, str]) -> None:
    async def main() -> None:
        m = BfdManager()
        try:
            try:
                m.add_peer("192.0.2.1", "198.51.100.77", FAST)  # not a local address
            except OSError:
                pass
            else:
                raise AssertionError("binding a foreign address must fail")
            assert m.sessions() == [] and m._listeners == {}
        finally:
            m.close()

    asyncio.run(main())


def test_garbage_is_counted_and_ignored(loopback_pair: tuple[str, str]) -> None:
    a_addr, b_addr = loopback_pair

    async def main() -> None:
        registry = CollectorRegistry()
        m = BfdManager(registry=registry)
        try:
            h = m.add_peer(b_addr, a_addr, FAST)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((b_addr, 0))
                s.sendto(b"\x20\x40", (a_addr, 3784))
                s.sendto(bytes(24), (a_addr, 3784))
                # a well-formed Down from b, but with the default TTL 64: not single hop
                s.sendto(
                    bytes.fromhex("20 40 03 18 00000001 00000000 000f4240 000f4240 00000000"),
                    (a_addr, 3784),
                )
            # the three datagrams are in the socket when sendto returns, but the manager
            # reads one per loop turn: wait (bounded) for all three to be counted, then check
            # each count exactly (a fixed sleep raced a stalled loop)
            reasons = ("TOO_SHORT", "BAD_VERSION", "BAD_TTL")

            def counted() -> bool:
                return all(
                    registry.get_sample_value(
                        "vipcast_bfd_packets_dropped_total", {"reason": reason}
                    ) is not None
                    for reason in reasons
                )

            for _ in range(600):
                if counted():
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # nothing more arrives: exactly one each
            assert (
                registry.get_sample_value(
                    "vipcast_bfd_packets_dropped_total", {"reason": "TOO_SHORT"}
                )
                == 1
            )
            assert (
                registry.get_sample_value(
                    "vipcast_bfd_packets_dropped_total", {"reason": "BAD_VERSION"}
                )
                == 1
            )
            assert (
                registry.get_sample_value(
                    "vipcast_bfd_packets_dropped_total", {"reason": "BAD_TTL"}
                )
                == 1
            )
            assert h.state is State.DOWN and h.session.remote_discr == 0
        finally:
            m.close()

    asyncio.run(main())
