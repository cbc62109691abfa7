"""Peer oscillation damping (RFC 4271 §8.1.1 DampPeerOscillations) with a fake clock.

The first drop after a stable session restarts at once (a BFD Down, a lost connection: the
session comes back as fast as ConnectRetry lets it); each further drop in a row waits the idle
hold, twice as long each time, up to ``idle_hold_max``; a session that stays Established for
``stable_time`` ends the row. During an idle hold the session is Idle and takes no connection.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from session_driver import A_CFG, B_CFG, Pair, drain, of, state

from vipcast.proto.bgp import ConnectWanted, SessionConfig, State
from vipcast.proto.bgp.config import idle_hold

CFG = replace(A_CFG, idle_hold_time=1.0, idle_hold_max=8.0, stable_time=10.0)


def test_idle_hold_schedule() -> None:
    assert [idle_hold(CFG, n) for n in range(1, 8)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert idle_hold(CFG, 10_000) == 8.0  # no overflow on a peer that flaps for ever


def test_config_rejects_a_cap_below_the_base() -> None:
    with pytest.raises(ValueError, match="idle_hold_max"):
        SessionConfig(65001, 65002, "192.0.2.1", idle_hold_time=5.0, idle_hold_max=1.0)
    with pytest.raises(ValueError, match="stable_time"):
        SessionConfig(65001, 65002, "192.0.2.1", stable_time=-1.0)


def _drop_and_restart(pair: Pair, up_for: float) -> float:
    """Keep the session Established ``up_for`` seconds, drop the connection, and return the
    idle hold the session armed (a must be Idle, not connecting, until it passes)."""
    for _ in range(int(up_for // 5)):
        pair.advance(5.0)  # keepalives flow: the hold timers do not expire
    pair.advance(up_for % 5)
    assert pair.a.state is State.ESTABLISHED
    pair.a.connection_lost(pair.now)
    pair.b.connection_lost(pair.now)
    drain(pair.a)
    assert state(pair.a) is State.IDLE
    deadline = pair.a.next_deadline()
    assert deadline is not None
    hold = deadline - pair.now
    if hold > 0:
        # Idle until the hold passes: no ConnectWanted a moment before it
        pair.a.handle_timer(deadline - 0.01)
        assert state(pair.a) is State.IDLE and not of(ConnectWanted, drain(pair.a))
    pair.now = deadline
    pair.a.handle_timer(pair.now)
    assert state(pair.a) is State.CONNECT and of(ConnectWanted, drain(pair.a))
    # the connection comes back: Established again
    pair.a.connection_made(pair.now, "192.0.2.1")
    pair.b.start(pair.now)
    pair.b.connection_made(pair.now, "192.0.2.2")
    pair.pump()
    assert pair.a.state is State.ESTABLISHED
    return hold


def test_a_flapping_peer_waits_longer_each_time_and_a_stable_session_forgets() -> None:
    pair = Pair(CFG, B_CFG)
    pair.connect()
    assert pair.a.state is State.ESTABLISHED
    # stable, then dropped: back at once; then it flaps (up 1 s each time): 1, 2, 4, 8, 8 s
    holds = [_drop_and_restart(pair, 60.0)]
    holds += [_drop_and_restart(pair, 1.0) for _ in range(5)]
    assert holds == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert pair.a.oscillations == 6
    # Established for stable_time: the row ends, the next drop restarts at once again
    assert _drop_and_restart(pair, CFG.stable_time) == 0.0
    assert pair.a.oscillations == 1
    assert _drop_and_restart(pair, 0.5) == 1.0


def test_a_peer_that_refuses_every_open_is_damped_too() -> None:
    """Never Established (the peer answers each OPEN with a NOTIFICATION): the drops still
    count, so the restarts spread out instead of hammering the peer."""
    from vipcast.proto.bgp.messages import Notification, encode_message

    pair = Pair(CFG, B_CFG)
    holds = []
    pair.a.start(pair.now)
    for _ in range(4):
        drain(pair.a)
        pair.a.connection_made(pair.now, "192.0.2.1")
        pair.a.data_to_send()
        assert pair.a.state is State.OPEN_SENT
        pair.a.receive_data(encode_message(Notification(2, 2)), pair.now)  # Bad Peer AS
        assert state(pair.a) is State.IDLE
        deadline = pair.a.next_deadline()
        assert deadline is not None
        holds.append(deadline - pair.now)
        pair.now = deadline
        pair.a.handle_timer(pair.now)
        assert state(pair.a) is State.CONNECT
    assert holds == [0.0, 1.0, 2.0, 4.0]


def test_idle_refuses_a_connection_during_the_hold() -> None:
    """RFC 4271 §8.2.2 Idle: an incoming connection is refused (the driver closes it)."""
    pair = Pair(CFG, B_CFG)
    pair.connect()
    _drop_and_restart(pair, 60.0)
    pair.advance(1.0)
    assert pair.a.state is State.ESTABLISHED
    pair.a.connection_lost(pair.now)
    drain(pair.a)
    assert pair.a.next_deadline() == pair.now + 1.0  # the second drop in a row
    pair.a.connection_made(pair.now, "192.0.2.1")
    assert state(pair.a) is State.IDLE
    assert pair.a.data_to_send() == b""  # no OPEN
