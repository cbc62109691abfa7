"""The responder decision: given one received frame and what this node owns on the interface,
the reply frame or nothing; and the unsolicited announcements sent on taking ownership.

Pure: no sockets, no clock. :func:`decide` never raises; a malformed frame is a decision with
``reply=None`` and a reason, like any other frame that is not ours to answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv6Address

from vipcast.proto.l2.arp import ArpOp, ArpPacket, decode_arp
from vipcast.proto.l2.errors import L2Error
from vipcast.proto.l2.ethernet import (
    BROADCAST,
    ZERO_MAC,
    EthernetFrame,
    EtherType,
    decode_frame,
    is_unicast_mac,
)
from vipcast.proto.l2.ndp import (
    ALL_NODES,
    NDP_HOP_LIMIT,
    NEXT_HEADER_ICMPV6,
    UNSPECIFIED,
    IcmpType,
    IPv6Packet,
    NaFlag,
    NeighborMessage,
    decode_ipv6,
    decode_neighbor,
    multicast_mac,
    solicited_node,
)


@dataclass(frozen=True)
class OwnedAddresses:
    """What this node answers for on one interface, and the interface's MAC."""

    mac: bytes
    ipv4: frozenset[IPv4Address] = field(default_factory=frozenset)
    ipv6: frozenset[IPv6Address] = field(default_factory=frozenset)

    @classmethod
    def of(cls, mac: bytes, ips: Iterable[IPv4Address | IPv6Address]) -> OwnedAddresses:
        """Split addresses by family."""
        addresses = list(ips)
        return cls(
            mac,
            frozenset(a for a in addresses if isinstance(a, IPv4Address)),
            frozenset(a for a in addresses if isinstance(a, IPv6Address)),
        )


class Outcome(Enum):
    ARP_REPLY = "arp-reply"
    NA_REPLY = "na-reply"
    NOT_OWNED = "not-owned"
    NOT_A_QUERY = "not-a-query"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reply: bytes | None = None
    detail: str = ""


def decide(data: bytes, owned: OwnedAddresses) -> Decision:
    """Answer an ARP request or a Neighbor Solicitation for an owned address; ignore the rest."""
    try:
        frame = decode_frame(data)
        if frame.ethertype == EtherType.ARP:
            return _answer_arp(decode_arp(frame.payload), owned)
        if frame.ethertype == EtherType.IPV6:
            return _answer_ns(frame, decode_ipv6(frame.payload), owned)
    except L2Error as exc:
        return Decision(Outcome.MALFORMED, detail=str(exc))
    return Decision(Outcome.NOT_A_QUERY, detail=f"ethertype {frame.ethertype:#06x}")


def _answer_arp(request: ArpPacket, owned: OwnedAddresses) -> Decision:
    if request.op != ArpOp.REQUEST:
        return Decision(Outcome.NOT_A_QUERY, detail=f"ARP op {request.op}")
    if request.target_ip not in owned.ipv4:
        return Decision(Outcome.NOT_OWNED, detail=str(request.target_ip))
    if request.is_gratuitous:
        # someone else announcing the address: not a question to answer
        return Decision(Outcome.NOT_A_QUERY, detail=f"gratuitous ARP for {request.target_ip}")
    if not is_unicast_mac(request.sender_mac):
        raise L2Error(f"ARP request from non-unicast MAC {request.sender_mac.hex()}")
    reply = ArpPacket(
        ArpOp.REPLY, owned.mac, request.target_ip, request.sender_mac, request.sender_ip
    )
    frame = EthernetFrame(request.sender_mac, owned.mac, EtherType.ARP, reply.encode())
    return Decision(Outcome.ARP_REPLY, frame.encode(), str(request.target_ip))


def _answer_ns(frame: EthernetFrame, packet: IPv6Packet, owned: OwnedAddresses) -> Decision:
    if packet.next_header != NEXT_HEADER_ICMPV6 or not packet.payload:
        return Decision(Outcome.NOT_A_QUERY, detail="IPv6 but not ICMPv6")
    if packet.payload[0] != IcmpType.NEIGHBOR_SOLICITATION:
        return Decision(Outcome.NOT_A_QUERY, detail=f"ICMPv6 type {packet.payload[0]}")
    if packet.hop_limit != NDP_HOP_LIMIT:
        raise L2Error(f"neighbor solicitation with hop limit {packet.hop_limit}")
    solicitation = decode_neighbor(packet)
    if solicitation.target not in owned.ipv6:
        return Decision(Outcome.NOT_OWNED, detail=str(solicitation.target))
    if packet.src == UNSPECIFIED:
        # duplicate address detection (RFC 4862 §5.4.3): defend to all-nodes, not solicited
        if solicitation.link_layer is not None or packet.dst != solicited_node(solicitation.target):
            raise L2Error("DAD solicitation with a source link-layer option or unicast destination")
        dst_ip, dst_mac, flags = ALL_NODES, multicast_mac(ALL_NODES), int(NaFlag.OVERRIDE)
    else:
        dst_ip = packet.src
        dst_mac = solicitation.link_layer or frame.src
        flags = NaFlag.SOLICITED | NaFlag.OVERRIDE
    advert = NeighborMessage(
        IcmpType.NEIGHBOR_ADVERTISEMENT, solicitation.target, flags, owned.mac
    )
    return Decision(
        Outcome.NA_REPLY,
        _ipv6_frame(owned.mac, dst_mac, solicitation.target, dst_ip, advert),
        str(solicitation.target),
    )


def _ipv6_frame(
    src_mac: bytes, dst_mac: bytes, src: IPv6Address, dst: IPv6Address, message: NeighborMessage
) -> bytes:
    packet = IPv6Packet(src, dst, NEXT_HEADER_ICMPV6, NDP_HOP_LIMIT, message.encode(src, dst))
    return EthernetFrame(dst_mac, src_mac, EtherType.IPV6, packet.encode()).encode()


def gratuitous_arp(mac: bytes, ip: IPv4Address, op: ArpOp = ArpOp.REQUEST) -> bytes:
    """A broadcast announcement that ``ip`` is at ``mac``.

    The request form (RFC 5227 "ARP Announcement") has a zero target MAC; the reply form repeats
    the sender MAC as target, which is what Linux requires to treat a reply as gratuitous and
    let it override a fresh cache entry.
    """
    target_mac = ZERO_MAC if op == ArpOp.REQUEST else mac
    packet = ArpPacket(op, mac, ip, target_mac, ip)
    return EthernetFrame(BROADCAST, mac, EtherType.ARP, packet.encode()).encode()


def unsolicited_na(mac: bytes, ip: IPv6Address) -> bytes:
    """An unsolicited Neighbor Advertisement to all-nodes with the override flag (RFC 4861
    §7.2.6), so neighbors that cached another MAC for ``ip`` switch to ``mac``."""
    advert = NeighborMessage(IcmpType.NEIGHBOR_ADVERTISEMENT, ip, int(NaFlag.OVERRIDE), mac)
    return _ipv6_frame(mac, multicast_mac(ALL_NODES), ip, ALL_NODES, advert)


def announcements(mac: bytes, ip: IPv4Address | IPv6Address) -> tuple[bytes, ...]:
    """The frames to send when taking (or re-asserting) ownership of ``ip``."""
    if isinstance(ip, IPv4Address):
        return (gratuitous_arp(mac, ip, ArpOp.REQUEST), gratuitous_arp(mac, ip, ArpOp.REPLY))
    return (unsolicited_na(mac, ip),)


def claim_of(data: bytes, mac: bytes) -> IPv4Address | IPv6Address | None:
    """The address another host says is its own in this frame: the sender address of a
    gratuitous ARP or of an ARP reply, the target of a Neighbor Advertisement (solicited or
    not), from a MAC other than ``mac``; None for anything else, malformed frames included."""
    try:
        frame = decode_frame(data)
        if frame.ethertype == EtherType.ARP:
            arp = decode_arp(frame.payload)
            if arp.sender_mac != mac and (arp.is_gratuitous or arp.op == ArpOp.REPLY):
                return arp.sender_ip
            return None
        if frame.ethertype == EtherType.IPV6:
            packet = decode_ipv6(frame.payload)
            if packet.next_header != NEXT_HEADER_ICMPV6:
                return None
            if packet.payload[:1] != bytes([IcmpType.NEIGHBOR_ADVERTISEMENT]):
                return None
            advert = decode_neighbor(packet)
            if (advert.link_layer or frame.src) != mac:
                return advert.target
    except L2Error:
        return None
    return None


def owner_probes(mac: bytes, ip: IPv4Address | IPv6Address) -> tuple[bytes, ...]:
    """Ask who answers for ``ip`` without claiming it: an ARP probe (sender address 0.0.0.0,
    RFC 5227) or a Neighbor Solicitation from the unspecified address to the solicited-node
    group (as in duplicate address detection); the owner's answer is a claim (:func:`claim_of`)."""
    if isinstance(ip, IPv4Address):
        packet = ArpPacket(ArpOp.REQUEST, mac, IPv4Address(0), ZERO_MAC, ip)
        return (EthernetFrame(BROADCAST, mac, EtherType.ARP, packet.encode()).encode(),)
    group = solicited_node(ip)
    solicitation = NeighborMessage(IcmpType.NEIGHBOR_SOLICITATION, ip)
    return (_ipv6_frame(mac, multicast_mac(group), UNSPECIFIED, group, solicitation),)
