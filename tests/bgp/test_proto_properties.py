"""Hypothesis: decoders raise only BGPError, encode/decode round-trips, any split frames the
same, and the session survives any sequence of driver calls and peer bytes."""

from __future__ import annotations

import ipaddress
import struct
from contextlib import suppress

from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bgp import RouteAttributes, Session, SessionConfig, State
from vipcast.proto.bgp.attributes import (
    Aggregator,
    As4Path,
    AsPath,
    AtomicAggregate,
    Attribute,
    Communities,
    LargeCommunities,
    LocalPref,
    Med,
    MpReach,
    MpUnreach,
    NextHop,
    OpaqueAttribute,
    OriginAttr,
    WireContext,
    decode_attributes,
)
from vipcast.proto.bgp.capabilities import (
    Capability,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    RouteRefreshCapability,
    UnknownCapability,
    decode_capabilities,
)
from vipcast.proto.bgp.constants import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    MARKER,
    AttrType,
    CapabilityCode,
    Family,
)
from vipcast.proto.bgp.errors import BGPError
from vipcast.proto.bgp.events import SessionEvent
from vipcast.proto.bgp.messages import (
    Keepalive,
    Message,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
)
from vipcast.proto.bgp.prefixes import encode_prefix
from vipcast.proto.bgp.update import Update, summarize_update
from vipcast.proto.bgp.wire import Framer

u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
u8 = st.integers(0, 255)
CTXS = st.builds(
    WireContext,
    four_octet_as=st.booleans(),
    ibgp=st.booleans(),
    families=st.sampled_from(
        [frozenset({IPV4_UNICAST, IPV6_UNICAST}), frozenset({IPV4_UNICAST}), frozenset()]
    ),
)


def _prefix(version: int) -> st.SearchStrategy[str]:
    bits = 32 if version == 4 else 128
    return st.tuples(st.integers(0, 2**bits - 1), st.integers(0, bits)).map(
        lambda t: (
            str(ipaddress.ip_network((t[0], t[1]), strict=False))
            if version == 4
            else str(ipaddress.IPv6Network((t[0], t[1]), strict=False))
        )
    )


v4_prefix, v6_prefix = _prefix(4), _prefix(6)
v4_addr = u32.map(lambda n: str(ipaddress.IPv4Address(n)))
v6_addr = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
next_hop = v4_addr.filter(
    lambda a: (
        not ipaddress.IPv4Address(a).is_unspecified and not ipaddress.IPv4Address(a).is_multicast
    )
)
segments = st.lists(
    st.tuples(st.sampled_from([1, 2, 3, 4]), st.lists(u32, min_size=1, max_size=8).map(tuple)),
    max_size=4,
).map(tuple)
unknown_attr_type = u8.filter(lambda t: t not in AttrType._value2member_map_)

OPTIONAL_ATTRS: list[tuple[int, st.SearchStrategy[Attribute]]] = [
    (4, st.builds(Med, u32)),
    (5, st.builds(LocalPref, u32)),
    (6, st.just(AtomicAggregate())),
    (7, st.builds(Aggregator, u32, v4_addr)),
    (8, st.builds(Communities, st.lists(u32, min_size=1, max_size=80).map(tuple))),
    (
        32,
        st.builds(
            LargeCommunities, st.lists(st.tuples(u32, u32, u32), min_size=1, max_size=5).map(tuple)
        ),
    ),
    (
        14,
        st.builds(
            MpReach,
            st.just(IPV6_UNICAST),
            st.lists(v6_addr, min_size=1, max_size=2).map(tuple),
            st.lists(v6_prefix, max_size=20).map(tuple),
        ),
    ),
    (
        15,
        st.builds(MpUnreach, st.just(IPV6_UNICAST), st.lists(v6_prefix, max_size=20).map(tuple)),
    ),
    (
        -1,
        st.builds(
            OpaqueAttribute,
            st.sampled_from([0xC0, 0xE0]),
            unknown_attr_type,
            st.binary(max_size=300),
        ),
    ),
]


@st.composite
def updates(draw: st.DrawFn) -> Update:
    attrs: list[Attribute] = [
        OriginAttr(draw(st.integers(0, 2))),
        AsPath(draw(segments)),
        NextHop(draw(next_hop)),
    ]
    for _code, strategy in draw(
        st.lists(st.sampled_from(OPTIONAL_ATTRS), unique_by=lambda x: x[0])
    ):
        attrs.append(draw(strategy))
    opaque_types = [a.type_code for a in attrs if isinstance(a, OpaqueAttribute)]
    assert len(opaque_types) == len(set(opaque_types))
    return Update(
        withdrawn=tuple(draw(st.lists(v4_prefix, max_size=20))),
        attributes=tuple(draw(st.permutations(attrs))),
        nlri=tuple(draw(st.lists(v4_prefix, max_size=20))),
    )


families = st.builds(Family, u16, u8)
capabilities: st.SearchStrategy[Capability] = st.one_of(
    st.builds(Multiprotocol, families),
    st.builds(RouteRefreshCapability, st.booleans()),
    st.just(ExtendedMessage()),
    st.builds(FourOctetAs, u32),
    st.builds(
        GracefulRestart,
        st.integers(0, 4095),
        st.booleans(),
        st.booleans(),
        st.lists(st.tuples(families, st.booleans()), max_size=4).map(tuple),
    ),
    st.builds(
        UnknownCapability,
        u8.filter(lambda c: c not in CapabilityCode._value2member_map_),
        st.binary(max_size=40),
    ),
)
opens = st.builds(
    Open,
    u16,
    u16,
    v4_addr,
    st.lists(capabilities, max_size=12).map(tuple),
    u8,
)
messages: st.SearchStrategy[Message] = st.one_of(
    opens,
    updates(),
    st.builds(Notification, u8, u8, st.binary(max_size=64)),
    st.just(Keepalive()),
    st.builds(RouteRefresh, families, u8),
)
ROUNDTRIP_CTX = WireContext(four_octet_as=True, ibgp=True)


def frames(raw: bytes) -> list[Message]:
    framer = Framer(65535)
    framer.feed(raw)
    out = []
    while (item := framer.next_message()) is not None:
        out.append(decode_message(item[0], item[1], ROUNDTRIP_CTX))
    return out


@given(messages)
def test_decode_encode_roundtrip(message: Message) -> None:
    assert frames(encode_message(message, ROUNDTRIP_CTX)) == [message]


TWO_BYTE_CTX = WireContext(four_octet_as=False, ibgp=False)
segments_2byte = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.lists(u16, min_size=1, max_size=8).map(tuple)),
    max_size=4,
).map(tuple)


@given(
    segments_2byte,
    st.one_of(st.none(), segments.filter(bool)),
    st.one_of(st.none(), st.builds(Aggregator, u16, v4_addr)),
    st.lists(v4_prefix, min_size=1, max_size=10),
)
def test_two_byte_session_roundtrip(
    path: tuple[tuple[int, tuple[int, ...]], ...],
    as4: tuple[tuple[int, tuple[int, ...]], ...] | None,
    aggregator: Aggregator | None,
    nlri: list[str],
) -> None:
    """On a session without RFC 6793, AS_PATH/AGGREGATOR are 2-byte and AS4_PATH is kept."""
    attrs: list[Attribute] = [OriginAttr(0), AsPath(path), NextHop("192.0.2.1")]
    if aggregator is not None:
        attrs.append(aggregator)
    if as4 is not None and all(t in (1, 2) for t, _ in as4):
        attrs.append(As4Path(as4))
    update = Update(attributes=tuple(attrs), nlri=tuple(nlri))
    raw = encode_message(update, TWO_BYTE_CTX)
    framer = Framer()
    framer.feed(raw)
    item = framer.next_message()
    assert item is not None
    assert decode_message(item[0], item[1], TWO_BYTE_CTX) == update


@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_any_split_frames_the_same(batch: list[Message], data: st.DataObject) -> None:
    stream = b"".join(encode_message(m, ROUNDTRIP_CTX) for m in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = Framer(65535)
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        framer.feed(stream[prev:cut])
        prev = cut
        while (item := framer.next_message()) is not None:
            got.append(decode_message(item[0], item[1], ROUNDTRIP_CTX))
    assert got == batch


@given(st.integers(0, 255), st.binary(max_size=200), CTXS)
def test_decode_any_body_raises_only_bgp_error(
    msg_type: int, body: bytes, ctx: WireContext
) -> None:
    with suppress(BGPError):
        decode_message(msg_type, body, ctx)


@given(st.binary(max_size=300))
def test_framer_any_bytes_raises_only_bgp_error(raw: bytes) -> None:
    framer = Framer()
    framer.feed(MARKER + raw)
    try:
        while framer.next_message() is not None:
            pass
    except BGPError:
        pass


attribute_blobs = st.lists(
    st.tuples(
        st.sampled_from([0x00, 0x40, 0x80, 0xC0, 0xE0, 0x50, 0x90, 0xD0]),
        st.one_of(st.sampled_from(sorted(AttrType)), u8),
        st.binary(max_size=40),
    ),
    max_size=8,
).map(
    lambda items: b"".join(
        bytes((f, t)) + (struct.pack("!H", len(v)) if f & 0x10 else bytes((len(v),))) + v
        for f, t, v in items
    )
)


@given(attribute_blobs, st.binary(max_size=30), st.binary(max_size=30), CTXS, st.booleans())
def test_structured_garbage_update_raises_only_bgp_error(
    attrs: bytes, withdrawn: bytes, nlri: bytes, ctx: WireContext, chop: bool
) -> None:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs
    body += nlri
    if chop:
        body = body[: len(body) // 2]
    with suppress(BGPError):
        summarize_update(body, ctx)
    with suppress(BGPError):
        decode_message(2, body, ctx)
    with suppress(BGPError):
        decode_attributes(attrs, ctx)


@given(st.binary(max_size=100))
def test_capabilities_any_bytes(raw: bytes) -> None:
    with suppress(BGPError):
        decode_capabilities(raw)


# --------------------------------------------------------------------------- the FSM

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


def _slow_encode(text: str) -> bytes:
    net = ipaddress.ip_network(text)
    return bytes((net.prefixlen,)) + net.network_address.packed[: (net.prefixlen + 7) // 8]


@given(
    st.one_of(
        v4_prefix,
        st.tuples(u32, st.integers(0, 40)).map(lambda t: f"{ipaddress.IPv4Address(t[0])}/{t[1]}"),
        st.from_regex(r"\A[0-9٣.]{1,16}/[0-9]{0,3}\Z"),
    )
)
def test_fast_prefix_encoding_agrees_with_ipaddress(text: str) -> None:
    try:
        expected = _slow_encode(text)
    except ValueError:
        try:
            encode_prefix(text)
        except ValueError:
            return
        raise AssertionError(f"{text!r} accepted by the fast path only") from None
    assert encode_prefix(text)[1] == expected


# --------------------------------------------------------------------------- Adj-RIB-Out

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
