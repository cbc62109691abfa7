"""Hypothesis: the session survives any sequence of driver calls and peer bytes, and its
Adj-RIB-Out brings the peer to exactly each desired table, announcing only what changed."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bgp import RouteAttributes, Session, SessionConfig, State
from vipcast.proto.bgp.attributes import (
    AsPath,
    MpReach,
    MpUnreach,
    NextHop,
    OriginAttr,
    WireContext,
)
from vipcast.proto.bgp.capabilities import FourOctetAs, Multiprotocol
from vipcast.proto.bgp.constants import IPV4_UNICAST, IPV6_UNICAST, MARKER
from vipcast.proto.bgp.events import SessionEvent
from vipcast.proto.bgp.messages import (
    Keepalive,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
)
from vipcast.proto.bgp.update import Update
from vipcast.proto.bgp.wire import Framer

PEER_OPEN = encode_message(
    Open(65002, 9, "192.0.2.2", (Multiprotocol(IPV4_UNICAST), FourOctetAs(65002)))
)

VALID_UPDATE = encode_message(
    Update(
        attributes=(OriginAttr(0), AsPath(((2, (65002,)),)), NextHop("192.0.2.2")),
        nlri=("198.51.100.0/24",),
    )
)

PEER_BYTES = [
    PEER_OPEN,
    encode_message(Keepalive()),
    VALID_UPDATE,
    VALID_UPDATE[:30],
    VALID_UPDATE[30:],
    encode_message(Notification(6, 2)),
    encode_message(RouteRefresh(IPV4_UNICAST)),
    encode_message(Open(65099, 90, "192.0.2.2")),
    MARKER + b"\x00\x17\x02\x00\x05\x00\x00",
    b"\x00" * 19,
]

ROUTES = [
    {},
    {"198.51.100.1/32": RouteAttributes()},
    {"198.51.100.1/32": RouteAttributes(med=1), "2001:db8::/64": RouteAttributes()},
]

ops = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["start", "stop", "made", "lost", "timer", "collision", "drain"]),
            st.floats(0, 50),
        ),
        st.tuples(st.just("data"), st.sampled_from(PEER_BYTES)),
        st.tuples(st.just("garbage"), st.binary(max_size=40)),
        st.tuples(st.just("routes"), st.sampled_from(range(len(ROUTES)))),
    ),
    max_size=40,
)

EVENT_TYPES = SessionEvent.__args__

WARM_UP: list[tuple[str, object]] = [
    ("start", 0.0),
    ("made", 0.0),
    ("data", PEER_OPEN),
    ("data", encode_message(Keepalive())),
]


@given(ops, st.booleans(), st.booleans())
def test_session_survives_any_sequence(
    sequence: list[tuple[str, object]], passive: bool, warm: bool
) -> None:
    """From Idle, or from Established (``warm``), any calls leave a consistent session."""
    cfg = SessionConfig(65001, 65002, "192.0.2.1", hold_time=9, passive=passive)
    s = Session(cfg)
    now = 0.0
    for op, arg in (WARM_UP if warm else []) + sequence:
        if op == "start":
            s.start(now)
        elif op == "stop":
            s.stop(now)
        elif op == "made":
            s.connection_made(now, "192.0.2.1")
        elif op == "lost":
            s.connection_lost(now)
        elif op == "timer":
            assert isinstance(arg, float)
            now += arg
            s.handle_timer(now)
        elif op == "collision":
            s.resolve_collision(now)
        elif op in ("data", "garbage"):
            assert isinstance(arg, bytes)
            s.receive_data(arg, now)
        elif op == "routes":
            assert isinstance(arg, int)
            s.set_routes(ROUTES[arg])
        s.data_to_send()
        while (event := s.next_event()) is not None:
            assert isinstance(event, EVENT_TYPES)
        assert isinstance(s.state, State)
        assert (s.state is State.ESTABLISHED) <= (s.negotiated is not None)
        if s.state in (State.IDLE, State.CONNECT, State.ACTIVE):
            assert s.negotiated is None
        deadline = s.next_deadline()
        assert deadline is None or deadline >= now - 50


ROUTE_POOL = [f"198.51.100.{i}/32" for i in range(12)] + [
    str(ipaddress.IPv6Network(f"2001:db8::{i:x}/128")) for i in range(6)
]

ATTR_POOL = [
    RouteAttributes(),
    RouteAttributes(med=5),
    RouteAttributes(communities=(1, 2)),
    RouteAttributes(large_communities=((1, 2, 3),), local_pref=50),
]

route_tables = st.dictionaries(st.sampled_from(ROUTE_POOL), st.sampled_from(ATTR_POOL), max_size=18)

PEER_OPEN_V4_V6 = encode_message(
    Open(
        65002,
        90,
        "192.0.2.2",
        (Multiprotocol(IPV4_UNICAST), Multiprotocol(IPV6_UNICAST), FourOctetAs(65002)),
    )
)


def _replay(view: dict[str, tuple[object, ...]], raw: bytes) -> tuple[set[str], set[str]]:
    """Apply UPDATEs to the peer's view (prefix -> plain attributes); return what was
    announced and what was withdrawn."""
    announced: set[str] = set()
    withdrawn: set[str] = set()
    framer = Framer(65535)
    framer.feed(raw)
    while (item := framer.next_message()) is not None:
        msg = decode_message(item[0], item[1], WireContext())
        if not isinstance(msg, Update):
            continue
        assert not msg.treat_as_withdraw
        plain = tuple(a for a in msg.attributes if not isinstance(a, MpReach | MpUnreach))
        gone = set(msg.withdrawn)
        new = set(msg.nlri)
        for attr in msg.attributes:
            if isinstance(attr, MpUnreach):
                gone.update(attr.withdrawn)
            elif isinstance(attr, MpReach):
                new.update(attr.nlri)
        for prefix in gone:
            view.pop(prefix, None)
        for prefix in new:
            view[prefix] = plain
        announced |= new
        withdrawn |= gone
    return announced, withdrawn


@given(st.lists(route_tables, min_size=1, max_size=6), st.integers(0, 5))
def test_adj_rib_out_converges_to_every_desired_table(
    tables: list[dict[str, RouteAttributes]], established_after: int
) -> None:
    """Whatever the sequence of set_routes, the peer ends with exactly the desired routes;
    only changed routes are announced, only removed ones withdrawn."""
    s = Session(SessionConfig(65001, 65002, "192.0.2.1", next_hop_v6="2001:db8::1"))
    view: dict[str, tuple[object, ...]] = {}
    previous: dict[str, RouteAttributes] = {}
    for step, table in enumerate(tables):
        if step == established_after:
            s.start(0)
            s.connection_made(0, "192.0.2.1")
            s.receive_data(PEER_OPEN_V4_V6 + encode_message(Keepalive()), 0)
            assert s.state is State.ESTABLISHED
            previous = tables[step - 1] if step else {}
            initial, _ = _replay(view, s.data_to_send())
            assert initial == set(previous) == set(view)
        s.set_routes(table)
        announced, withdrawn = _replay(view, s.data_to_send())
        if s.state is not State.ESTABLISHED:
            assert (announced, withdrawn) == (set(), set())
            continue
        assert set(view) == set(table)
        assert s.stats.prefixes_advertised == len(table)
        assert announced == {p for p, a in table.items() if previous.get(p) != a}
        assert withdrawn == set(previous) - set(table)
        for family_routes in (
            {p: a for p, a in table.items() if ":" not in p},
            {p: a for p, a in table.items() if ":" in p},
        ):
            for attrs in set(family_routes.values()):
                same = [view[p] for p, a in family_routes.items() if a == attrs]
                assert len(set(same)) == 1  # equal attributes arrive equal
        previous = table
