"""ARP/NDP codecs and the responder decision (sans-IO, no sockets)."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.l2 import (
    ArpOp,
    ArpPacket,
    EthernetFrame,
    L2Error,
    Outcome,
    OwnedAddresses,
    decide,
    decode_arp,
    decode_frame,
    format_mac,
    gratuitous_arp,
    parse_mac,
    unsolicited_na,
)
from vipcast.proto.l2.ethernet import BROADCAST, EtherType
from vipcast.proto.l2.ndp import (
    ALL_NODES,
    IcmpType,
    IPv6Packet,
    NaFlag,
    NeighborMessage,
    decode_ipv6,
    decode_neighbor,
    icmpv6_checksum,
    multicast_mac,
    solicited_node,
)

OUR_MAC = parse_mac("02:00:00:00:00:01")
CLIENT_MAC = parse_mac("02:00:00:00:00:99")
VIP4 = IPv4Address("192.0.2.50")
VIP6 = IPv6Address("2001:db8::50")
CLIENT4 = IPv4Address("192.0.2.100")
CLIENT6 = IPv6Address("2001:db8::100")
OWNED = OwnedAddresses.of(OUR_MAC, [VIP4, VIP6])


def arp_request(target: IPv4Address, sender: IPv4Address = CLIENT4) -> bytes:
    packet = ArpPacket(ArpOp.REQUEST, CLIENT_MAC, sender, b"\x00" * 6, target)
    return EthernetFrame(BROADCAST, CLIENT_MAC, EtherType.ARP, packet.encode()).encode()


def neighbor_solicitation(
    target: IPv6Address, src: IPv6Address = CLIENT6, hop_limit: int = 255
) -> bytes:
    group = solicited_node(target)
    link = None if src == IPv6Address("::") else CLIENT_MAC
    ns = NeighborMessage(IcmpType.NEIGHBOR_SOLICITATION, target, 0, link)
    packet = IPv6Packet(src, group, 58, hop_limit, ns.encode(src, group))
    return EthernetFrame(multicast_mac(group), CLIENT_MAC, EtherType.IPV6, packet.encode()).encode()


def test_mac_text_round_trip() -> None:
    assert format_mac(parse_mac("02:AB:0c:00:00:01")) == "02:ab:0c:00:00:01"
    with pytest.raises(L2Error):
        parse_mac("02:ab:0c:00:00")


def test_arp_request_for_owned_vip_gets_a_unicast_reply() -> None:
    decision = decide(arp_request(VIP4), OWNED)
    assert decision.outcome is Outcome.ARP_REPLY
    assert decision.reply is not None
    frame = decode_frame(decision.reply)
    assert (frame.dst, frame.src, frame.ethertype) == (CLIENT_MAC, OUR_MAC, EtherType.ARP)
    reply = decode_arp(frame.payload)
    assert reply == ArpPacket(ArpOp.REPLY, OUR_MAC, VIP4, CLIENT_MAC, CLIENT4)


def test_golden_arp_reply_bytes() -> None:
    decision = decide(arp_request(VIP4), OWNED)
    assert decision.reply is not None
    expected = bytes.fromhex(
        "020000000099" "020000000001" "0806"  # Ethernet: dst, src, type
        "0001" "0800" "06" "04" "0002"  # Ethernet/IPv4, reply
        "020000000001" "c0000232"  # sender: our MAC, 192.0.2.50
        "020000000099" "c0000264"  # target: client MAC, 192.0.2.100
    ).ljust(60, b"\x00")
    assert decision.reply == expected


@pytest.mark.parametrize(
    ("frame", "outcome"),
    [
        (arp_request(IPv4Address("192.0.2.51")), Outcome.NOT_OWNED),
        (arp_request(VIP4, sender=VIP4), Outcome.NOT_A_QUERY),  # someone's gratuitous ARP
        (gratuitous_arp(CLIENT_MAC, VIP4, ArpOp.REPLY), Outcome.NOT_A_QUERY),
        (neighbor_solicitation(IPv6Address("2001:db8::51")), Outcome.NOT_OWNED),
        (neighbor_solicitation(VIP6, hop_limit=64), Outcome.MALFORMED),
        (unsolicited_na(CLIENT_MAC, VIP6), Outcome.NOT_A_QUERY),
        (b"\x00" * 10, Outcome.MALFORMED),
        (EthernetFrame(BROADCAST, CLIENT_MAC, 0x0800, b"").encode(), Outcome.NOT_A_QUERY),
    ],
)
def test_responder_truth_table(frame: bytes, outcome: Outcome) -> None:
    decision = decide(frame, OWNED)
    assert decision.outcome is outcome
    assert decision.reply is None


def test_nothing_owned_means_nothing_answered() -> None:
    empty = OwnedAddresses(OUR_MAC)
    assert decide(arp_request(VIP4), empty).reply is None
    assert decide(neighbor_solicitation(VIP6), empty).reply is None


def test_neighbor_solicitation_for_owned_vip_gets_solicited_override_na() -> None:
    decision = decide(neighbor_solicitation(VIP6), OWNED)
    assert decision.outcome is Outcome.NA_REPLY
    assert decision.reply is not None
    frame = decode_frame(decision.reply)
    assert (frame.dst, frame.src) == (CLIENT_MAC, OUR_MAC)
    packet = decode_ipv6(frame.payload)
    assert (packet.src, packet.dst, packet.hop_limit) == (VIP6, CLIENT6, 255)
    advert = decode_neighbor(packet)  # also verifies the checksum
    assert advert.type == IcmpType.NEIGHBOR_ADVERTISEMENT
    assert advert.target == VIP6
    assert advert.flags == NaFlag.SOLICITED | NaFlag.OVERRIDE
    assert advert.link_layer == OUR_MAC


def test_duplicate_address_detection_is_defended_to_all_nodes() -> None:
    decision = decide(neighbor_solicitation(VIP6, src=IPv6Address("::")), OWNED)
    assert decision.outcome is Outcome.NA_REPLY
    assert decision.reply is not None
    packet = decode_ipv6(decode_frame(decision.reply).payload)
    assert packet.dst == ALL_NODES
    assert decode_neighbor(packet).flags == NaFlag.OVERRIDE


def test_gratuitous_arp_forms() -> None:
    request = decode_arp(decode_frame(gratuitous_arp(OUR_MAC, VIP4)).payload)
    assert request == ArpPacket(ArpOp.REQUEST, OUR_MAC, VIP4, b"\x00" * 6, VIP4)
    reply_frame = decode_frame(gratuitous_arp(OUR_MAC, VIP4, ArpOp.REPLY))
    assert reply_frame.dst == BROADCAST
    reply = decode_arp(reply_frame.payload)
    assert (reply.op, reply.target_mac, reply.is_gratuitous) == (ArpOp.REPLY, OUR_MAC, True)


def test_unsolicited_na_goes_to_all_nodes_with_override() -> None:
    frame = decode_frame(unsolicited_na(OUR_MAC, VIP6))
    assert frame.dst == bytes.fromhex("333300000001")
    packet = decode_ipv6(frame.payload)
    assert (packet.src, packet.dst, packet.hop_limit) == (VIP6, ALL_NODES, 255)
    advert = decode_neighbor(packet)
    assert (advert.flags, advert.target, advert.link_layer) == (NaFlag.OVERRIDE, VIP6, OUR_MAC)


def test_checksum_rfc1071_example_and_corruption() -> None:
    # a message whose checksum field holds the right value sums to zero
    message = NeighborMessage(IcmpType.NEIGHBOR_SOLICITATION, VIP6, 0, CLIENT_MAC).encode(
        CLIENT6, solicited_node(VIP6)
    )
    assert icmpv6_checksum(CLIENT6, solicited_node(VIP6), message) == 0
    corrupted = message[:-1] + bytes([message[-1] ^ 0x01])
    packet = IPv6Packet(CLIENT6, solicited_node(VIP6), 58, 255, corrupted)
    with pytest.raises(L2Error, match="checksum"):
        decode_neighbor(packet)


def test_solicited_node_group() -> None:
    assert solicited_node(IPv6Address("2001:db8::12:3456")) == IPv6Address("ff02::1:ff12:3456")
    assert multicast_mac(IPv6Address("ff02::1:ff12:3456")) == bytes.fromhex("3333ff123456")


owned_strategy = st.builds(
    OwnedAddresses.of,
    st.just(OUR_MAC),
    st.lists(st.sampled_from([VIP4, VIP6, IPv4Address("0.0.0.0"), IPv6Address("::")])),
)


@given(st.binary(max_size=200), owned_strategy)
def test_decide_never_raises_on_arbitrary_bytes(data: bytes, owned: OwnedAddresses) -> None:
    decide(data, owned)


@given(st.binary(max_size=120))
def test_decoders_raise_only_l2error(data: bytes) -> None:
    for decoder in (decode_frame, decode_arp, decode_ipv6):
        with contextlib.suppress(L2Error):
            decoder(data)
    with contextlib.suppress(L2Error):
        decode_neighbor(IPv6Packet(CLIENT6, VIP6, 58, 255, data))


@given(st.integers(0, 255), st.binary(max_size=64), st.sampled_from([VIP4, VIP6]))
def test_mutated_queries_never_raise(position: int, noise: bytes, target: object) -> None:
    base = arp_request(VIP4) if target == VIP4 else neighbor_solicitation(VIP6)
    cut = position % len(base)
    decide(base[:cut] + noise + base[cut + len(noise) :], OWNED)


@given(st.binary(min_size=6, max_size=6), st.ip_addresses(v=6))
def test_na_round_trip(mac: bytes, target: IPv6Address) -> None:
    if target.is_multicast:
        return
    frame = decode_frame(unsolicited_na(mac, target))
    advert = decode_neighbor(decode_ipv6(frame.payload))
    assert (advert.target, advert.link_layer) == (target, mac)
