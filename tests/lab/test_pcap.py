"""Reading the lab's captures (``vipcast.lab.pcap``): classic pcap files in both byte orders,
microsecond and nanosecond timestamps, and the ARP/NDP answers in them."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from vipcast.lab.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    NeighborAnswer,
    link_type,
    neighbor_answers,
    records,
)
from vipcast.proto.l2 import ArpOp, ArpPacket, EthernetFrame, gratuitous_arp, unsolicited_na
from vipcast.proto.l2.ethernet import BROADCAST, ZERO_MAC, EtherType

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
VIP4 = IPv4Address("192.0.2.50")
VIP6 = IPv6Address("2001:db8::50")
#: microsecond / nanosecond files (written in the file's byte order)
MAGIC = {False: 0xA1B2C3D4, True: 0xA1B23C4D}


def pcap(frames: list[tuple[int, int, bytes]], *, order: str = "<", nano: bool = False,
         linktype: int = LINKTYPE_ETHERNET) -> bytes:
    """A classic pcap file of (seconds, fraction, frame) records."""
    out = struct.pack(order + "IHHiIII", MAGIC[nano], 2, 4, 0, 0, 65535, linktype)
    for seconds, fraction, frame in frames:
        out += struct.pack(order + "IIII", seconds, fraction, len(frame), len(frame)) + frame
    return out


def arp_reply(mac: bytes, ip: IPv4Address, to: IPv4Address) -> bytes:
    packet = ArpPacket(ArpOp.REPLY, mac, ip, MAC_B, to)
    return EthernetFrame(MAC_B, mac, EtherType.ARP, packet.encode()).encode()


def arp_request(ip: IPv4Address) -> bytes:
    packet = ArpPacket(ArpOp.REQUEST, MAC_B, IPv4Address("192.0.2.9"), ZERO_MAC, ip)
    return EthernetFrame(BROADCAST, MAC_B, EtherType.ARP, packet.encode()).encode()


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_records_in_either_byte_order_and_resolution(order: str, nano: bool) -> None:
    fraction = 250_000_000 if nano else 250_000
    data = pcap([(100, fraction, b"one"), (101, 0, b"two")], order=order, nano=nano,
                linktype=LINKTYPE_LINUX_SLL)
    assert list(records(data)) == [(100.25, b"one"), (101.0, b"two")]
    assert link_type(data) == LINKTYPE_LINUX_SLL


def test_short_files_and_a_record_cut_short() -> None:
    assert list(records(b"")) == [] and link_type(b"\xd4\xc3") is None
    whole = pcap([(1, 0, b"abc"), (2, 0, b"defgh")])
    assert [frame for _, frame in records(whole[:-2])] == [b"abc"]
    assert [frame for _, frame in records(whole[:-9])] == [b"abc"]


def test_neighbor_answers_name_who_answered_for_what() -> None:
    frames = [
        arp_request(VIP4),  # a question: not an answer
        arp_reply(MAC_A, VIP4, IPv4Address("192.0.2.9")),
        gratuitous_arp(MAC_B, VIP4, ArpOp.REQUEST),
        unsolicited_na(MAC_B, VIP6),
        b"\x00" * 10,  # too short for Ethernet
        gratuitous_arp(MAC_A, IPv4Address("192.0.2.51")),
    ]
    data = pcap([(10 + i, 0, frame) for i, frame in enumerate(frames)])
    assert neighbor_answers(data) == [
        NeighborAnswer(11.0, "192.0.2.50", "02:00:00:00:00:01", False),
        NeighborAnswer(12.0, "192.0.2.50", "02:00:00:00:00:02", True),
        NeighborAnswer(13.0, "2001:db8::50", "02:00:00:00:00:02", True),
        NeighborAnswer(15.0, "192.0.2.51", "02:00:00:00:00:01", True),
    ]
    assert [a.ip for a in neighbor_answers(data, ("2001:db8::50",))] == ["2001:db8::50"]
