"""IPv6 Neighbor Discovery (RFC 4861): the fixed IPv6 header and ICMPv6 NS/NA with their
link-layer address options, checksummed over the IPv6 pseudo-header (RFC 8200 §8.1).

Only what neighbor resolution needs: packets with extension headers are refused (a
solicitation is never sent with them in practice) rather than parsed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv6Address

from vipcast.proto.l2.errors import L2Error

IPV6_HEADER = struct.Struct("!IHBB16s16s")
NEXT_HEADER_ICMPV6 = 58
#: NDP messages must arrive with hop limit 255, proof they were not forwarded
NDP_HOP_LIMIT = 255
ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")
ND_BODY = struct.Struct("!BBHI16s")


class IcmpType(IntEnum):
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136


class NdOption(IntEnum):
    SOURCE_LINK_LAYER = 1
    TARGET_LINK_LAYER = 2


class NaFlag(IntEnum):
    ROUTER = 0x8000_0000
    SOLICITED = 0x4000_0000
    OVERRIDE = 0x2000_0000


@dataclass(frozen=True)
class IPv6Packet:
    src: IPv6Address
    dst: IPv6Address
    next_header: int
    hop_limit: int
    payload: bytes

    def encode(self) -> bytes:
        header = IPV6_HEADER.pack(
            6 << 28,
            len(self.payload),
            self.next_header,
            self.hop_limit,
            self.src.packed,
            self.dst.packed,
        )
        return header + self.payload


def decode_ipv6(data: bytes) -> IPv6Packet:
    """Decode the fixed header; ``payload`` is cut to the header's payload length."""
    if len(data) < IPV6_HEADER.size:
        raise L2Error(f"IPv6 packet of {len(data)} bytes is shorter than its header")
    vtf, length, next_header, hop_limit, src, dst = IPV6_HEADER.unpack_from(data)
    if vtf >> 28 != 6:
        raise L2Error(f"IP version {vtf >> 28} in an IPv6 frame")
    end = IPV6_HEADER.size + length
    if end > len(data):
        raise L2Error(f"IPv6 payload length {length} exceeds the {len(data)}-byte packet")
    payload = bytes(data[IPV6_HEADER.size : end])
    return IPv6Packet(IPv6Address(src), IPv6Address(dst), next_header, hop_limit, payload)


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    """Internet checksum of the pseudo-header and ``message`` (checksum field as given)."""
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(message), NEXT_HEADER_ICMPV6)
    data = pseudo + message
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class NeighborMessage:
    """A Neighbor Solicitation or Advertisement: ``flags`` is the 32-bit word after the checksum
    (R/S/O for an NA, reserved in an NS), ``link_layer`` the MAC in the source (NS) or target
    (NA) link-layer address option, if present."""

    type: int
    target: IPv6Address
    flags: int = 0
    link_layer: bytes | None = None

    @property
    def option_type(self) -> NdOption:
        if self.type == IcmpType.NEIGHBOR_SOLICITATION:
            return NdOption.SOURCE_LINK_LAYER
        return NdOption.TARGET_LINK_LAYER

    def encode(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        """The ICMPv6 message with its checksum for the given IPv6 addresses."""
        body = ND_BODY.pack(self.type, 0, 0, self.flags, self.target.packed)
        if self.link_layer is not None:
            body += struct.pack("!BB6s", self.option_type, 1, self.link_layer)
        checksum = icmpv6_checksum(src, dst, body)
        return body[:2] + struct.pack("!H", checksum) + body[4:]


def decode_neighbor(packet: IPv6Packet) -> NeighborMessage:
    """Decode and validate (RFC 4861 §7.1) an NS or NA carried in ``packet``."""
    if packet.next_header != NEXT_HEADER_ICMPV6:
        raise L2Error(f"next header {packet.next_header} is not ICMPv6")
    message = packet.payload
    if len(message) < ND_BODY.size:
        raise L2Error(f"ICMPv6 neighbor message of {len(message)} bytes, need {ND_BODY.size}")
    icmp_type, code, _checksum, flags, target = ND_BODY.unpack_from(message)
    if icmp_type not in (IcmpType.NEIGHBOR_SOLICITATION, IcmpType.NEIGHBOR_ADVERTISEMENT):
        raise L2Error(f"ICMPv6 type {icmp_type} is not a neighbor message")
    if code != 0:
        raise L2Error(f"ICMPv6 neighbor message with code {code}")
    if icmpv6_checksum(packet.src, packet.dst, message) != 0:
        raise L2Error("bad ICMPv6 checksum")
    target_address = IPv6Address(target)
    if target_address.is_multicast:
        raise L2Error(f"neighbor message for multicast target {target_address}")
    wanted = (
        NdOption.SOURCE_LINK_LAYER
        if icmp_type == IcmpType.NEIGHBOR_SOLICITATION
        else NdOption.TARGET_LINK_LAYER
    )
    link_layer = None
    for option_type, value in _options(message[ND_BODY.size :]):
        if option_type == wanted and len(value) >= 6:
            link_layer = value[:6]
    return NeighborMessage(icmp_type, target_address, flags, link_layer)


def _options(data: bytes) -> list[tuple[int, bytes]]:
    options = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            raise L2Error("truncated NDP option header")
        option_type, units = data[offset], data[offset + 1]
        if units == 0:
            raise L2Error("NDP option of length zero")
        end = offset + units * 8
        if end > len(data):
            raise L2Error(f"NDP option {option_type} runs past the message")
        options.append((option_type, bytes(data[offset + 2 : end])))
        offset = end
    return options


def solicited_node(address: IPv6Address) -> IPv6Address:
    """The solicited-node multicast group of ``address`` (ff02::1:ffXX:XXXX)."""
    return IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + address.packed[13:])


def multicast_mac(group: IPv6Address) -> bytes:
    """The Ethernet address a multicast IPv6 group maps to (33:33 + low 32 bits)."""
    return b"\x33\x33" + group.packed[12:]
