"""Golden vectors both ways: RFC-layout messages and captures from GoBGP and BIRD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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
from vipcast.proto.bgp.constants import IPV4_UNICAST, IPV6_UNICAST, MessageType
from vipcast.proto.bgp.messages import (
    Keepalive,
    Message,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
)
from vipcast.proto.bgp.update import Update, summarize_update
from vipcast.proto.bgp.wire import Framer

VECTORS = Path(__file__).parent / "vectors"
RFC = {
    k: v
    for k, v in json.loads((VECTORS / "rfc_messages.json").read_text()).items()
    if not k.startswith("_")
}
SEQ, SET = 2, 1

EXPECTED: dict[str, Message] = {
    "keepalive": Keepalive(),
    "notification_hold_expired": Notification(4, 0),
    "notification_shutdown_bye": Notification(6, 2, b"\x03bye"),
    "route_refresh_ipv6": RouteRefresh(IPV6_UNICAST),
    "open_basic": Open(
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
    ),
    "open_4byte_gr": Open(
        23456,
        180,
        "198.51.100.1",
        (
            Multiprotocol(IPV4_UNICAST),
            FourOctetAs(4200000000),
            GracefulRestart(120, restarting=True, families=((IPV4_UNICAST, False),)),
        ),
    ),
    "update_ipv4_full": Update(
        attributes=(
            OriginAttr(0),
            AsPath(((SEQ, (65001,)),)),
            NextHop("192.0.2.1"),
            Med(100),
            Communities((0xFDE90001,)),
            LargeCommunities(((65001, 1, 2),)),
        ),
        nlri=("198.51.100.0/24", "192.0.2.10/32"),
    ),
    "update_ipv4_withdraw": Update(withdrawn=("192.0.2.10/32",)),
    "update_ipv6_link_local": Update(
        attributes=(
            OriginAttr(0),
            AsPath(((SEQ, (65001,)),)),
            MpReach(IPV6_UNICAST, ("2001:db8::1", "fe80::1"), ("2001:db8:1::/48",)),
        )
    ),
    "update_ipv6_withdraw": Update(attributes=(MpUnreach(IPV6_UNICAST, ("2001:db8:1::/48",)),)),
    "eor_ipv4": Update(),
    "eor_ipv6": Update(attributes=(MpUnreach(IPV6_UNICAST, ()),)),
    "update_2byte_as4_path": Update(
        attributes=(
            OriginAttr(0),
            AsPath(((SEQ, (23456,)),)),
            NextHop("192.0.2.1"),
            As4Path(((SEQ, (4200000000,)),)),
        ),
        nlri=("10.0.0.0/8",),
    ),
    "update_ibgp_local_pref": Update(
        attributes=(OriginAttr(0), AsPath(()), NextHop("192.0.2.1"), LocalPref(200)),
        nlri=("192.0.2.0/24",),
    ),
    "update_extended_length_communities": Update(
        attributes=(
            OriginAttr(0),
            AsPath(()),
            NextHop("192.0.2.1"),
            Communities(tuple(range(65))),
        ),
        nlri=("192.0.2.0/24",),
    ),
    "open_separate_params_decode_only": Open(
        65001,
        90,
        "192.0.2.1",
        (RouteRefreshCapability(old=True), UnknownCapability(73, b"\x0a")),
    ),
    "open_rfc9072_extended_params": Open(
        65001,
        90,
        "192.0.2.1",
        (Multiprotocol(IPV4_UNICAST), UnknownCapability(200, b"\xab" * 250)),
    ),
    "update_set_opaque_aggregator": Update(
        attributes=(
            OriginAttr(2),
            AsPath(((SEQ, (65001,)), (SET, (65002, 65003)))),
            NextHop("192.0.2.1"),
            OpaqueAttribute(0xC0, 99, b"\xab\xcd"),
            AtomicAggregate(),
            Aggregator(65001, "192.0.2.1"),
        ),
        nlri=("0.0.0.0/0",),
    ),
}


def _ctx(vector: dict[str, Any]) -> WireContext:
    return WireContext(**vector.get("context", {}))


def _split(raw: bytes, ctx: WireContext) -> list[Message]:
    framer = Framer(65535)
    framer.feed(raw)
    out = []
    while (item := framer.next_message()) is not None:
        out.append(decode_message(item[0], item[1], ctx))
    return out


def test_every_vector_has_an_expected_value() -> None:
    assert set(RFC) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(RFC))
def test_rfc_vector_decodes(name: str) -> None:
    raw = bytes.fromhex(RFC[name]["hex"].replace(" ", ""))
    assert _split(raw, _ctx(RFC[name])) == [EXPECTED[name]]


@pytest.mark.parametrize("name", sorted(n for n in RFC if not RFC[n].get("decode_only")))
def test_rfc_vector_encodes(name: str) -> None:
    raw = bytes.fromhex(RFC[name]["hex"].replace(" ", ""))
    assert encode_message(EXPECTED[name], _ctx(RFC[name])) == raw


@pytest.mark.parametrize("name", ["eor_ipv4", "eor_ipv6"])
def test_end_of_rib_is_recognised(name: str) -> None:
    raw = bytes.fromhex(RFC[name]["hex"].replace(" ", ""))
    family = IPV4_UNICAST if name == "eor_ipv4" else IPV6_UNICAST
    assert summarize_update(raw[19:], WireContext()).end_of_rib == family


# --------------------------------------------------------------------------- captures


def _captured(daemon: str) -> tuple[dict[str, Any], list[bytes]]:
    record = json.loads((VECTORS / f"captured_{daemon}.json").read_text())
    return record, [bytes.fromhex(m["hex"]) for m in record["messages"]]


@pytest.mark.parametrize("daemon", ["gobgp", "bird", "frr"])
def test_captured_stream_roundtrips(daemon: str) -> None:
    _record, raws = _captured(daemon)
    for raw in raws:
        (msg,) = _split(raw, WireContext())
        again = encode_message(msg, WireContext())
        assert _split(again, WireContext()) == [msg]


def test_gobgp_capture_contents() -> None:
    record, raws = _captured("gobgp")
    opening, *_rest = (_split(r, WireContext())[0] for r in raws)
    assert isinstance(opening, Open)
    assert opening.asn == record["peer_asn"] and opening.router_id == "192.0.2.10"
    codes = {c.code for c in opening.capabilities if isinstance(c, UnknownCapability)}
    assert codes >= {73}  # FQDN: unknown to us, kept and ignored
    assert FourOctetAs(65010) in opening.capabilities
    updates = [m for m in map(lambda r: _split(r, WireContext())[0], raws) if isinstance(m, Update)]
    v4 = next(u for u in updates if u.nlri)
    assert v4.nlri == ("198.51.100.0/24",)
    assert Communities((65010 << 16 | 100,)) in v4.attributes
    assert LargeCommunities(((65010, 1, 2),)) in v4.attributes
    assert Med(10) in v4.attributes
    v6 = next(u for u in updates if any(isinstance(a, MpReach) for a in u.attributes))
    mp = next(a for a in v6.attributes if isinstance(a, MpReach))
    assert mp.next_hops == ("2001:db8::10",) and mp.nlri == ("2001:db8:1::/48",)
    # attributes in canonical order with short lengths: byte-exact re-encoding
    assert encode_message(v4) in raws


def test_bird_capture_contents() -> None:
    _record, raws = _captured("bird")
    msgs = [_split(r, WireContext())[0] for r in raws]
    opening = msgs[0]
    assert isinstance(opening, Open) and opening.hold_time == 240
    gr = next(c for c in opening.capabilities if isinstance(c, GracefulRestart))
    assert gr.restart_time == 120
    summaries = [
        summarize_update(r[19:], WireContext()) for r in raws if r[18] == MessageType.UPDATE
    ]
    assert [s.end_of_rib for s in summaries if s.end_of_rib] == [IPV4_UNICAST, IPV6_UNICAST]
    assert sum(s.announced for s in summaries) == 3
    v4 = next(m for m in msgs if isinstance(m, Update) and m.nlri)
    assert set(v4.nlri) == {"203.0.113.0/24", "203.0.113.128/25"}


def test_frr_capture_contents() -> None:
    record, raws = _captured("frr")
    msgs = [_split(r, WireContext())[0] for r in raws]
    opening = msgs[0]
    assert isinstance(opening, Open)
    assert opening.asn == record["peer_asn"] and opening.hold_time == 180
    caps = opening.capabilities
    assert ExtendedMessage() in caps and FourOctetAs(65030) in caps
    assert RouteRefreshCapability(old=True) in caps and RouteRefreshCapability() in caps
    gr = next(c for c in caps if isinstance(c, GracefulRestart))
    assert (gr.restart_time, gr.restarting, gr.notification) == (120, True, True)
    unknown = {c.code for c in caps if isinstance(c, UnknownCapability)}
    assert unknown >= {69, 70, 71, 73}  # ADD-PATH, enhanced RR, LLGR, hostname: ignored
    v4 = next(m for m in msgs if isinstance(m, Update) and m.nlri)
    assert v4.nlri == ("203.0.113.0/24",)
    assert Communities((65030 << 16 | 9,)) in v4.attributes
    assert LargeCommunities(((65030, 1, 2),)) in v4.attributes and Med(7) in v4.attributes
    v6 = next(m for m in msgs if isinstance(m, Update) and not m.nlri)
    mp = next(a for a in v6.attributes if isinstance(a, MpReach))
    assert mp.next_hops == ("::ffff:7f00:1",) and mp.nlri == ("2001:db8:3::/48",)


@pytest.mark.parametrize(("daemon", "announced"), [("gobgp", 2), ("bird", 3), ("frr", 2)])
def test_captured_stream_drives_a_session(daemon: str, announced: int) -> None:
    """The daemon's bytes, fed to a session in one go and byte by byte, establish it."""
    from vipcast.proto.bgp import Session, SessionConfig, State

    record, raws = _captured(daemon)
    stream = b"".join(raws)
    for chunks in ([stream], [stream[i : i + 1] for i in range(len(stream))]):
        session = Session(SessionConfig(65001, record["peer_asn"], "192.0.2.1", passive=True))
        session.start(0)
        session.connection_made(0, "127.0.0.2")
        for chunk in chunks:
            session.receive_data(chunk, 1)
        assert session.state is State.ESTABLISHED
        assert session.stats.prefixes_received == announced
        assert session.stats.notifications_sent == 0
