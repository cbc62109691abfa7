"""The UPDATE message (RFC 4271 §4.3, RFC 4760 MP_REACH/MP_UNREACH, RFC 7606 outcomes).

Two readers over one parser: :func:`decode_update` builds the full :class:`Update` value
(tests, tools); :func:`summarize_update` only validates and counts, which is all the session
keeps of received routes (vipcast installs nothing it learns).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from .attributes import (
    AsPath,
    Attribute,
    AttributeSection,
    MpReach,
    MpUnreach,
    NextHop,
    OriginAttr,
    WireContext,
    decode_attributes,
    encode_attribute,
    header,
)
from .constants import (
    AFI,
    IPV4_UNICAST,
    AttrFlag,
    AttrType,
    ErrorCode,
    Family,
    UpdateSubcode,
)
from .errors import BGPError
from .prefixes import count_nlri, decode_nlri, encode_prefix


@dataclass(frozen=True)
class Update:
    withdrawn: tuple[str, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    nlri: tuple[str, ...] = ()
    #: set by the decoder when RFC 7606 turned the announcements into withdrawals
    treat_as_withdraw: bool = False


@dataclass(frozen=True)
class UpdateSummary:
    announced: int = 0
    withdrawn: int = 0
    treat_as_withdraw: bool = False
    end_of_rib: Family | None = None
    problems: tuple[BGPError, ...] = field(default=(), compare=False)
    #: type codes of attributes dropped under RFC 7606 attribute-discard (or repeated, §3g)
    discarded: tuple[int, ...] = field(default=(), compare=False)
    #: the first malformation that made it treat-as-withdraw
    withdraw_reason: BGPError | None = field(default=None, compare=False)


def _malformed(reason: str, subcode: int = UpdateSubcode.MALFORMED_ATTRIBUTE_LIST) -> BGPError:
    return BGPError(ErrorCode.UPDATE_MESSAGE, subcode, reason=reason)


@dataclass
class _Parsed:
    withdrawn: bytes
    section: AttributeSection
    nlri: bytes
    mp_reach: tuple[Family, tuple[str, ...], bytes] | None = None
    mp_unreach: tuple[Family, bytes] | None = None
    #: an MP attribute for a family we do not speak: ignored (RFC 4760 §7)
    ignored_family: bool = False


def _parse(body: bytes, ctx: WireContext) -> _Parsed:
    if len(body) < 4:
        raise _malformed("UPDATE shorter than 4 bytes")
    (wlen,) = struct.unpack_from("!H", body)
    if 2 + wlen + 2 > len(body):
        raise _malformed("withdrawn routes length overruns")
    (alen,) = struct.unpack_from("!H", body, 2 + wlen)
    astart = 4 + wlen
    if astart + alen > len(body):
        raise _malformed("total path attribute length overruns")
    parsed = _Parsed(
        withdrawn=body[2 : 2 + wlen],
        section=decode_attributes(body[astart : astart + alen], ctx),
        nlri=body[astart + alen :],
    )
    section = parsed.section
    if section.mp_reach is not None:
        parsed.mp_reach = _parse_mp_reach(section, ctx)
        parsed.ignored_family |= parsed.mp_reach is None
    if section.mp_unreach is not None:
        parsed.mp_unreach = _parse_mp_unreach(section.mp_unreach, ctx)
        parsed.ignored_family |= parsed.mp_unreach is None
    # mandatory attributes when something is announced (RFC 7606 §3d: treat-as-withdraw)
    announcing = bool(parsed.nlri) or (parsed.mp_reach is not None and bool(parsed.mp_reach[2]))
    if announcing and not section.treat_as_withdraw:
        needed = {AttrType.ORIGIN, AttrType.AS_PATH}
        if parsed.nlri:
            needed.add(AttrType.NEXT_HOP)
        missing = needed - section.seen
        if missing:
            section.withdraw(
                _malformed(
                    f"missing well-known attribute {min(missing)}",
                    UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE,
                )
            )
    return parsed


def _parse_mp_reach(
    section: AttributeSection, ctx: WireContext
) -> tuple[Family, tuple[str, ...], bytes] | None:
    value = section.mp_reach or b""
    if len(value) < 5:
        raise _malformed("MP_REACH_NLRI too short", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)
    afi, safi, nhlen = struct.unpack_from("!HBB", value)
    if 4 + nhlen + 1 > len(value):
        raise _malformed("MP_REACH_NLRI next hop overruns", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)
    family = Family(afi, safi)
    if family not in ctx.families:
        return None
    nlri = value[5 + nhlen :]
    count_nlri(nlri, afi)  # an unparseable NLRI is a session reset (RFC 7606 §5.3)
    raw = value[4 : 4 + nhlen]
    hops: tuple[str, ...] = ()
    if afi == AFI.IPV4 and nhlen == 4:
        hops = (str(ipaddress.IPv4Address(raw)),)
    elif afi == AFI.IPV6 and nhlen in (16, 32):
        hops = tuple(str(ipaddress.IPv6Address(raw[i : i + 16])) for i in range(0, nhlen, 16))
    else:
        section.withdraw(
            _malformed(
                f"MP_REACH_NLRI next hop length {nhlen}", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR
            )
        )
    return family, hops, nlri


def _parse_mp_unreach(value: bytes, ctx: WireContext) -> tuple[Family, bytes] | None:
    if len(value) < 3:
        raise _malformed("MP_UNREACH_NLRI too short", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)
    afi, safi = struct.unpack_from("!HB", value)
    family = Family(afi, safi)
    if family not in ctx.families:
        return None
    withdrawn = value[3:]
    count_nlri(withdrawn, afi)
    return family, withdrawn


def summarize_update(body: bytes, ctx: WireContext) -> UpdateSummary:
    """Validate an UPDATE and count it; raise BGPError only for session-reset errors."""
    p = _parse(body, ctx)
    withdrawn = count_nlri(p.withdrawn, AFI.IPV4)
    announced = count_nlri(p.nlri, AFI.IPV4)
    if p.mp_unreach is not None:
        withdrawn += count_nlri(p.mp_unreach[1], p.mp_unreach[0].afi)
    if p.mp_reach is not None:
        announced += count_nlri(p.mp_reach[2], p.mp_reach[0].afi)
    eor: Family | None = None
    if len(body) == 4 and body == b"\0\0\0\0":
        eor = IPV4_UNICAST
    elif (
        p.mp_unreach is not None
        and not p.mp_unreach[1]
        and p.mp_reach is None
        and not p.withdrawn
        and not p.nlri
        and len(p.section.seen) == 1
    ):
        eor = p.mp_unreach[0]
    taw = p.section.treat_as_withdraw
    if taw:
        withdrawn, announced = withdrawn + announced, 0
    return UpdateSummary(
        announced,
        withdrawn,
        taw,
        eor,
        tuple(p.section.problems),
        tuple(p.section.discarded),
        p.section.withdraw_reason,
    )


def decode_update(body: bytes, ctx: WireContext) -> Update:
    """The full UPDATE value (prefix strings and all attributes)."""
    p = _parse(body, ctx)
    attrs: list[Attribute] = list(p.section.attributes)
    mp: list[tuple[int, Attribute]] = []
    if p.mp_reach is not None:
        family, hops, nlri = p.mp_reach
        pos = p.section.mp_positions[AttrType.MP_REACH_NLRI]
        mp.append((pos, MpReach(family, hops, decode_nlri(nlri, family.afi))))
    if p.mp_unreach is not None:
        family, raw = p.mp_unreach
        pos = p.section.mp_positions[AttrType.MP_UNREACH_NLRI]
        mp.append((pos, MpUnreach(family, decode_nlri(raw, family.afi))))
    for pos, attr in sorted(mp, key=lambda item: item[0]):
        attrs.insert(pos, attr)
    return Update(
        withdrawn=decode_nlri(p.withdrawn, AFI.IPV4),
        attributes=tuple(attrs),
        nlri=decode_nlri(p.nlri, AFI.IPV4),
        treat_as_withdraw=p.section.treat_as_withdraw,
    )


def _encode_mp(attr: MpReach | MpUnreach) -> bytes:
    fam = attr.family
    if isinstance(attr, MpReach):
        hops = b"".join(ipaddress.ip_address(h).packed for h in attr.next_hops)
        nlri = b"".join(encode_prefix(p)[1] for p in attr.nlri)
        value = struct.pack("!HBB", fam.afi, fam.safi, len(hops)) + hops + b"\0" + nlri
        code = AttrType.MP_REACH_NLRI
    else:
        nlri = b"".join(encode_prefix(p)[1] for p in attr.withdrawn)
        value = struct.pack("!HB", fam.afi, fam.safi) + nlri
        code = AttrType.MP_UNREACH_NLRI
    return header(AttrFlag.OPTIONAL, code, len(value)) + value


def encode_update_body(update: Update, ctx: WireContext) -> bytes:
    withdrawn = b"".join(encode_prefix(p)[1] for p in update.withdrawn)
    attrs = b"".join(
        _encode_mp(a) if isinstance(a, MpReach | MpUnreach) else encode_attribute(a, ctx)
        for a in update.attributes
    )
    nlri = b"".join(encode_prefix(p)[1] for p in update.nlri)
    return (
        struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    )


__all__ = [
    "AsPath",
    "NextHop",
    "OriginAttr",
    "Update",
    "UpdateSummary",
    "decode_update",
    "encode_update_body",
    "summarize_update",
]
