"""Fuzz targets: one function per decoder, bytes in, nothing out; only a bug raises.

Each target feeds its input to a vipcast decoder and lets through exactly the rejections the
RFCs give (a ``BGPError`` whose code/subcode is in ``bgp_targets.BGP_ANSWERS``, a BFD
``DropReason``, an ``L2Error``, a membership ``WireError``); anything else escapes and is a
crash. Accepted inputs are checked further: what was decoded encodes back to something that
decodes to the same value, and everything a session sends decodes cleanly. Each target's
``seeds`` give it a starting corpus built from the encoders (every capability, every attribute
vipcast knows, MP_REACH and MP_UNREACH for IPv4 and IPv6, communities of all three kinds), the
vectors in the repository and, for BGP, the FRR corpus when it is present. ``bench/fuzz.py``
drives them with atheris.

The BGP targets and seeds are in :mod:`bgp_targets`; BFD, ARP/NDP and membership are here, with
the registry (:data:`TARGETS`).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from bgp_targets import (
    bgp_message,
    bgp_open,
    bgp_session,
    bgp_update,
    message_seeds,
    open_seeds,
    session_seeds,
    update_seeds,
)

from vipcast.proto.bfd import packet as bfd_packet
from vipcast.proto.bfd.constants import AuthType
from vipcast.proto.bfd.constants import State as BfdState
from vipcast.proto.bfd.session import Session as BfdSession
from vipcast.proto.bfd.session import SessionConfig as BfdConfig
from vipcast.proto.l2 import ndp
from vipcast.proto.l2.arp import ArpOp, ArpPacket, decode_arp
from vipcast.proto.l2.errors import L2Error
from vipcast.proto.l2.ethernet import EthernetFrame, EtherType, decode_frame
from vipcast.proto.l2.responder import OwnedAddresses, decide, gratuitous_arp, unsolicited_na
from vipcast.proto.membership import Membership, MembershipConfig
from vipcast.proto.membership import codec as membership

# --------------------------------------------------------------------------- BFD

_BFD_CFG = BfdConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000)


def bfd_packet_target(data: bytes) -> None:
    """Any bytes as a BFD control packet: RFC 5880 §6.8.6 drop reason or a packet that
    re-encodes to the same value; then the same bytes into a session."""
    try:
        packet = bfd_packet.decode(data)
    except bfd_packet.BFDPacketError as error:
        assert isinstance(error.reason, bfd_packet.DropReason)
    else:
        if not (packet.poll and packet.final):
            again = bfd_packet.decode(packet.encode())
            assert again == packet, (packet, again)
    session = BfdSession(_BFD_CFG, 7, lambda: 0.5)
    session.start(0.0)
    reason = session.receive_packet(data, 0.01, 255)
    assert reason is None or isinstance(reason, bfd_packet.DropReason)
    session.handle_timer(1.0)


# --------------------------------------------------------------------------- ARP / NDP

_MAC = bytes.fromhex("020000000001")
_OWNED = OwnedAddresses.of(
    _MAC, [IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10"), IPv6Address("fe80::10")]
)


def _fix_icmpv6_checksum(frame: bytes) -> bytes:
    """Recompute the ICMPv6 checksum, so mutations reach the checks after it."""
    if len(frame) < 14 + 40 + 4 or frame[12:14] != b"\x86\xdd":
        return frame
    ip = frame[14:]
    (length,) = struct.unpack_from("!H", ip, 4)
    message = bytearray(ip[40 : 40 + length])
    if len(message) < 4:
        return frame
    message[2:4] = b"\0\0"
    src, dst = IPv6Address(ip[8:24]), IPv6Address(ip[24:40])
    message[2:4] = struct.pack("!H", ndp.icmpv6_checksum(src, dst, bytes(message)))
    return frame[:54] + bytes(message) + frame[54 + len(message) :]


def l2_frame(data: bytes) -> None:
    """Any bytes as a received Ethernet frame: the responder's decision never raises, a
    reply is a frame that decodes, and each codec that accepted its part re-encodes it."""
    if not data:
        return
    frame_bytes = _fix_icmpv6_checksum(data[1:]) if data[0] & 1 else data[1:]
    decision = decide(frame_bytes, _OWNED)
    if decision.reply is not None:
        reply = decode_frame(decision.reply)
        assert reply.src == _MAC
    try:
        frame = decode_frame(frame_bytes)
        if frame.ethertype == EtherType.ARP:
            arp = decode_arp(frame.payload)
            assert decode_arp(arp.encode()) == arp
        elif frame.ethertype == EtherType.IPV6:
            packet = ndp.decode_ipv6(frame.payload)
            neighbor = ndp.decode_neighbor(packet)
            wire = neighbor.encode(packet.src, packet.dst)
            again = ndp.decode_neighbor(
                ndp.IPv6Packet(packet.src, packet.dst, ndp.NEXT_HEADER_ICMPV6, 255, wire)
            )
            assert again == neighbor, (neighbor, again)
        again_frame = decode_frame(frame.encode())  # padded to the 60-byte minimum
        assert again_frame.ethertype == frame.ethertype and again_frame.src == frame.src
        assert again_frame.payload[: len(frame.payload)] == frame.payload
    except L2Error:
        return


# --------------------------------------------------------------------------- membership

_KEY = b"fuzz-membership-key"


_RECIPIENT = "fuzz-node"


def membership_heartbeat(data: bytes) -> None:
    """Any bytes as a membership datagram (name kept from the heartbeat it replaced); with the
    first bit set, signed with the right key for the recipient so the fuzzer gets past the MAC
    into the body. A decoded datagram re-encodes to itself; the state machine never raises."""
    if not data:
        return
    datagram = data[1:]
    if data[0] & 1:
        signed = bytes([len(_RECIPIENT)]) + _RECIPIENT.encode() + datagram
        datagram += hmac.digest(_KEY, signed, hashlib.sha256)[: membership.MAC_SIZE]
    try:
        decoded = membership.decode(datagram, _KEY, _RECIPIENT)
    except membership.WireError:
        decoded = None
    if decoded is not None:
        again = membership.decode(membership.encode(decoded, _KEY, _RECIPIENT), _KEY, _RECIPIENT)
        assert again == decoded, (decoded, again)
    node = Membership(
        MembershipConfig(_RECIPIENT, frozenset({_RECIPIENT, "node-1", "nœud-2"}), _KEY),
        boot=1, rng=random.Random(0),
    )
    node.start(0.0)
    node.receive(datagram, 0.5)
    node.tick(1.0)


@dataclass(frozen=True)
class Target:
    run: Callable[[bytes], None]
    seeds: Callable[[], Iterator[bytes]]
    #: the modules whose line/branch coverage is reported
    modules: tuple[str, ...]
    #: libFuzzer -max_len
    max_len: int = 4200
    #: counts toward "BGP messages fuzzed"
    bgp: bool = False


def _bfd_seeds() -> Iterator[bytes]:
    yield bfd_packet.ControlPacket(BfdState.DOWN, 1).encode()
    yield bfd_packet.ControlPacket(BfdState.UP, 1, 7, poll=True).encode()
    yield bfd_packet.ControlPacket(BfdState.INIT, 9, 7, final=True, demand=True).encode()
    yield bfd_packet.ControlPacket(
        BfdState.UP, 2, 7, auth=bfd_packet.Auth(AuthType.SIMPLE_PASSWORD, 1, password=b"secret")
    ).encode()
    for auth_type in (AuthType.KEYED_MD5, AuthType.METICULOUS_KEYED_SHA1):
        size = 16 if auth_type is AuthType.KEYED_MD5 else 20
        auth = bfd_packet.Auth(auth_type, 2, sequence=5, digest=b"\x11" * size)
        yield bfd_packet.ControlPacket(BfdState.UP, 3, 7, auth=auth).encode()


def _l2_seeds() -> Iterator[bytes]:
    peer = bytes.fromhex("020000000002")
    request = ArpPacket(
        ArpOp.REQUEST, peer, IPv4Address("192.0.2.1"), b"\0" * 6, IPv4Address("192.0.2.10")
    )
    yield b"\0" + EthernetFrame(b"\xff" * 6, peer, EtherType.ARP, request.encode()).encode()
    yield b"\0" + gratuitous_arp(peer, IPv4Address("192.0.2.10"))
    src = IPv6Address("2001:db8::1")
    for target in (IPv6Address("2001:db8::10"), IPv6Address("fe80::10")):
        ns = ndp.NeighborMessage(ndp.IcmpType.NEIGHBOR_SOLICITATION, target, 0, peer)
        dst = ndp.solicited_node(target)
        packet = ndp.IPv6Packet(src, dst, ndp.NEXT_HEADER_ICMPV6, 255, ns.encode(src, dst))
        frame = EthernetFrame(ndp.multicast_mac(dst), peer, EtherType.IPV6, packet.encode())
        yield b"\1" + frame.encode()
    yield b"\1" + unsolicited_na(peer, IPv6Address("2001:db8::10"))


def _membership_seeds() -> Iterator[bytes]:
    rumor = membership.Rumor("node-1", 5, 2, membership.State.SUSPECT, 3,
                             (frozenset({"192.0.2.10"}), frozenset({"2001:db8::10"})))
    for datagram in (
        membership.Datagram(membership.Kind.PING, "node-1", 1, 1, 0, 7),
        membership.Datagram(membership.Kind.GOSSIP, "nœud-2", 2**40, 7, 1, 0, (rumor,)),
        membership.Datagram(membership.Kind.SERVING, "node-1", 1, 2, 0, 9, total=2,
                            version=3, addresses=("192.0.2.10", "2001:db8::10")),
    ):
        wire = membership.encode(datagram, _KEY, _RECIPIENT)
        yield b"\1" + wire[: -membership.MAC_SIZE]
        yield b"\0" + wire


_BGP = ("vipcast.proto.bgp",)

TARGETS: dict[str, Target] = {
    "bgp_message": Target(bgp_message, message_seeds, _BGP, max_len=66000, bgp=True),
    "bgp_update": Target(bgp_update, update_seeds, _BGP, max_len=4200, bgp=True),
    "bgp_open": Target(bgp_open, open_seeds, _BGP, max_len=1200, bgp=True),
    "bgp_session": Target(bgp_session, session_seeds, _BGP, max_len=600),
    "bfd_packet": Target(bfd_packet_target, _bfd_seeds, ("vipcast.proto.bfd",), max_len=128),
    "l2_frame": Target(l2_frame, _l2_seeds, ("vipcast.proto.l2",), max_len=300),
    "membership_heartbeat": Target(
        membership_heartbeat, _membership_seeds, ("vipcast.proto.membership",), max_len=1400
    ),
}
