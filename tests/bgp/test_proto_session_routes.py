"""The routes a session sends and receives: diffs of the table, ROUTE-REFRESH, 2- and 4-byte
AS paths, iBGP attributes, IPv6 next hops, message size, received routes not kept."""

from __future__ import annotations

import struct
import tracemalloc
from dataclasses import replace

import pytest
from session_driver import A_CFG, Pair, drain, established, messages, of, open_bytes, opened

from vipcast.proto.bgp import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    RouteAttributes,
    RouteRefreshReceived,
    RoutesReceived,
    Session,
    State,
)
from vipcast.proto.bgp.attributes import (
    As4Path,
    AsPath,
    LocalPref,
    MpReach,
    OpaqueAttribute,
    WireContext,
)
from vipcast.proto.bgp.capabilities import FourOctetAs, Multiprotocol
from vipcast.proto.bgp.constants import MARKER
from vipcast.proto.bgp.messages import Keepalive, RouteRefresh, encode_message
from vipcast.proto.bgp.update import Update
from vipcast.proto.bgp.wire import Framer


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
