"""ARP for IPv4 over Ethernet (RFC 826), the only hardware/protocol pair a LAN VIP needs."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address

from vipcast.proto.l2.errors import L2Error

HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
PACKET = struct.Struct("!HHBBH6s4s6s4s")


class ArpOp(IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True)
class ArpPacket:
    op: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address

    def encode(self) -> bytes:
        return PACKET.pack(
            HTYPE_ETHERNET,
            PTYPE_IPV4,
            6,
            4,
            self.op,
            self.sender_mac,
            self.sender_ip.packed,
            self.target_mac,
            self.target_ip.packed,
        )

    @property
    def is_gratuitous(self) -> bool:
        """An announcement of the sender's own address (sender and target IP equal)."""
        return self.sender_ip == self.target_ip


def decode_arp(data: bytes) -> ArpPacket:
    """Decode an ARP packet; trailing Ethernet padding is ignored."""
    if len(data) < PACKET.size:
        raise L2Error(f"ARP packet of {len(data)} bytes, need {PACKET.size}")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = PACKET.unpack_from(data)
    if (htype, ptype, hlen, plen) != (HTYPE_ETHERNET, PTYPE_IPV4, 6, 4):
        raise L2Error(
            f"ARP for hardware {htype}/{hlen} protocol {ptype:#x}/{plen}, not Ethernet/IPv4"
        )
    return ArpPacket(op, sha, IPv4Address(spa), tha, IPv4Address(tpa))
