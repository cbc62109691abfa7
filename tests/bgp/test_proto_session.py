"""Session behaviour with a fake clock: two sessions wired back to back, or one against bytes."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import pytest

from vipcast.proto.bgp import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    CloseWanted,
    ConnectWanted,
    EndOfRibReceived,
    Established,
    Initiator,
    NotificationReceived,
    NotificationSent,
    RouteAttributes,
    RouteRefreshReceived,
    RoutesReceived,
    Session,
    SessionConfig,
    SessionDown,
    SessionEvent,
    State,
    collision_winner,
)
from vipcast.proto.bgp.attributes import (
    As4Path,
    AsPath,
    LocalPref,
    MpReach,
    OpaqueAttribute,
    WireContext,
)
from vipcast.proto.bgp.capabilities import FourOctetAs, GracefulRestart, Multiprotocol
from vipcast.proto.bgp.constants import MARKER
from vipcast.proto.bgp.messages import (
    Keepalive,
    Message,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
)
from vipcast.proto.bgp.update import Update
from vipcast.proto.bgp.wire import Framer

A_CFG = SessionConfig(65001, 65002, "192.0.2.1", hold_time=90, next_hop_v6="2001:db8::1")
E = TypeVar("E")

B_CFG = SessionConfig(65002, 65001, "192.0.2.2", hold_time=30, passive=True)


def drain(session: Session) -> list[SessionEvent]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out


def messages(raw: bytes, ctx: WireContext | None = None) -> list[Message]:
    framer = Framer(65535)
    framer.feed(raw)
    out = []
    while (item := framer.next_message()) is not None:
        out.append(decode_message(item[0], item[1], ctx or WireContext()))
    return out


class Pair:
    """Two sessions over an in-memory 'TCP' with a fake clock."""

    def __init__(self, a: SessionConfig = A_CFG, b: SessionConfig = B_CFG) -> None:
        self.a, self.b = Session(a), Session(b)
        self.now = 0.0
        self.events: dict[str, list[SessionEvent]] = {"a": [], "b": []}
        self.wire: dict[str, list[Message]] = {"a": [], "b": []}  # what each side sent

    def connect(self) -> None:
        self.a.start(self.now)
        self.b.start(self.now)
        self.a.connection_made(self.now, "192.0.2.1")
        self.b.connection_made(self.now, "192.0.2.2")
        self.pump()

    def pump(self) -> None:
        for _ in range(100):
            moved = False
            for name, src, dst in (("a", self.a, self.b), ("b", self.b, self.a)):
                data = src.data_to_send()
                if data:
                    moved = True
                    self.wire[name] += messages(data)
                    dst.receive_data(data, self.now)
            for name, src, dst in (("a", self.a, self.b), ("b", self.b, self.a)):
                new = drain(src)
                self.events[name] += new
                if any(isinstance(e, CloseWanted) for e in new):
                    data = src.data_to_send()
                    self.wire[name] += messages(data)
                    dst.receive_data(data, self.now)
                    dst.connection_lost(self.now)
                    moved = True
            if not moved:
                return
        raise AssertionError("pump did not settle")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.a.handle_timer(self.now)
        self.b.handle_timer(self.now)
        self.pump()


def state(session: Session) -> State:
    """The state, read through a call so mypy does not narrow it between steps."""
    return session.state


def of(kind: type[E], events: list[SessionEvent]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


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


def test_routes_before_and_after_establishment_are_diffed() -> None:
    pair = Pair()
    routes = {f"198.51.100.{i}/32": RouteAttributes() for i in range(10)}
    routes["2001:db8::5/128"] = RouteAttributes(med=5)
    pair.a.set_routes(routes)
    pair.connect()
    assert pair.b.stats.prefixes_received == 11
    assert pair.a.stats.prefixes_advertised == 11
    del routes["198.51.100.0/32"]
    routes["198.51.100.1/32"] = RouteAttributes(communities=(7,))
    pair.a.set_routes(routes)
    pair.pump()
    recv = of(RoutesReceived, pair.events["b"])
    assert recv[-2:] == [RoutesReceived(0, 1), RoutesReceived(1, 0)]
    pair.a.set_routes(routes)  # no change, no message
    sent = pair.a.stats.updates_sent
    pair.pump()
    assert pair.a.stats.updates_sent == sent
    assert pair.a.stats.prefixes_advertised == 10


def test_invalid_prefix_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Session(A_CFG).set_routes({"192.0.2.1/24": RouteAttributes()})


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


def open_bytes(**kw: object) -> bytes:
    base: dict[str, object] = {
        "asn": 65002,
        "hold_time": 90,
        "router_id": "192.0.2.2",
        "capabilities": (Multiprotocol(IPV4_UNICAST), FourOctetAs(65002)),
    }
    base.update(kw)
    return encode_message(Open(**base))  # type: ignore[arg-type]


def opened(config: SessionConfig = A_CFG) -> Session:
    s = Session(config)
    s.start(0)
    s.connection_made(0, "192.0.2.1")
    s.data_to_send()
    drain(s)
    return s


def established(config: SessionConfig = A_CFG, peer_open: bytes | None = None) -> Session:
    s = opened(config)
    s.receive_data((peer_open or open_bytes()) + encode_message(Keepalive()), 1)
    assert s.state is State.ESTABLISHED
    s.data_to_send()
    drain(s)
    return s


@pytest.mark.parametrize(
    ("raw", "code", "subcode"),
    [
        (open_bytes(capabilities=(FourOctetAs(65099),)), 2, 2),  # bad peer AS
        (open_bytes(asn=65099, capabilities=()), 2, 2),
        (open_bytes(hold_time=2), 2, 6),
        (open_bytes(router_id="0.0.0.0"), 2, 3),
        (open_bytes(version=3), 2, 1),
        (MARKER + bytes.fromhex("002001") + bytes.fromhex("04fdea005ac000020203010100"), 2, 4),
        (b"\x00" * 19, 1, 1),
        (encode_message(Keepalive()), 5, 1),  # KEEPALIVE in OpenSent
    ],
    ids=[
        "4-octet-as-mismatch",
        "my-as-mismatch",
        "hold-time-2",
        "router-id-zero",
        "version-3",
        "optional-parameter-1",
        "bad-marker",
        "keepalive-in-open-sent",
    ],
)
def test_errors_before_established(raw: bytes, code: int, subcode: int) -> None:
    s = opened()
    s.receive_data(raw, 1)
    events = drain(s)
    (sent,) = of(NotificationSent, events)
    assert (sent.notification.code, sent.notification.subcode) == (code, subcode)
    assert messages(s.data_to_send())[-1] == sent.notification
    assert of(SessionDown, events)
    assert of(CloseWanted, events)
    assert s.state is State.IDLE
    s.receive_data(encode_message(Keepalive()), 2)  # ignored once closed
    assert s.data_to_send() == b""


def test_update_in_open_confirm_is_fsm_error_2() -> None:
    s = opened()
    s.receive_data(open_bytes(), 1)
    s.data_to_send()
    s.receive_data(encode_message(Update()), 1)
    assert messages(s.data_to_send()) == [Notification(5, 2)]


def test_open_in_established_is_fsm_error_3() -> None:
    s = established()
    s.receive_data(open_bytes(), 2)
    assert messages(s.data_to_send()) == [Notification(5, 3)]


def test_malformed_update_resets_with_update_error() -> None:
    s = established()
    bad = MARKER + struct.pack("!HB", 19 + 4, 2) + b"\x00\x09\x00\x00"
    s.receive_data(bad, 2)
    (note,) = messages(s.data_to_send())
    assert isinstance(note, Notification) and note.code == 3
    assert s.state is State.IDLE


def test_treat_as_withdraw_keeps_the_session() -> None:
    s = established()
    attrs = bytes.fromhex("40010103")  # bad ORIGIN value
    body = b"\0\0" + struct.pack("!H", len(attrs)) + attrs + bytes.fromhex("18c63364")
    s.receive_data(MARKER + struct.pack("!HB", 19 + len(body), 2) + body, 2)
    assert s.state is State.ESTABLISHED
    assert drain(s) == [RoutesReceived(0, 1, True)]


def test_route_refresh_resends_the_family() -> None:
    s = established()
    s.set_routes({"198.51.100.1/32": RouteAttributes(), "2001:db8::1/128": RouteAttributes()})
    first = messages(s.data_to_send())
    assert len(first) == 1  # the peer negotiated IPv4 only
    s.receive_data(encode_message(RouteRefresh(IPV4_UNICAST)), 3)
    assert messages(s.data_to_send()) == first
    assert drain(s) == [RouteRefreshReceived(IPV4_UNICAST)]
    s.receive_data(encode_message(RouteRefresh(IPV6_UNICAST)), 3)  # not negotiated: ignored
    assert s.data_to_send() == b"" and s.state is State.ESTABLISHED
    s.receive_data(encode_message(RouteRefresh(IPV4_UNICAST, subtype=1)), 3)  # BoRR: ignored
    assert s.data_to_send() == b"" and drain(s) == []


def test_route_refresh_without_the_capability_is_a_bad_type() -> None:
    s = established(replace(A_CFG, route_refresh=False))
    s.receive_data(encode_message(RouteRefresh(IPV4_UNICAST)), 3)
    assert messages(s.data_to_send()) == [Notification(1, 3, b"\x05")]


def test_four_byte_asn_towards_a_two_byte_peer() -> None:
    cfg = replace(A_CFG, local_asn=4200000000)
    s = opened(cfg)
    s.receive_data(open_bytes(capabilities=()) + encode_message(Keepalive()), 1)
    assert s.state is State.ESTABLISHED
    assert s.local_open.asn == 23456
    s.data_to_send()
    s.set_routes({"198.51.100.1/32": RouteAttributes()})
    (update,) = messages(s.data_to_send(), WireContext(four_octet_as=False))
    assert isinstance(update, Update)
    assert AsPath(((2, (23456,)),)) in update.attributes
    assert As4Path(((2, (4200000000,)),)) in update.attributes


def test_ibgp_sends_local_pref_and_empty_as_path() -> None:
    cfg = replace(A_CFG, peer_asn=65001)
    s = established(cfg, open_bytes(asn=65001, capabilities=(FourOctetAs(65001),)))
    assert s.negotiated is not None and s.negotiated.ibgp
    s.set_routes({"198.51.100.1/32": RouteAttributes()})
    (update,) = messages(s.data_to_send(), WireContext(ibgp=True))
    assert isinstance(update, Update)
    assert LocalPref(100) in update.attributes and AsPath(()) in update.attributes


def test_ipv6_with_link_local_next_hop() -> None:
    cfg = replace(A_CFG, next_hop_v6_link_local="fe80::1")
    peer = open_bytes(capabilities=(Multiprotocol(IPV6_UNICAST), FourOctetAs(65002)))
    s = established(cfg, peer)
    s.set_routes({"2001:db8::1/128": RouteAttributes()})
    (update,) = messages(s.data_to_send())
    assert isinstance(update, Update)
    (mp,) = [a for a in update.attributes if isinstance(a, MpReach)]
    assert mp.next_hops == ("2001:db8::1", "fe80::1")


def test_extended_messages_only_when_both_offer() -> None:
    s = established()  # the peer did not offer RFC 8654
    s.set_routes({f"198.18.{i // 256}.{i % 256}/32": RouteAttributes() for i in range(5000)})
    framer = Framer(4096)  # raises on anything longer than 4096
    framer.feed(s.data_to_send())
    count = 0
    while framer.next_message() is not None:
        count += 1
    assert count >= 5 and framer.buffered == 0
    assert s.negotiated is not None and s.negotiated.max_message_len == 4096


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


def test_received_routes_are_not_stored() -> None:
    s = established()
    nlri = b"".join(b"\x20" + struct.pack("!I", 0xC6120000 + i) for i in range(800))
    attrs = bytes.fromhex("4001010040020602010000fdea400304c0000202")
    body = b"\0\0" + struct.pack("!H", len(attrs)) + attrs + nlri
    update = MARKER + struct.pack("!HB", 19 + len(body), 2) + body
    s.receive_data(update * 5, 2)
    drain(s)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for i in range(50):
            s.receive_data(update * 5, 3 + i)
            drain(s)
        now, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.stats.prefixes_received == 800 * 5 * 51
    assert now - base < 64_000


def test_unknown_transitive_attribute_passes_through_decoding() -> None:
    s = established()
    attrs = bytes.fromhex("4001010040020602010000fdea400304c0000202c0630101")
    body = b"\0\0" + struct.pack("!H", len(attrs)) + attrs + bytes.fromhex("18c63364")
    raw = MARKER + struct.pack("!HB", 19 + len(body), 2) + body
    s.receive_data(raw, 2)
    assert drain(s) == [RoutesReceived(1, 0)]
    (update,) = messages(raw)
    assert isinstance(update, Update)
    assert OpaqueAttribute(0xC0, 99, b"\x01") in update.attributes


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


def test_timers_due_together_fire_once_each_in_deadline_order() -> None:
    s = established(replace(A_CFG, hold_time=3))
    # keepalive due at 2, hold at 4: one late call fires both, keepalive first
    s.handle_timer(100)
    out = messages(s.data_to_send())
    assert out == [Keepalive(), Notification(4, 0)]
    assert state(s) is State.IDLE
    assert s.next_deadline() == 100 + A_CFG.idle_hold_time


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
