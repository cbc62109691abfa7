"""Hypothesis strategies for BGP values: numbers, prefixes, addresses, AS paths, attributes,
UPDATEs, capabilities, OPENs, every message kind, and wire contexts."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from vipcast.proto.bgp.attributes import (
    Aggregator,
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
)
from vipcast.proto.bgp.capabilities import (
    Capability,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    RouteRefreshCapability,
    UnknownCapability,
)
from vipcast.proto.bgp.constants import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    AttrType,
    CapabilityCode,
    Family,
)
from vipcast.proto.bgp.messages import Keepalive, Message, Notification, Open, RouteRefresh
from vipcast.proto.bgp.update import Update

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
