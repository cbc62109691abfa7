"""A session's timers with a fake clock: keepalives, the hold timer, hold time 0, timers due
together, and each state's first deadline (RFC 4271 §8.2.2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from session_driver import (
    A_CFG,
    B_CFG,
    Pair,
    drain,
    established,
    messages,
    of,
    open_bytes,
    opened,
    state,
)

from vipcast.proto.bgp import CloseWanted, ConnectWanted, Session, SessionDown, State
from vipcast.proto.bgp.messages import Keepalive, Message, Notification


def test_keepalives_and_hold_timer() -> None:
    pair = Pair()
    pair.connect()
    before = pair.a.stats.keepalives_sent
    pair.advance(10.0)
    assert pair.a.stats.keepalives_sent == before + 1
    assert pair.a.state is State.ESTABLISHED
    # b goes silent: a's hold timer (30 s) fires
    silent = Session(A_CFG)
    silent.start(0)
    silent.connection_made(0, "192.0.2.1")
    peer = Session(B_CFG)
    peer.start(0)
    peer.connection_made(0, "192.0.2.2")
    peer.receive_data(silent.data_to_send(), 0)
    silent.receive_data(peer.data_to_send(), 0)
    peer.receive_data(silent.data_to_send(), 0)
    assert silent.state is State.ESTABLISHED
    drain(silent)
    assert silent.next_deadline() == pytest.approx(10.0)
    for t in (10, 20, 30):
        silent.handle_timer(t)
    events = drain(silent)
    assert state(silent) is State.IDLE
    assert messages(silent.data_to_send())[-1] == Notification(4, 0)
    down = of(SessionDown, events)
    assert down and down[0].sent and down[0].reason == "hold timer expired"
    assert of(CloseWanted, events)
    # automatic restart after idle_hold_time
    silent.handle_timer(30 + A_CFG.idle_hold_time)
    assert state(silent) is State.CONNECT and of(ConnectWanted, drain(silent))


def test_hold_time_zero_disables_timers() -> None:
    pair = Pair(replace(A_CFG, hold_time=0), B_CFG)
    pair.connect()
    assert pair.a.state is State.ESTABLISHED
    assert pair.a.next_deadline() is None and pair.b.next_deadline() is None


def test_timers_due_together_fire_once_each_in_deadline_order() -> None:
    s = established(replace(A_CFG, hold_time=3))
    # keepalive due at 2, hold at 4: one late call fires both, keepalive first
    s.handle_timer(100)
    out = messages(s.data_to_send())
    assert out == [Keepalive(), Notification(4, 0)]
    assert state(s) is State.IDLE
    # Established for 99 s (stable): the first drop restarts at once (RFC 4271 §8.1.1)
    assert s.next_deadline() == 100


def _in_open_sent() -> Session:
    return opened()


def _in_open_confirm() -> Session:
    s = opened()
    s.receive_data(open_bytes(hold_time=30), 0)
    s.data_to_send()
    drain(s)
    return s


@pytest.mark.parametrize(
    ("make", "deadline", "sent", "after"),
    [
        # OpenSent waits the large hold time (RFC 4271 §8.2.2: 4 minutes) for the OPEN
        (_in_open_sent, 240.0, [Notification(4, 0)], State.IDLE),
        # OpenConfirm keeps the peer alive with keepalives (30 / 3) until its KEEPALIVE comes
        (_in_open_confirm, 10.0, [Keepalive()], State.OPEN_CONFIRM),
        # Established with hold 90 on our side, 90 on theirs: keepalive at 30
        (established, 31.0, [Keepalive()], State.ESTABLISHED),
    ],
    ids=["open-sent-hold", "open-confirm-keepalive", "established-keepalive"],
)
def test_timer_table(
    make: Callable[[], Session], deadline: float, sent: list[Message], after: State
) -> None:
    s = make()
    assert s.next_deadline() == pytest.approx(deadline)
    s.handle_timer(deadline - 0.001)
    assert s.data_to_send() == b""
    s.handle_timer(deadline)
    assert messages(s.data_to_send()) == sent
    assert state(s) is after
