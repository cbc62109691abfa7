"""Fuzz targets: one function per decoder, bytes in, nothing out; only a bug raises.

Each target feeds its input to a vipcast decoder and lets through exactly the rejections the
RFCs give (a ``BGPError`` whose code/subcode is in :data:`BGP_ANSWERS`, a BFD ``DropReason``,
an ``L2Error``, a membership ``WireError``); anything else escapes and is a crash. Accepted
inputs are checked further: what was decoded encodes back to something that decodes to the same
value, and everything a session sends decodes cleanly. ``seeds(name)`` gives each target a starting
corpus built from the encoders (every capability, every attribute vipcast knows, MP_REACH and
MP_UNREACH for IPv4 and IPv6, communities of all three kinds), the vectors in the repository
and, for BGP, the FRR corpus when it is present. ``bench/fuzz.py`` drives them with atheris.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import struct
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from vipcast.proto.bfd import packet as bfd_packet
from vipcast.proto.bfd.constants import AuthType
from vipcast.proto.bfd.constants import State as BfdState
from vipcast.proto.bfd.session import Session as BfdSession
from vipcast.proto.bfd.session import SessionConfig as BfdConfig
from vipcast.proto.bgp import (
    NotificationSent,
    RouteAttributes,
    Session,
    SessionConfig,
    StateChanged,
    fsm,
)
from vipcast.proto.bgp.attributes import (
    Aggregator,
    As4Path,
    AsPath,
    AtomicAggregate,
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
    MAX_EXTENDED_MESSAGE_LEN,
    AttrType,
    Family,
    MessageType,
)
from vipcast.proto.bgp.errors import BGPError
from vipcast.proto.bgp.messages import (
    Keepalive,
    Message,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
)
from vipcast.proto.bgp.negotiation import negotiate
from vipcast.proto.bgp.update import Update, decode_update, summarize_update
from vipcast.proto.bgp.wire import Framer
from vipcast.proto.l2 import ndp
from vipcast.proto.l2.arp import ArpOp, ArpPacket, decode_arp
from vipcast.proto.l2.errors import L2Error
from vipcast.proto.l2.ethernet import EthernetFrame, EtherType, decode_frame
from vipcast.proto.l2.responder import OwnedAddresses, decide, gratuitous_arp, unsolicited_na
from vipcast.proto.membership import Membership, MembershipConfig
from vipcast.proto.membership import codec as membership

TESTS = Path(__file__).resolve().parents[1]

#: every NOTIFICATION vipcast may answer a peer's bytes with, and the rule that gives it
BGP_ANSWERS: dict[tuple[int, int], str] = {
    (1, 1): "RFC 4271 §6.1 Connection Not Synchronized",
    (1, 2): "RFC 4271 §6.1 Bad Message Length",
    (1, 3): "RFC 4271 §6.1 Bad Message Type",
    (2, 0): "RFC 4271 §6.2/§4.5 malformed OPEN, unspecific",
    (2, 1): "RFC 4271 §6.2 Unsupported Version Number",
    (2, 2): "RFC 4271 §6.2 Bad Peer AS",
    (2, 3): "RFC 4271 §6.2 Bad BGP Identifier",
    (2, 4): "RFC 4271 §6.2 Unsupported Optional Parameter",
    (2, 6): "RFC 4271 §6.2 Unacceptable Hold Time",
    (3, 1): "RFC 4271 §6.3 Malformed Attribute List / RFC 7606 §3g, §4",
    (3, 2): "RFC 4271 §6.3 Unrecognized Well-known Attribute",
    (3, 3): "RFC 4271 §6.3 / RFC 7606 §3d Missing Well-known Attribute",
    (3, 4): "RFC 4271 §6.3 / RFC 7606 §3c Attribute Flags Error",
    (3, 5): "RFC 4271 §6.3 / RFC 7606 §7 Attribute Length Error",
    (3, 6): "RFC 4271 §6.3 / RFC 7606 §7.1 Invalid ORIGIN",
    (3, 8): "RFC 4271 §6.3 / RFC 7606 §7.3 Invalid NEXT_HOP",
    (3, 9): "RFC 4271 §6.3 / RFC 7606 §7.11 Optional Attribute Error",
    (3, 10): "RFC 4271 §6.3 / RFC 7606 §5.3 Invalid Network Field",
    (3, 11): "RFC 4271 §6.3 / RFC 7606 §7.2 Malformed AS_PATH",
    (4, 0): "RFC 4271 §6.5 Hold Timer Expired",
    (5, 0): "RFC 4271 §6.6 Finite State Machine Error",
    (5, 1): "RFC 6608 §4 unexpected message in OpenSent",
    (5, 2): "RFC 6608 §4 unexpected message in OpenConfirm",
    (5, 3): "RFC 6608 §4 unexpected message in Established",
    (6, 2): "RFC 4486 §3 / RFC 9003 Administrative Shutdown",
    (6, 7): "RFC 4486 §3 Connection Collision Resolution",
    (7, 1): "RFC 7313 §5 ROUTE-REFRESH Invalid Message Length",
}

#: what RFC 7606 lets an UPDATE keep going with (treat-as-withdraw, attribute-discard)
ABSORBED: frozenset[tuple[int, int]] = frozenset(
    {(3, 1), (3, 3), (3, 4), (3, 5), (3, 6), (3, 8), (3, 9), (3, 11)}
)


class UnmappedRejection(AssertionError):
    """A rejection without an RFC answer: a bug like any other exception."""


def answer(error: BGPError) -> str:
    rule = BGP_ANSWERS.get((error.code, error.subcode))
    if rule is None:
        raise UnmappedRejection(f"{error!r} has no RFC answer")
    return rule


# --------------------------------------------------------------------------- contexts

CONTEXTS = (
    WireContext(),
    WireContext(four_octet_as=False),
    WireContext(ibgp=True),
    WireContext(four_octet_as=False, ibgp=True, families=frozenset({IPV4_UNICAST})),
)


def _context(data: bytes) -> tuple[WireContext, bytes]:
    if not data:
        return CONTEXTS[0], data
    return CONTEXTS[data[0] % len(CONTEXTS)], data[1:]


# --------------------------------------------------------------------------- BGP targets

#: tests/fuzz/test_fuzz_slice.py checks that the runner reports a crash: it plants one
_PLANTED_BUG = os.environ.get("VIPCAST_FUZZ_PLANTED_BUG") == "1"
_KEEPALIVE = b"\xff" * 16 + b"\x00\x13\x04"


def _same_again(message: Message, ctx: WireContext) -> None:
    """An accepted message encodes to bytes that decode to the same value."""
    if isinstance(message, Update) and message.treat_as_withdraw:
        return
    try:
        wire = encode_message(message, ctx)
    except ValueError:
        return  # values the wire cannot carry (e.g. a capability over 255 bytes): not sent
    framer = Framer(MAX_EXTENDED_MESSAGE_LEN)
    framer.feed(wire)
    item = framer.next_message()
    assert item is not None and not framer.buffered, "re-encoded message does not frame"
    again = decode_message(item[0], item[1], ctx)
    assert again == message, f"decode(encode(x)) != x:\n{message!r}\n{again!r}"


def bgp_message(data: bytes) -> None:
    """Any bytes as a stream from a peer: framing, every message decoder, both UPDATE readers."""
    ctx, data = _context(data)
    if _PLANTED_BUG and _KEEPALIVE in data:
        raise RuntimeError("planted bug: the runner must report this")
    framer = Framer(MAX_EXTENDED_MESSAGE_LEN)
    framer.feed(data)
    while True:
        try:
            item = framer.next_message()
            if item is None:
                return
            msg_type, body = item
            if msg_type == MessageType.UPDATE:
                summary = summarize_update(body, ctx)
                for problem in summary.problems:
                    assert (problem.code, problem.subcode) in ABSORBED, repr(problem)
            message = decode_message(msg_type, body, ctx)
        except BGPError as error:
            answer(error)
            return
        if msg_type == MessageType.UPDATE:
            assert isinstance(message, Update)
            assert message.treat_as_withdraw == summary.treat_as_withdraw
        _same_again(message, ctx)


def bgp_update(data: bytes) -> None:
    """Any bytes as an UPDATE body (no framing in the way)."""
    ctx, body = _context(data)
    try:
        summary = summarize_update(body, ctx)
    except BGPError as error:
        answer(error)
        try:
            decode_update(body, ctx)
        except BGPError as again:
            assert (again.code, again.subcode) == (error.code, error.subcode), (error, again)
            return
        raise AssertionError(f"summarize_update raised {error!r}, decode_update did not") from None
    message = decode_update(body, ctx)
    assert message.treat_as_withdraw == summary.treat_as_withdraw
    for problem in summary.problems:
        assert (problem.code, problem.subcode) in ABSORBED, repr(problem)
    _same_again(message, ctx)


_LOCAL_OPEN = Open(
    65001,
    90,
    "192.0.2.1",
    (
        Multiprotocol(IPV4_UNICAST),
        Multiprotocol(IPV6_UNICAST),
        RouteRefreshCapability(),
        FourOctetAs(65001),
        ExtendedMessage(),
    ),
)


def bgp_open(data: bytes) -> None:
    """Any bytes as an OPEN body, then negotiation against our OPEN (peer AS 65002 or 65001)."""
    if not data:
        return
    expected = 65001 if data[0] & 1 else 65002
    body = data[1:]
    try:
        remote = decode_message(MessageType.OPEN, body)
        assert isinstance(remote, Open)
        negotiate(_LOCAL_OPEN, remote, local_asn=65001, expected_peer_asn=expected)
    except BGPError as error:
        answer(error)
        return
    _same_again(remote, WireContext())


# --------------------------------------------------------------------------- the BGP session

_SESSION_CFGS = (
    SessionConfig(65001, 65002, "192.0.2.1", hold_time=9, next_hop_v6="2001:db8::1"),
    SessionConfig(65001, 65002, "192.0.2.1", passive=True, graceful_restart=True),
    SessionConfig(65001, 65001, "192.0.2.1", hold_time=3, extended_messages=False),
)
_ROUTES = (
    {},
    {"198.51.100.0/24": RouteAttributes(med=5, communities=(65001 << 16 | 1,))},
    {
        "203.0.113.7/32": RouteAttributes(large_communities=((65001, 1, 2),)),
        "2001:db8:1::/48": RouteAttributes(local_pref=200),
    },
)


def _peer_open(asn: int, hold: int) -> bytes:
    caps = (Multiprotocol(IPV4_UNICAST), Multiprotocol(IPV6_UNICAST), FourOctetAs(asn))
    return encode_message(Open(asn, hold, "192.0.2.2", (*caps, RouteRefreshCapability())))


#: whole messages a peer might send; the session target mixes them with raw bytes
_PEER_MESSAGES = (
    _peer_open(65002, 90),
    _peer_open(65001, 3),
    encode_message(Keepalive()),
    encode_message(Notification(6, 2, b"\x03bye")),
    encode_message(RouteRefresh(IPV4_UNICAST)),
    encode_message(
        Update(
            attributes=(OriginAttr(0), AsPath(((2, (65002,)),)), NextHop("192.0.2.2")),
            nlri=("198.51.100.0/24",),
        )
    ),
    encode_message(Update()),
)


def _check_sent(session: Session, sent: bytes) -> None:
    """What we send must frame and decode without an error, with our own context."""
    framer = Framer(MAX_EXTENDED_MESSAGE_LEN)
    framer.feed(sent)
    while (item := framer.next_message()) is not None:
        decode_message(item[0], item[1], WireContext(ibgp=session.config.local_asn == 65002))
    assert not framer.buffered, "a partial message was sent"


def bgp_session(data: bytes) -> None:
    """A session driven by an arbitrary sequence of driver calls and peer bytes."""
    if len(data) < 2:
        return
    cfg = _SESSION_CFGS[data[0] % len(_SESSION_CFGS)]
    session = Session(cfg)
    now = 0.0
    off = 1
    while off < len(data):
        op, arg = data[off] % 12, data[off + 1] if off + 1 < len(data) else 0
        off += 2
        if op == 0:
            session.start(now)
        elif op == 1:
            session.stop(now, "fuzz" * (arg % 3))
        elif op == 2:
            session.connection_made(now, "192.0.2.1" if arg & 1 else "2001:db8::1")
        elif op == 3:
            session.connection_lost(now)
        elif op == 4:
            session.receive_data(_PEER_MESSAGES[arg % len(_PEER_MESSAGES)], now)
        elif op == 5:  # raw bytes: the next ``arg`` input bytes
            session.receive_data(data[off : off + arg], now)
            off += arg
        elif op == 6:
            now += arg / 8
            session.handle_timer(now)
        elif op == 7:
            deadline = session.next_deadline()
            if deadline is not None:
                now = max(now, deadline)
                session.handle_timer(now)
        elif op == 8:
            session.set_routes(_ROUTES[arg % len(_ROUTES)])
        elif op == 9:
            session.resolve_collision(now)
        elif op == 10:  # a whole peer message, split at ``arg``
            msg = _PEER_MESSAGES[arg % len(_PEER_MESSAGES)]
            cut = arg % (len(msg) + 1)
            session.receive_data(msg[:cut], now)
            session.receive_data(msg[cut:], now)
        else:
            now += arg
        _check_events(session)
        _check_sent(session, session.data_to_send())


def _check_events(session: Session) -> None:
    while (event := session.next_event()) is not None:
        if isinstance(event, StateChanged):
            reachable = {t.next_state for (s, _), t in fsm.TRANSITIONS.items() if s is event.old}
            reachable.add(fsm.FSM_ERROR[event.old].next_state)
            assert event.new in reachable, f"{event.old} -> {event.new} is in no table row"
        elif isinstance(event, NotificationSent):
            note = event.notification
            assert (note.code, note.subcode) in BGP_ANSWERS, note


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


# --------------------------------------------------------------------------- registry


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


def _vector_messages() -> Iterator[bytes]:
    vectors = TESTS / "bgp" / "vectors"
    for vector in json.loads((vectors / "rfc_messages.json").read_text()).values():
        if isinstance(vector, dict) and "hex" in vector:
            yield bytes.fromhex(vector["hex"].replace(" ", ""))
    for name in ("captured_frr.json", "captured_bird.json", "captured_gobgp.json"):
        for message in json.loads((vectors / name).read_text()).get("messages", []):
            yield bytes.fromhex(message["hex"].replace(" ", ""))


def _frr_corpus() -> Iterator[bytes]:
    if os.environ.get("VIPCAST_FUZZ_FRR_SEEDS") == "0":
        return
    directory = Path(
        os.environ.get("VIPCAST_BGP_CORPUS")
        or TESTS.parent.parent / "shared" / "corpora" / "bgp-frr" / "bgpd"
    )
    if not (directory / "gen").is_dir():
        # the unchanged copy packed beside the corpus tests (tests/bgp/vectors/frr-corpus)
        packed = TESTS / "bgp" / "vectors" / "frr-corpus" / "bgpd.tar.xz"
        if packed.is_file():
            with tarfile.open(packed) as tar:
                for member in sorted(tar.getmembers(), key=lambda m: m.name):
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        yield handle.read()
        return
    for sub in ("seed", "gen"):
        if (directory / sub).is_dir():
            for path in sorted((directory / sub).iterdir()):
                yield path.read_bytes()


def _every_capability() -> Iterator[Open]:
    caps = (
        Multiprotocol(IPV4_UNICAST),
        Multiprotocol(IPV6_UNICAST),
        Multiprotocol(Family(25, 70)),
        RouteRefreshCapability(),
        RouteRefreshCapability(old=True),
        ExtendedMessage(),
        FourOctetAs(4200000001),
        GracefulRestart(120, True, True, ((IPV4_UNICAST, True), (IPV6_UNICAST, False))),
        UnknownCapability(69, b"\x00\x01\x01\x01"),
        UnknownCapability(73, b"\x04host\x00"),
    )
    yield Open(23456, 90, "192.0.2.2", caps)
    yield Open(65002, 0, "192.0.2.2", caps[:3])
    yield Open(65002, 3, "10.0.1.1", ())
    # RFC 9072 extended optional parameters (over 255 bytes of capabilities)
    yield Open(
        65002, 90, "192.0.2.2", tuple(UnknownCapability(200 + i, b"x" * 40) for i in range(8))
    )


def _every_attribute() -> Iterator[Update]:
    base = (OriginAttr(0), AsPath(((2, (65002, 4200000001)), (1, (1, 2)))))
    v4 = ("198.51.100.0/24", "203.0.113.7/32", "0.0.0.0/0")
    v6 = ("2001:db8:1::/48", "2001:db8::1/128", "::/0")
    yield Update(
        withdrawn=("192.0.2.0/25",),
        attributes=(
            *base,
            NextHop("192.0.2.2"),
            Med(5),
            LocalPref(200),
            AtomicAggregate(),
            Aggregator(65002, "192.0.2.2"),
            Communities((0xFFFFFF01, 65002 << 16 | 7)),
            OpaqueAttribute(0x80, AttrType.ORIGINATOR_ID, b"\xc0\x00\x02\x02"),
            OpaqueAttribute(0x80, AttrType.CLUSTER_LIST, b"\xc0\x00\x02\x02" * 2),
            OpaqueAttribute(0xC0, AttrType.EXTENDED_COMMUNITIES, bytes.fromhex("0002fde800000001")),
            As4Path(((2, (4200000001,)),)),
            OpaqueAttribute(0xC0, AttrType.AS4_AGGREGATOR, b"\xfa\x56\xea\x01\xc0\x00\x02\x02"),
            LargeCommunities(((65002, 1, 2), (4200000001, 3, 4))),
            OpaqueAttribute(0xC0, 99, b"unknown transitive"),
        ),
        nlri=v4,
    )
    yield Update(attributes=(*base, MpReach(IPV6_UNICAST, ("2001:db8::2", "fe80::2"), v6)))
    yield Update(attributes=(*base, MpReach(IPV4_UNICAST, ("192.0.2.2",), v4)))
    yield Update(attributes=(MpUnreach(IPV6_UNICAST, v6),))
    yield Update(attributes=(MpUnreach(IPV4_UNICAST, v4),))
    yield Update(attributes=(MpUnreach(IPV6_UNICAST, ()),))  # End-of-RIB IPv6
    yield Update()
    yield Update(
        attributes=(*base, NextHop("192.0.2.2"), Communities(tuple(range(80)))), nlri=v4[:1]
    )


def _bgp_seeds() -> Iterator[bytes]:
    for msg in _every_capability():
        yield encode_message(msg)
    for update in _every_attribute():
        yield encode_message(update)
    yield encode_message(Notification(6, 2, b"\x03bye"))
    yield encode_message(RouteRefresh(IPV6_UNICAST))
    yield encode_message(Keepalive())
    yield from _vector_messages()
    yield from _frr_corpus()


def _with_context(seeds: Iterator[bytes]) -> Iterator[bytes]:
    for i, seed in enumerate(seeds):
        yield bytes((i % len(CONTEXTS),)) + seed


def _message_seeds() -> Iterator[bytes]:
    return _with_context(_bgp_seeds())


def _update_seeds() -> Iterator[bytes]:
    return _with_context(s[19:] for s in _bgp_seeds() if s[18:19] == b"\x02")


def _open_seeds() -> Iterator[bytes]:
    for i, s in enumerate(_bgp_seeds()):
        if s[18:19] == b"\x01":
            yield bytes((i % 2,)) + s[19:]


def _session_seeds() -> Iterator[bytes]:
    # start, connect, their OPEN, KEEPALIVE, routes, a timer, their UPDATE, raw bytes, stop
    yield bytes([0, 0, 0, 2, 1, 4, 0, 4, 2, 8, 1, 7, 0, 4, 5, 5, 4]) + b"\xff" * 4 + bytes([1, 1])
    yield bytes([1, 0, 0, 2, 0, 4, 1, 4, 2, 8, 2, 4, 4, 6, 200, 7, 0, 3, 0, 7, 0, 2, 0])
    yield bytes([2, 0, 0, 2, 1, 4, 1, 4, 2, 9, 0, 10, 33, 4, 3, 7, 0, 7, 0])


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
    "bgp_message": Target(bgp_message, _message_seeds, _BGP, max_len=66000, bgp=True),
    "bgp_update": Target(bgp_update, _update_seeds, _BGP, max_len=4200, bgp=True),
    "bgp_open": Target(bgp_open, _open_seeds, _BGP, max_len=1200, bgp=True),
    "bgp_session": Target(bgp_session, _session_seeds, _BGP, max_len=600),
    "bfd_packet": Target(bfd_packet_target, _bfd_seeds, ("vipcast.proto.bfd",), max_len=128),
    "l2_frame": Target(l2_frame, _l2_seeds, ("vipcast.proto.l2",), max_len=300),
    "membership_heartbeat": Target(
        membership_heartbeat, _membership_seeds, ("vipcast.proto.membership",), max_len=1400
    ),
}
