"""Building outbound UPDATEs fast: one attribute block per group, NLRI packed to the brim.

Routes with identical attributes share UPDATEs up to the negotiated maximum message size
(4096, or 65535 with RFC 8654), so 10,000 /32s go out in a handful of messages. Attributes
are encoded once per group; per prefix we only copy pre-encoded NLRI bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from .attributes import (
    As4Path,
    AsPath,
    Communities,
    LargeCommunities,
    LocalPref,
    Med,
    OriginAttr,
    WireContext,
    encode_attribute,
    header,
)
from .constants import (
    AFI,
    AS_TRANS,
    HEADER_LEN,
    IPV4_UNICAST,
    MARKER,
    AttrFlag,
    AttrType,
    Family,
    MessageType,
    Origin,
    SegmentType,
)
from .ext_communities import encode_values

OPT_TRANS = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE
_UPDATE_TYPE = bytes((MessageType.UPDATE,))
_DEFAULT_LOCAL_PREF = 100
#: one IPv6 /128 on the wire (length byte + 16)
_LONGEST_NLRI = 17


@dataclass(frozen=True)
class RouteAttributes:
    """What vipcast says about a prefix it originates (the next hop comes from the session)."""

    origin: Origin = Origin.IGP
    med: int | None = None
    #: sent to iBGP peers only (RFC 4271 §5.1.5); 100 there when unset
    local_pref: int | None = None
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    #: RFC 4360 extended communities as 64-bit values (link bandwidth: :mod:`.ext_communities`)
    extended_communities: tuple[int, ...] = ()


@dataclass(frozen=True)
class Outbound:
    """Per-session facts the encoder needs."""

    local_asn: int
    ibgp: bool
    four_octet_as: bool
    max_message_len: int
    #: 4 bytes, or None when IPv4 routes cannot be sent
    next_hop_v4: bytes | None
    #: 16 or 32 bytes (global + link-local), or None
    next_hop_v6: bytes | None
    #: preferred UPDATE size (None: ``max_message_len``); never above ``max_message_len``
    update_len: int | None = None

    def budget(self, overhead: int) -> int:
        """Room for NLRI in an UPDATE whose other parts take ``overhead`` bytes: the
        preferred size, or the negotiated maximum when not even one prefix would fit."""
        size = min(self.update_len or self.max_message_len, self.max_message_len)
        if size - overhead < _LONGEST_NLRI:
            size = self.max_message_len
        return size - overhead


def _message(body: bytes) -> bytes:
    return MARKER + struct.pack("!H", HEADER_LEN + len(body)) + _UPDATE_TYPE + body


def _path_attributes(attrs: RouteAttributes, out: Outbound) -> tuple[bytes, bytes, bytes]:
    """Encoded attributes in three runs by type code, so that NEXT_HOP (3) and MP_REACH_NLRI
    (14) can be slotted in ascending order (RFC 4271 §5): types 1-2, types 4-8, types > 14."""
    ctx = WireContext(four_octet_as=out.four_octet_as, ibgp=out.ibgp)
    low = [encode_attribute(OriginAttr(int(attrs.origin)), ctx)]
    needs_as4 = False
    if out.ibgp:
        low.append(encode_attribute(AsPath(()), ctx))
    else:
        low.append(encode_attribute(AsPath(((SegmentType.AS_SEQUENCE, (out.local_asn,)),)), ctx))
        needs_as4 = not out.four_octet_as and out.local_asn > 0xFFFF
    mid = []
    if attrs.med is not None:
        mid.append(encode_attribute(Med(attrs.med), ctx))
    if out.ibgp:
        lp = _DEFAULT_LOCAL_PREF if attrs.local_pref is None else attrs.local_pref
        mid.append(encode_attribute(LocalPref(lp), ctx))
    if attrs.communities:
        mid.append(encode_attribute(Communities(tuple(attrs.communities)), ctx))
    high = []
    if attrs.extended_communities:
        value = encode_values(attrs.extended_communities)
        high.append(header(OPT_TRANS, AttrType.EXTENDED_COMMUNITIES, len(value)) + value)
    if needs_as4:
        high.append(encode_attribute(As4Path(((SegmentType.AS_SEQUENCE, (out.local_asn,)),)), ctx))
    if attrs.large_communities:
        high.append(encode_attribute(LargeCommunities(tuple(attrs.large_communities)), ctx))
    return b"".join(low), b"".join(mid), b"".join(high)


def _chunks(nlri: Iterable[bytes], budget: int) -> Iterable[bytes]:
    """Greedy runs of encoded prefixes whose total length fits ``budget``."""
    run: list[bytes] = []
    used = 0
    for item in nlri:
        if used + len(item) > budget and run:
            yield b"".join(run)
            run, used = [], 0
        run.append(item)
        used += len(item)
    if run:
        yield b"".join(run)


def pack_announcements(
    family: Family, attrs: RouteAttributes, nlri: Iterable[bytes], out: Outbound
) -> list[bytes]:
    """Framed UPDATEs announcing ``nlri`` (encoded prefixes of ``family``) with ``attrs``."""
    low, mid, high = _path_attributes(attrs, out)
    if family == IPV4_UNICAST:
        if out.next_hop_v4 is None:
            return []
        next_hop = bytes((AttrFlag.TRANSITIVE, AttrType.NEXT_HOP, 4)) + out.next_hop_v4
        fixed = low + next_hop + mid + high
        budget = out.budget(HEADER_LEN + 4 + len(fixed))
        head = b"\0\0" + struct.pack("!H", len(fixed)) + fixed
        return [_message(head + run) for run in _chunks(nlri, budget)]
    hop = out.next_hop_v6 if family.afi == AFI.IPV6 else None
    if hop is None:
        return []
    low += mid
    mp_fixed = struct.pack("!HBB", family.afi, family.safi, len(hop)) + hop + b"\0"
    overhead = len(low) + 4 + len(mp_fixed) + len(high)
    budget = out.budget(HEADER_LEN + 4 + overhead)
    msgs = []
    for run in _chunks(nlri, budget):
        mp_len = len(mp_fixed) + len(run)
        mp = (
            struct.pack("!BBH", AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH, 14, mp_len)
            + mp_fixed
            + run
        )
        attrs_len = len(low) + len(mp) + len(high)
        msgs.append(_message(b"\0\0" + struct.pack("!H", attrs_len) + low + mp + high))
    return msgs


def pack_withdrawals(family: Family, nlri: Iterable[bytes], out: Outbound) -> list[bytes]:
    """Framed UPDATEs withdrawing ``nlri`` of ``family``."""
    if family == IPV4_UNICAST:
        budget = out.budget(HEADER_LEN + 4)
        return [
            _message(struct.pack("!H", len(run)) + run + b"\0\0") for run in _chunks(nlri, budget)
        ]
    fixed = struct.pack("!HB", family.afi, family.safi)
    budget = out.budget(HEADER_LEN + 4 + 4 + len(fixed))
    msgs = []
    for run in _chunks(nlri, budget):
        mp = (
            struct.pack(
                "!BBH", AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH, 15, len(fixed) + len(run)
            )
            + fixed
            + run
        )
        msgs.append(_message(b"\0\0" + struct.pack("!H", len(mp)) + mp))
    return msgs


def end_of_rib(family: Family) -> bytes:
    """RFC 4724 §2 End-of-RIB marker."""
    if family == IPV4_UNICAST:
        return _message(b"\0\0\0\0")
    mp = bytes((AttrFlag.OPTIONAL, AttrType.MP_UNREACH_NLRI, 3)) + struct.pack(
        "!HB", family.afi, family.safi
    )
    return _message(b"\0\0" + struct.pack("!H", len(mp)) + mp)


__all__ = ["AS_TRANS", "Outbound", "RouteAttributes", "end_of_rib", "pack_announcements"]
