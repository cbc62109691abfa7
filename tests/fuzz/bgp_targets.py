"""The BGP fuzz targets (a peer's message stream, UPDATE bodies, OPENs, a whole session driven
by fuzzed calls) with their seeds, and the table of the rejections the RFCs allow
(:data:`BGP_ANSWERS`). Registered in :mod:`targets`."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

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


def message_seeds() -> Iterator[bytes]:
    return _with_context(_bgp_seeds())


def update_seeds() -> Iterator[bytes]:
    return _with_context(s[19:] for s in _bgp_seeds() if s[18:19] == b"\x02")


def open_seeds() -> Iterator[bytes]:
    for i, s in enumerate(_bgp_seeds()):
        if s[18:19] == b"\x01":
            yield bytes((i % 2,)) + s[19:]


def session_seeds() -> Iterator[bytes]:
    # start, connect, their OPEN, KEEPALIVE, routes, a timer, their UPDATE, raw bytes, stop
    yield bytes([0, 0, 0, 2, 1, 4, 0, 4, 2, 8, 1, 7, 0, 4, 5, 5, 4]) + b"\xff" * 4 + bytes([1, 1])
    yield bytes([1, 0, 0, 2, 0, 4, 1, 4, 2, 8, 2, 4, 4, 6, 200, 7, 0, 3, 0, 7, 0, 2, 0])
    yield bytes([2, 0, 0, 2, 1, 4, 1, 4, 2, 9, 0, 10, 33, 4, 3, 7, 0, 7, 0])
