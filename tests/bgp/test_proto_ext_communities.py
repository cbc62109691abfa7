"""RFC 10005 link bandwidth and RFC 8326 GRACEFUL_SHUTDOWN: vectors, properties, UPDATEs."""

from __future__ import annotations

import ipaddress
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bgp.attributes import Communities, WireContext, decode_attributes
from vipcast.proto.bgp.constants import IPV4_UNICAST
from vipcast.proto.bgp.ext_communities import (
    GRACEFUL_SHUTDOWN,
    MAX_BANDWIDTH,
    BandwidthError,
    LinkBandwidth,
    check_bandwidth,
    decode_link_bandwidth,
    decode_values,
    encode_link_bandwidth,
    encode_values,
    format_bandwidth,
    link_bandwidths,
)
from vipcast.proto.bgp.packing import Outbound, RouteAttributes, pack_announcements
from vipcast.proto.bgp.prefixes import encode_prefix

# (community, wire hex): type, sub-type 0x04, AS (2 octets), IEEE 754 float32 bytes/s.
# 1.0 is 0x3f800000 and 12,500,000 (100 Mbit/s, FRR's "bandwidth 100") is 0x4b3ebc20.
VECTORS = [
    (LinkBandwidth(65000, 1.0), "0004fde83f800000"),
    (LinkBandwidth(65000, 1.0, transitive=False), "4004fde83f800000"),
    (LinkBandwidth(64512, 12_500_000.0), "0004fc004b3ebc20"),
    (LinkBandwidth(1, 0.0), "0004000100000000"),
    (LinkBandwidth(4_200_000_000, 2.0), "00045ba040000000"),  # four-octet AS -> AS_TRANS
]


@pytest.mark.parametrize(("community", "wire"), VECTORS)
def test_link_bandwidth_vectors(community: LinkBandwidth, wire: str) -> None:
    value = encode_link_bandwidth(community)
    assert value.to_bytes(8, "big").hex() == wire
    decoded = decode_link_bandwidth(int(wire, 16))
    assert decoded is not None
    assert decoded.bytes_per_second == community.bytes_per_second
    assert decoded.transitive == community.transitive


def test_graceful_shutdown_is_65535_0() -> None:
    assert GRACEFUL_SHUTDOWN >> 16 == 65535 and GRACEFUL_SHUTDOWN & 0xFFFF == 0


def test_other_extended_communities_are_not_link_bandwidth() -> None:
    route_target = int("0002fde800000064", 16)  # 0x00/0x02: route target 65000:100
    assert decode_link_bandwidth(route_target) is None
    assert decode_link_bandwidth(int("0104c000020100000000", 16) & (2**64 - 1)) is None
    assert format_bandwidth(route_target) == "0x0002fde800000064"
    assert link_bandwidths((route_target, int("0004fde83f800000", 16))) == (
        LinkBandwidth(65000, 1.0),
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0, MAX_BANDWIDTH * 2])
def test_unsendable_bandwidths_are_refused_with_a_reason(bad: float) -> None:
    with pytest.raises(BandwidthError, match="link bandwidth"):
        check_bandwidth(bad)
    with pytest.raises(BandwidthError):
        encode_link_bandwidth(LinkBandwidth(65000, bad))


@pytest.mark.parametrize("raw", ["7fc00000", "7f800000", "ff800000", "bf800000"])
def test_received_nan_inf_or_negative_reads_as_zero(raw: str) -> None:
    decoded = decode_link_bandwidth(int("0004fde8" + raw, 16))
    assert decoded is not None and decoded.bytes_per_second == 0.0


def test_attribute_length_must_be_a_multiple_of_eight() -> None:
    assert decode_values(b"") is None
    assert decode_values(b"\0" * 7) is None
    assert decode_values(bytes.fromhex("0004fde83f800000")) == (0x0004FDE83F800000,)


finite32 = st.floats(min_value=0, max_value=MAX_BANDWIDTH, allow_nan=False, width=32)


@given(st.integers(0, 0xFFFF), finite32, st.booleans())
def test_link_bandwidth_round_trips(asn: int, bandwidth: float, transitive: bool) -> None:
    community = LinkBandwidth(asn, bandwidth, transitive)
    assert decode_link_bandwidth(encode_link_bandwidth(community)) == community


@given(st.integers(0, 2**64 - 1))
def test_decode_never_raises(value: int) -> None:
    decoded = decode_link_bandwidth(value)
    assert decoded is None or (
        math.isfinite(decoded.bytes_per_second) and decoded.bytes_per_second >= 0
    )


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_attribute_value_round_trips(values: list[int]) -> None:
    assert decode_values(encode_values(tuple(values))) == tuple(values)


def test_update_carries_link_bandwidth_and_graceful_shutdown() -> None:
    lb = encode_link_bandwidth(LinkBandwidth(65001, 3 * 125_000.0))
    out = Outbound(
        local_asn=65001, ibgp=False, four_octet_as=True, max_message_len=4096,
        next_hop_v4=ipaddress.IPv4Address("192.0.2.1").packed, next_hop_v6=None,
    )
    attrs = RouteAttributes(communities=(GRACEFUL_SHUTDOWN,), extended_communities=(lb,))
    [message] = pack_announcements(IPV4_UNICAST, attrs, [encode_prefix("198.51.100.7/32")[1]], out)
    # optional transitive (0xc0), type 16, length 8, then the community
    assert bytes.fromhex("c01008") + lb.to_bytes(8, "big") in message
    body = message[19:]
    (withdrawn_len,) = struct.unpack("!H", body[:2])
    (attr_len,) = struct.unpack("!H", body[2 + withdrawn_len : 4 + withdrawn_len])
    section = decode_attributes(body[4 + withdrawn_len : 4 + withdrawn_len + attr_len],
                                WireContext())
    assert Communities((GRACEFUL_SHUTDOWN,)) in section.attributes
    assert not section.treat_as_withdraw
    # type codes ascend (RFC 4271 §5): the extended communities come after COMMUNITIES (8)
    assert message.index(bytes.fromhex("c01008")) > message.index(bytes.fromhex("c00804"))
