"""A session's life with a fake clock: establishing and what it negotiates, connecting,
retrying, stopping, restarting after a NOTIFICATION, collisions, its configuration."""

from __future__ import annotations

from dataclasses import replace

import pytest
from session_driver import A_CFG, B_CFG, Pair, drain, messages, of, open_bytes, opened, state

from vipcast.proto.bgp import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    CloseWanted,
    ConnectWanted,
    EndOfRibReceived,
    Established,
    Initiator,
    NotificationReceived,
    Session,
    SessionDown,
    State,
    collision_winner,
)
from vipcast.proto.bgp.capabilities import GracefulRestart
from vipcast.proto.bgp.messages import Notification


def test_establishes_and_negotiates() -> None:
    pair = Pair()
    pair.connect()
    assert pair.a.state is State.ESTABLISHED and pair.b.state is State.ESTABLISHED
    (up,) = of(Established, pair.events["a"])
    assert isinstance(up, Established)
    n = up.negotiated
    assert (n.hold_time, n.keepalive_time, n.peer_asn) == (30, 10.0, 65002)
    assert n.families == {IPV4_UNICAST, IPV6_UNICAST}
    assert n.four_octet_as and n.extended_messages and n.route_refresh and not n.ibgp
    assert of(ConnectWanted, pair.events["a"]) and not of(ConnectWanted, pair.events["b"])
    # End-of-RIB for each family right after the (empty) initial table
    assert {e.family for e in of(EndOfRibReceived, pair.events["b"])} == {
        IPV4_UNICAST,
        IPV6_UNICAST,
    }


def test_stop_sends_shutdown_communication_and_stays_down() -> None:
    pair = Pair()
    pair.connect()
    pair.a.stop(pair.now, "maintenance")
    pair.pump()
    (note,) = of(NotificationReceived, pair.events["b"])
    assert note.notification.shutdown_message() == "maintenance"
    assert pair.a.state is State.IDLE and pair.a.next_deadline() is None
    assert pair.b.state is State.IDLE and pair.b.next_deadline() is not None


def test_notification_received_restarts_later() -> None:
    pair = Pair()
    pair.connect()
    pair.b.stop(pair.now)
    pair.pump()
    down = of(SessionDown, pair.events["a"])
    assert down and not down[0].sent
    assert pair.a.stats.last_error and "CEASE" in pair.a.stats.last_error
    pair.advance(A_CFG.idle_hold_time)
    assert pair.a.state is State.CONNECT


def test_connect_failure_and_retry() -> None:
    s = Session(A_CFG)
    s.start(0)
    assert of(ConnectWanted, drain(s))
    s.connection_lost(1)  # refused
    assert s.state is State.ACTIVE
    s.handle_timer(1 + A_CFG.connect_retry_time)
    assert state(s) is State.CONNECT and of(ConnectWanted, drain(s))


def test_idle_refuses_connections_and_passive_never_connects() -> None:
    s = Session(A_CFG)
    s.connection_made(0)
    assert of(CloseWanted, drain(s)) and s.state is State.IDLE
    p = Session(B_CFG)
    p.start(0)
    assert p.state is State.ACTIVE and not of(ConnectWanted, drain(p))
    assert p.next_deadline() is None


def test_collision_winner() -> None:
    assert collision_winner("192.0.2.2", "192.0.2.1", 1, 2) is Initiator.LOCAL
    assert collision_winner("192.0.2.1", "192.0.2.2", 1, 2) is Initiator.REMOTE
    assert collision_winner("10.0.0.1", "9.255.255.255", 1, 2) is Initiator.LOCAL  # numeric
    assert collision_winner("192.0.2.1", "192.0.2.1", 65002, 65001) is Initiator.LOCAL
    s = opened()
    s.receive_data(open_bytes(), 1)
    assert s.peer_router_id == "192.0.2.2"
    s.data_to_send()
    s.resolve_collision(1)
    assert messages(s.data_to_send()) == [Notification(6, 7)]
    assert s.state is State.IDLE and s.next_deadline() is None


def test_graceful_restart_capability() -> None:
    cfg = replace(A_CFG, graceful_restart=True, restarting=True, restart_time=90)
    s = Session(cfg)
    (gr,) = [c for c in s.local_open.capabilities if isinstance(c, GracefulRestart)]
    assert gr.restarting and gr.restart_time == 90
    assert {f for f, _ in gr.families} == {IPV4_UNICAST, IPV6_UNICAST}


def test_bad_config_is_rejected() -> None:
    for bad in (
        {"hold_time": 2},
        {"local_asn": 0},
        {"router_id": "0.0.0.0"},
        {"connect_retry_time": 0},
        {"keepalive_time": 0},
    ):
        with pytest.raises(ValueError):
            replace(A_CFG, **bad)
