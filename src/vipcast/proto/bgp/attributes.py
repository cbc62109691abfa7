"""Path attributes (RFC 4271 §4.3/§5, 4760, 6793, 1997, 8092) and their RFC 7606 policies.

Attributes are frozen values. :func:`encode_attribute` writes one; :func:`decode_attributes`
reads a whole attribute section and applies the RFC 7606 outcome for each malformed one:
``SESSION_RESET`` re-raises the :class:`BGPError`, ``TREAT_AS_WITHDRAW`` marks the UPDATE,
``ATTRIBUTE_DISCARD`` drops just that attribute. MP_REACH/MP_UNREACH are decoded by
:mod:`.update` (they carry NLRI); here they are only located.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .constants import (
    SUPPORTED_FAMILIES,
    AttrFlag,
    AttrType,
    ErrorCode,
    Family,
    SegmentType,
    UpdateSubcode,
)
from .errors import BGPError

OPT, TRANS = AttrFlag.OPTIONAL, AttrFlag.TRANSITIVE
#: the flag bits an attribute value carries: Extended Length is framing, and RFC 4271 §4.3 has
#: the low four bits ignored when received and zero when sent
VALUE_FLAGS = OPT | TRANS | AttrFlag.PARTIAL


class Policy(enum.Enum):
    SESSION_RESET = "session-reset"
    TREAT_AS_WITHDRAW = "treat-as-withdraw"
    ATTRIBUTE_DISCARD = "attribute-discard"


#: expected OPTIONAL|TRANSITIVE bits of each attribute we understand
FLAGS: dict[int, int] = {
    AttrType.ORIGIN: TRANS,
    AttrType.AS_PATH: TRANS,
    AttrType.NEXT_HOP: TRANS,
    AttrType.MULTI_EXIT_DISC: OPT,
    AttrType.LOCAL_PREF: TRANS,
    AttrType.ATOMIC_AGGREGATE: TRANS,
    AttrType.AGGREGATOR: OPT | TRANS,
    AttrType.COMMUNITIES: OPT | TRANS,
    AttrType.ORIGINATOR_ID: OPT,
    AttrType.CLUSTER_LIST: OPT,
    AttrType.MP_REACH_NLRI: OPT,
    AttrType.MP_UNREACH_NLRI: OPT,
    AttrType.EXTENDED_COMMUNITIES: OPT | TRANS,
    AttrType.AS4_PATH: OPT | TRANS,
    AttrType.AS4_AGGREGATOR: OPT | TRANS,
    AttrType.LARGE_COMMUNITIES: OPT | TRANS,
}

#: RFC 7606 §7 (and RFC 6793 §6, RFC 8092 §6): what a malformed attribute costs
POLICY: dict[int, Policy] = {
    AttrType.ORIGIN: Policy.TREAT_AS_WITHDRAW,
    AttrType.AS_PATH: Policy.TREAT_AS_WITHDRAW,
    AttrType.NEXT_HOP: Policy.TREAT_AS_WITHDRAW,
    AttrType.MULTI_EXIT_DISC: Policy.TREAT_AS_WITHDRAW,
    AttrType.LOCAL_PREF: Policy.TREAT_AS_WITHDRAW,
    AttrType.ATOMIC_AGGREGATE: Policy.ATTRIBUTE_DISCARD,
    AttrType.AGGREGATOR: Policy.ATTRIBUTE_DISCARD,
    AttrType.COMMUNITIES: Policy.TREAT_AS_WITHDRAW,
    AttrType.ORIGINATOR_ID: Policy.TREAT_AS_WITHDRAW,
    AttrType.CLUSTER_LIST: Policy.TREAT_AS_WITHDRAW,
    AttrType.MP_REACH_NLRI: Policy.SESSION_RESET,
    AttrType.MP_UNREACH_NLRI: Policy.SESSION_RESET,
    AttrType.EXTENDED_COMMUNITIES: Policy.TREAT_AS_WITHDRAW,
    AttrType.AS4_PATH: Policy.ATTRIBUTE_DISCARD,
    AttrType.AS4_AGGREGATOR: Policy.ATTRIBUTE_DISCARD,
    AttrType.LARGE_COMMUNITIES: Policy.TREAT_AS_WITHDRAW,
}

AsPathSegments = tuple[tuple[int, tuple[int, ...]], ...]


@dataclass(frozen=True)
class OriginAttr:
    value: int


@dataclass(frozen=True)
class AsPath:
    segments: AsPathSegments


@dataclass(frozen=True)
class As4Path:
    segments: AsPathSegments


@dataclass(frozen=True)
class NextHop:
    address: str


@dataclass(frozen=True)
class Med:
    value: int


@dataclass(frozen=True)
class LocalPref:
    value: int


@dataclass(frozen=True)
class AtomicAggregate:
    pass


@dataclass(frozen=True)
class Aggregator:
    asn: int
    address: str


@dataclass(frozen=True)
class Communities:
    values: tuple[int, ...]


@dataclass(frozen=True)
class LargeCommunities:
    values: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class MpReach:
    family: Family
    next_hops: tuple[str, ...]
    nlri: tuple[str, ...]


@dataclass(frozen=True)
class MpUnreach:
    family: Family
    withdrawn: tuple[str, ...]


@dataclass(frozen=True)
class OpaqueAttribute:
    """An attribute carried as bytes: unknown optional transitive ones, or ones we only pass."""

    flags: int
    type_code: int
    value: bytes


Attribute = (
    OriginAttr
    | AsPath
    | As4Path
    | NextHop
    | Med
    | LocalPref
    | AtomicAggregate
    | Aggregator
    | Communities
    | LargeCommunities
    | MpReach
    | MpUnreach
    | OpaqueAttribute
)


@dataclass(frozen=True)
class WireContext:
    """What the peer negotiated that changes how UPDATEs read and write."""

    four_octet_as: bool = True
    ibgp: bool = False
    families: frozenset[Family] = SUPPORTED_FAMILIES


# --------------------------------------------------------------------------- encoding


def header(flags: int, type_code: int, length: int) -> bytes:
    if length > 255:
        return struct.pack("!BBH", flags | AttrFlag.EXTENDED_LENGTH, type_code, length)
    return struct.pack("!BBB", flags & ~AttrFlag.EXTENDED_LENGTH, type_code, length)


def encode_segments(segments: AsPathSegments, four_octet: bool) -> bytes:
    fmt = "!%dI" if four_octet else "!%dH"
    parts = []
    for seg_type, asns in segments:
        if not four_octet:
            asns = tuple(a if a <= 0xFFFF else 23456 for a in asns)
        parts.append(bytes((seg_type, len(asns))) + struct.pack(fmt % len(asns), *asns))
    return b"".join(parts)


def _v4(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


def _ip(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def encode_value(attr: Attribute, ctx: WireContext) -> tuple[int, int, bytes]:
    """(flags, type, value) of one attribute; MP attributes need :mod:`.update`."""
    if isinstance(attr, OriginAttr):
        return TRANS, AttrType.ORIGIN, bytes((attr.value,))
    if isinstance(attr, AsPath):
        return TRANS, AttrType.AS_PATH, encode_segments(attr.segments, ctx.four_octet_as)
    if isinstance(attr, As4Path):
        return OPT | TRANS, AttrType.AS4_PATH, encode_segments(attr.segments, True)
    if isinstance(attr, NextHop):
        return TRANS, AttrType.NEXT_HOP, _v4(attr.address)
    if isinstance(attr, Med):
        return OPT, AttrType.MULTI_EXIT_DISC, struct.pack("!I", attr.value)
    if isinstance(attr, LocalPref):
        return TRANS, AttrType.LOCAL_PREF, struct.pack("!I", attr.value)
    if isinstance(attr, AtomicAggregate):
        return TRANS, AttrType.ATOMIC_AGGREGATE, b""
    if isinstance(attr, Aggregator):
        asn = struct.pack("!I", attr.asn) if ctx.four_octet_as else struct.pack("!H", attr.asn)
        return OPT | TRANS, AttrType.AGGREGATOR, asn + _v4(attr.address)
    if isinstance(attr, Communities):
        return OPT | TRANS, AttrType.COMMUNITIES, struct.pack(f"!{len(attr.values)}I", *attr.values)
    if isinstance(attr, LargeCommunities):
        flat = [x for triple in attr.values for x in triple]
        return OPT | TRANS, AttrType.LARGE_COMMUNITIES, struct.pack(f"!{len(flat)}I", *flat)
    if isinstance(attr, OpaqueAttribute):
        return attr.flags & VALUE_FLAGS, attr.type_code, attr.value
    raise TypeError(f"{type(attr).__name__} is encoded by the UPDATE codec")


def encode_attribute(attr: Attribute, ctx: WireContext) -> bytes:
    flags, type_code, value = encode_value(attr, ctx)
    return header(flags, type_code, len(value)) + value


def for_forwarding(attr: OpaqueAttribute) -> OpaqueAttribute:
    """An unknown optional transitive attribute as passed on: with the Partial bit set."""
    if attr.flags & OPT and attr.flags & TRANS:
        return OpaqueAttribute(attr.flags | AttrFlag.PARTIAL, attr.type_code, attr.value)
    return attr


# --------------------------------------------------------------------------- decoding


def _err(subcode: int, reason: str, raw: bytes = b"") -> BGPError:
    return BGPError(ErrorCode.UPDATE_MESSAGE, subcode, raw, reason)


def _length_error(reason: str) -> BGPError:
    return _err(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, reason)


_SEGMENT_TYPES = frozenset(int(t) for t in SegmentType)


def decode_segments(value: bytes, four_octet: bool) -> AsPathSegments:
    width = 4 if four_octet else 2
    fmt = "!%dI" if four_octet else "!%dH"
    segs = []
    off = 0
    while off < len(value):
        if off + 2 > len(value):
            raise _err(UpdateSubcode.MALFORMED_AS_PATH, "AS_PATH segment header truncated")
        seg_type, count = value[off], value[off + 1]
        if seg_type not in _SEGMENT_TYPES or count == 0:
            raise _err(UpdateSubcode.MALFORMED_AS_PATH, f"AS_PATH segment {seg_type}/{count}")
        off += 2
        end = off + count * width
        if end > len(value):
            raise _err(UpdateSubcode.MALFORMED_AS_PATH, "AS_PATH segment overruns")
        segs.append((seg_type, tuple(struct.unpack_from(fmt % count, value, off))))
        off = end
    return tuple(segs)


def _fixed(n: int, name: str, value: bytes) -> None:
    if len(value) != n:
        raise _length_error(f"{name} length {len(value)} != {n}")


def _origin(value: bytes, ctx: WireContext) -> Attribute | None:
    _fixed(1, "ORIGIN", value)
    if value[0] > 2:
        raise _err(UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE, f"ORIGIN {value[0]}")
    return OriginAttr(value[0])


_CONFED = frozenset({SegmentType.AS_CONFED_SEQUENCE, SegmentType.AS_CONFED_SET})


def _as_path(value: bytes, ctx: WireContext) -> Attribute | None:
    segments = decode_segments(value, ctx.four_octet_as)
    # RFC 7606 §7.2: confederation segments from an external peer are malformed
    if not ctx.ibgp and any(seg_type in _CONFED for seg_type, _ in segments):
        raise _err(UpdateSubcode.MALFORMED_AS_PATH, "AS_CONFED segment from an external peer")
    return AsPath(segments)


def _as4_path(value: bytes, ctx: WireContext) -> Attribute | None:
    segs = decode_segments(value, True)
    # RFC 6793 §4.1: a NEW speaker ignores AS4_PATH from a NEW speaker
    return None if ctx.four_octet_as else As4Path(segs)


def _next_hop(value: bytes, ctx: WireContext) -> Attribute | None:
    _fixed(4, "NEXT_HOP", value)
    addr = ipaddress.IPv4Address(value)
    if addr.is_unspecified or addr.is_multicast:
        raise _err(UpdateSubcode.INVALID_NEXT_HOP_ATTRIBUTE, f"NEXT_HOP {addr}", value)
    return NextHop(str(addr))


def _med(value: bytes, ctx: WireContext) -> Attribute | None:
    _fixed(4, "MULTI_EXIT_DISC", value)
    return Med(struct.unpack("!I", value)[0])


def _local_pref(value: bytes, ctx: WireContext) -> Attribute | None:
    _fixed(4, "LOCAL_PREF", value)
    # RFC 7606 §7.5: from an external peer it is discarded
    return LocalPref(struct.unpack("!I", value)[0]) if ctx.ibgp else None


def _atomic(value: bytes, ctx: WireContext) -> Attribute | None:
    _fixed(0, "ATOMIC_AGGREGATE", value)
    return AtomicAggregate()


def _aggregator(value: bytes, ctx: WireContext) -> Attribute | None:
    if ctx.four_octet_as:
        _fixed(8, "AGGREGATOR", value)
        asn, addr = struct.unpack("!I4s", value)
    else:
        _fixed(6, "AGGREGATOR", value)
        asn, addr = struct.unpack("!H4s", value)
    return Aggregator(asn, str(ipaddress.IPv4Address(addr)))


def _communities(value: bytes, ctx: WireContext) -> Attribute | None:
    if len(value) % 4 or not value:
        raise _length_error(f"COMMUNITIES length {len(value)}")
    return Communities(struct.unpack(f"!{len(value) // 4}I", value))


def _large(value: bytes, ctx: WireContext) -> Attribute | None:
    if len(value) % 12 or not value:
        raise _length_error(f"LARGE_COMMUNITIES length {len(value)}")
    flat = struct.unpack(f"!{len(value) // 4}I", value)
    return LargeCommunities(tuple(zip(flat[0::3], flat[1::3], flat[2::3], strict=True)))


def _opaque_multiple(n: int, name: str) -> Callable[[bytes, WireContext], Attribute | None]:
    def check(value: bytes, ctx: WireContext) -> Attribute | None:
        if len(value) % n or not value:
            raise _length_error(f"{name} length {len(value)}")
        return None  # understood, checked, not kept

    return check


def _as4_aggregator(value: bytes, ctx: WireContext) -> Attribute | None:
    _fixed(8, "AS4_AGGREGATOR", value)
    return None


DECODERS: dict[int, Callable[[bytes, WireContext], Attribute | None]] = {
    AttrType.ORIGIN: _origin,
    AttrType.AS_PATH: _as_path,
    AttrType.NEXT_HOP: _next_hop,
    AttrType.MULTI_EXIT_DISC: _med,
    AttrType.LOCAL_PREF: _local_pref,
    AttrType.ATOMIC_AGGREGATE: _atomic,
    AttrType.AGGREGATOR: _aggregator,
    AttrType.COMMUNITIES: _communities,
    AttrType.ORIGINATOR_ID: _opaque_multiple(4, "ORIGINATOR_ID"),
    AttrType.CLUSTER_LIST: _opaque_multiple(4, "CLUSTER_LIST"),
    AttrType.EXTENDED_COMMUNITIES: _opaque_multiple(8, "EXTENDED_COMMUNITIES"),
    AttrType.AS4_PATH: _as4_path,
    AttrType.AS4_AGGREGATOR: _as4_aggregator,
    AttrType.LARGE_COMMUNITIES: _large,
}

MP_TYPES = frozenset({AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI})


@dataclass
class AttributeSection:
    """The outcome of reading an UPDATE's path attributes."""

    attributes: list[Attribute] = field(default_factory=list)
    #: raw values of MP_REACH_NLRI / MP_UNREACH_NLRI, decoded by the UPDATE codec
    mp_reach: bytes | None = None
    mp_unreach: bytes | None = None
    treat_as_withdraw: bool = False
    #: type codes of attributes dropped under attribute-discard
    discarded: list[int] = field(default_factory=list)
    #: every malformation that was absorbed (for logs)
    problems: list[BGPError] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    #: where MP_REACH/MP_UNREACH sat in the whole attribute list (type -> index), for re-encoding
    mp_positions: dict[int, int] = field(default_factory=dict)
    #: the first malformation that turned the UPDATE into a withdrawal
    withdraw_reason: BGPError | None = None

    def withdraw(self, problem: BGPError) -> None:
        """RFC 7606 §2 treat-as-withdraw because of ``problem`` (the first one is kept)."""
        self.treat_as_withdraw = True
        self.problems.append(problem)
        if self.withdraw_reason is None:
            self.withdraw_reason = problem


def decode_attributes(data: bytes, ctx: WireContext) -> AttributeSection:
    """Read a path attribute section; raise BGPError only for session-reset outcomes."""
    out = AttributeSection()
    off, end = 0, len(data)
    while off < end:
        if off + 3 > end:
            # RFC 7606 §4: cannot parse further -> treat-as-withdraw
            out.withdraw(_err(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "truncated header"))
            break
        flags, type_code = data[off], data[off + 1]
        if flags & AttrFlag.EXTENDED_LENGTH:
            if off + 4 > end:
                out.withdraw(_err(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, "truncated"))
                break
            length = (data[off + 2] << 8) | data[off + 3]
            start = off + 4
        else:
            length = data[off + 2]
            start = off + 3
        raw = data[off : start + length]
        if start + length > end:
            # the attribute runs past the section: MP attributes can no longer be trusted
            problem = _err(
                UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, f"attribute {type_code} overruns", raw
            )
            if type_code in MP_TYPES:
                raise problem
            out.withdraw(problem)
            break
        value = data[start : start + length]
        off = start + length
        _one(out, flags, type_code, value, raw, ctx)
    return out


def _one(
    out: AttributeSection, flags: int, type_code: int, value: bytes, raw: bytes, ctx: WireContext
) -> None:
    if type_code in out.seen:
        if type_code in MP_TYPES:  # RFC 7606 §3g
            raise _err(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, f"duplicate attribute {type_code}")
        out.discarded.append(type_code)
        return
    out.seen.add(type_code)
    expected = FLAGS.get(type_code)
    if expected is None:
        if not flags & OPT:
            raise _err(UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, f"type {type_code}", raw)
        if flags & TRANS:
            out.attributes.append(OpaqueAttribute(flags & VALUE_FLAGS, type_code, bytes(value)))
        return
    policy = POLICY[type_code]
    try:
        if (flags & (OPT | TRANS)) != expected or (not flags & OPT and flags & AttrFlag.PARTIAL):
            raise _err(UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, f"flags {flags:#x} on {type_code}", raw)
        if type_code == AttrType.MP_REACH_NLRI:
            out.mp_reach = bytes(value)
            out.mp_positions[type_code] = len(out.attributes) + len(out.mp_positions)
            return
        if type_code == AttrType.MP_UNREACH_NLRI:
            out.mp_unreach = bytes(value)
            out.mp_positions[type_code] = len(out.attributes) + len(out.mp_positions)
            return
        attr = DECODERS[type_code](bytes(value), ctx)
    except BGPError as problem:
        if policy is Policy.SESSION_RESET:
            raise
        if policy is Policy.TREAT_AS_WITHDRAW:
            out.withdraw(problem)
        else:
            out.problems.append(problem)
            out.discarded.append(type_code)
        return
    if attr is not None:
        out.attributes.append(attr)
