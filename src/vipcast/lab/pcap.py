"""The lab's packet captures read back: the records of a classic pcap file (what ``tcpdump -w``
writes), and who answered ARP/NDP for an address in a capture of a LAN.

Decoding uses vipcast's own codecs (:mod:`vipcast.proto.l2`); a frame they reject is skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from vipcast.proto.l2 import L2Error, decode_arp, decode_frame, format_mac
from vipcast.proto.l2.ethernet import EtherType
from vipcast.proto.l2.ndp import IcmpType, decode_ipv6, decode_neighbor

FILE_HEADER = 24
RECORD_HEADER = 16
#: magic numbers as the file's first four bytes: little-endian, microseconds / nanoseconds
_LITTLE = {b"\xd4\xc3\xb2\xa1": 1e6, b"\x4d\x3c\xb2\xa1": 1e9}
_BIG = {b"\xa1\xb2\xc3\xd4": 1e6, b"\xa1\xb2\x3c\x4d": 1e9}
#: link types (the file header's last field)
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113


def link_type(data: bytes) -> int | None:
    """The link type of a capture's frames; None for a file too short to have a header."""
    if len(data) < FILE_HEADER:
        return None
    order = ">" if data[:4] in _BIG else "<"
    return int(struct.unpack_from(order + "I", data, 20)[0])


def records(data: bytes) -> Iterator[tuple[float, bytes]]:
    """(capture time as a wall-clock timestamp, frame) of each record, in file order; nothing
    for a file shorter than its header, and a record cut short at the end (a capture still
    being written) ends the iteration."""
    if len(data) < FILE_HEADER:
        return
    magic = data[:4]
    order = ">" if magic in _BIG else "<"
    ticks = _BIG.get(magic) or _LITTLE.get(magic, 1e6)
    offset = FILE_HEADER
    while offset + RECORD_HEADER <= len(data):
        seconds, fraction, length, _ = struct.unpack_from(order + "IIII", data, offset)
        start = offset + RECORD_HEADER
        if start + length > len(data):
            return
        yield seconds + fraction / ticks, data[start : start + length]
        offset = start + length


@dataclass(frozen=True)
class NeighborAnswer:
    """One ARP reply / gratuitous ARP, or one Neighbor Advertisement, seen in a capture."""

    time: float
    ip: str
    #: the MAC it gives for ``ip`` (lower-case, colon-separated)
    mac: str
    #: an announcement nobody asked for: a gratuitous ARP, an NA to a multicast address
    gratuitous: bool


def neighbor_answer(moment: float, frame: bytes) -> NeighborAnswer | None:
    """The answer in one Ethernet frame, None for any other frame (malformed ones too)."""
    try:
        ethernet = decode_frame(frame)
        if ethernet.ethertype == EtherType.ARP:
            arp = decode_arp(ethernet.payload)
            if arp.op == 2 or arp.is_gratuitous:
                return NeighborAnswer(
                    moment, str(arp.sender_ip), format_mac(arp.sender_mac), arp.is_gratuitous
                )
        elif ethernet.ethertype == EtherType.IPV6:
            packet = decode_ipv6(ethernet.payload)
            if packet.payload[:1] == bytes([IcmpType.NEIGHBOR_ADVERTISEMENT]):
                advert = decode_neighbor(packet)
                mac = format_mac(advert.link_layer or ethernet.src)
                return NeighborAnswer(moment, str(advert.target), mac, packet.dst.is_multicast)
    except L2Error:
        return None
    return None


def neighbor_answers(data: bytes, ips: Collection[str] | None = None) -> list[NeighborAnswer]:
    """The ARP and NDP answers in an Ethernet capture, for ``ips`` only when given."""
    found = []
    for moment, frame in records(data):
        answer = neighbor_answer(moment, frame)
        if answer is not None and (ips is None or answer.ip in ips):
            found.append(answer)
    return found
