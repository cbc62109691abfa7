"""Attribute codec and RFC 7606 outcomes (treat-as-withdraw, attribute-discard, reset)."""

from __future__ import annotations

import struct

import pytest

from vipcast.proto.bgp.attributes import (
    Communities,
    LocalPref,
    OpaqueAttribute,
    WireContext,
    decode_attributes,
    encode_attribute,
    for_forwarding,
)
from vipcast.proto.bgp.errors import BGPError
from vipcast.proto.bgp.update import summarize_update

ORIGIN = bytes.fromhex("40010100")
AS_PATH = bytes.fromhex("4002060201" + "0000fde9")
NEXT_HOP = bytes.fromhex("400304c0000201")
NLRI = bytes.fromhex("18c63364")


def body(attrs: bytes, nlri: bytes = NLRI, withdrawn: bytes = b"") -> bytes:
    return (
        struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    )


def test_valid_update_counts() -> None:
    s = summarize_update(body(ORIGIN + AS_PATH + NEXT_HOP), WireContext())
    assert (s.announced, s.withdrawn, s.treat_as_withdraw) == (1, 0, False)


@pytest.mark.parametrize(
    ("attrs", "why"),
    [
        (bytes.fromhex("40010103") + AS_PATH + NEXT_HOP, "ORIGIN value 3"),
        (bytes.fromhex("4001020000") + AS_PATH + NEXT_HOP, "ORIGIN length 2"),
        (ORIGIN + bytes.fromhex("4002020200") + NEXT_HOP, "AS_PATH empty segment"),
        (ORIGIN + bytes.fromhex("40020602020000fde9") + NEXT_HOP, "AS_PATH segment overruns"),
        (ORIGIN + bytes.fromhex("4002060501" + "0000fde9") + NEXT_HOP, "segment type 5"),
        (ORIGIN + AS_PATH + bytes.fromhex("40030400000000"), "NEXT_HOP 0.0.0.0"),
        (ORIGIN + AS_PATH + bytes.fromhex("400303c00002"), "NEXT_HOP length 3"),
        (ORIGIN + AS_PATH, "NEXT_HOP missing"),
        (AS_PATH + NEXT_HOP, "ORIGIN missing"),
        (ORIGIN + AS_PATH + NEXT_HOP + bytes.fromhex("c00803000001"), "COMMUNITIES length 3"),
        (ORIGIN + AS_PATH + NEXT_HOP + bytes.fromhex("c0200400000001"), "LARGE length 4"),
        (ORIGIN + AS_PATH + NEXT_HOP + bytes.fromhex("80040300000a"), "MED length 3"),
        (bytes.fromhex("c0010100") + AS_PATH + NEXT_HOP, "ORIGIN flagged optional"),
        (ORIGIN + AS_PATH + NEXT_HOP + bytes.fromhex("c008ff00"), "attribute overruns section"),
    ],
)
def test_treat_as_withdraw(attrs: bytes, why: str) -> None:
    s = summarize_update(body(attrs), WireContext())
    assert s.treat_as_withdraw, why
    assert (s.announced, s.withdrawn) == (0, 1)
    assert s.problems


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (bytes.fromhex("40060101"), 6),  # ATOMIC_AGGREGATE with a value
        (bytes.fromhex("c007080000fde9c0000201"), 7),  # 4-byte AGGREGATOR on a 2-byte session
        (bytes.fromhex("c011030201 00"), 17),  # AS4_PATH segment overruns (2-byte session)
    ],
)
def test_attribute_discard(extra: bytes, code: int) -> None:
    section = decode_attributes(
        ORIGIN + bytes.fromhex("400204020100fd") + NEXT_HOP + extra,
        WireContext(four_octet_as=False),
    )
    assert not section.treat_as_withdraw
    assert code in section.discarded


def test_duplicate_attribute_keeps_the_first() -> None:
    section = decode_attributes(
        ORIGIN + AS_PATH + NEXT_HOP + bytes.fromhex("40010102"), WireContext()
    )
    assert 1 in section.discarded and not section.treat_as_withdraw


def test_local_pref_from_ebgp_is_dropped_and_kept_on_ibgp() -> None:
    lp = bytes.fromhex("40050400000064")
    assert LocalPref(100) not in decode_attributes(lp, WireContext(ibgp=False)).attributes
    assert LocalPref(100) in decode_attributes(lp, WireContext(ibgp=True)).attributes


@pytest.mark.parametrize(
    ("attrs", "subcode"),
    [
        (ORIGIN + AS_PATH + NEXT_HOP + bytes.fromhex("40630100"), 2),  # unknown well-known
        (bytes.fromhex("800e0200") + ORIGIN, 9),  # MP_REACH too short
        (bytes.fromhex("800e050002011000"), 9),  # next hop length past the end
        (bytes.fromhex("800f0400020180") + ORIGIN, 10),  # MP_UNREACH prefix length 128 no bytes
        (bytes.fromhex("800f03000201800f03000201"), 1),  # MP_UNREACH twice
    ],
)
def test_session_reset(attrs: bytes, subcode: int) -> None:
    with pytest.raises(BGPError) as info:
        summarize_update(body(attrs, nlri=b""), WireContext())
    assert (info.value.code, info.value.subcode) == (3, subcode)


@pytest.mark.parametrize(
    "raw",
    [
        body(ORIGIN + AS_PATH + NEXT_HOP, nlri=bytes.fromhex("21c0000201ff")),  # /33
        body(ORIGIN + AS_PATH + NEXT_HOP, nlri=bytes.fromhex("18c0")),  # truncated prefix
        body(b"", nlri=b"", withdrawn=bytes.fromhex("20c00002")),  # truncated withdrawn
        bytes.fromhex("0009") + b"\0\0",  # withdrawn length overruns
        bytes.fromhex("00000009") + b"\0",  # attribute length overruns
    ],
)
def test_unparseable_nlri_resets(raw: bytes) -> None:
    with pytest.raises(BGPError) as info:
        summarize_update(raw, WireContext())
    assert info.value.code == 3


def test_unknown_optional_non_transitive_is_ignored_and_transitive_kept() -> None:
    section = decode_attributes(bytes.fromhex("80630100c0640101"), WireContext())
    assert section.attributes == [OpaqueAttribute(0xC0, 100, b"\x01")]
    forwarded = for_forwarding(section.attributes[0])  # type: ignore[arg-type]
    assert forwarded.flags & 0x20
    assert encode_attribute(forwarded, WireContext()) == bytes.fromhex("e0640101")


def test_long_attribute_uses_extended_length() -> None:
    raw = encode_attribute(Communities(tuple(range(100))), WireContext())
    assert raw[0] == 0xD0 and struct.unpack("!H", raw[2:4])[0] == 400
    assert decode_attributes(raw, WireContext()).attributes == [Communities(tuple(range(100)))]


def test_mp_family_not_negotiated_is_ignored() -> None:
    ctx = WireContext(families=frozenset())
    reach = bytes.fromhex("800e1c0002011020010db8000000000000000000000001003020010db80001")
    s = summarize_update(body(ORIGIN + AS_PATH + reach, nlri=b""), ctx)
    assert (s.announced, s.treat_as_withdraw) == (0, False)


def test_confederation_segments_only_from_internal_peers() -> None:
    confed = ORIGIN + bytes.fromhex("4002060301" + "0000fde9") + NEXT_HOP
    assert summarize_update(body(confed), WireContext(ibgp=False)).treat_as_withdraw
    assert not summarize_update(body(confed), WireContext(ibgp=True)).treat_as_withdraw
