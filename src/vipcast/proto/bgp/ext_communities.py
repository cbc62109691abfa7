"""Extended communities (RFC 4360) vipcast reads and writes: link bandwidth (RFC 10005).

An extended community is eight octets: a type octet, a sub-type octet and six octets of
value. In the type octet, bit 0x80 is the IANA-authority bit and bit 0x40 the
*non-transitive* bit (0 = transitive). The link bandwidth community is a two-octet-AS-specific
one, sub-type 0x04: two octets of AS number, then the bandwidth as an IEEE 754 single-precision
float in bytes per second. vipcast sends the transitive form (type 0x00, as FRR does by
default) and reads both the transitive (0x00) and the non-transitive (0x40) form.

RFC 8326's GRACEFUL_SHUTDOWN is a plain RFC 1997 community, 65535:0; it lives here with the
other values the weighted-ECMP and drain features put on routes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

#: RFC 4360 type octet of two-octet AS specific communities, transitive and not
TWO_OCTET_AS_TRANSITIVE = 0x00
TWO_OCTET_AS_NON_TRANSITIVE = 0x40
#: RFC 10005 sub-type
LINK_BANDWIDTH_SUBTYPE = 0x04
#: RFC 8326 well-known community 65535:0
GRACEFUL_SHUTDOWN = 0xFFFF0000
#: the largest finite float32, the biggest bandwidth the community can carry
MAX_BANDWIDTH = struct.unpack("!f", b"\x7f\x7f\xff\xff")[0]

_LINK_BANDWIDTH_TYPES = {
    TWO_OCTET_AS_TRANSITIVE: True,
    TWO_OCTET_AS_NON_TRANSITIVE: False,
}


@dataclass(frozen=True)
class LinkBandwidth:
    """One link bandwidth community: ``asn`` (two octets) and bytes per second."""

    asn: int
    bytes_per_second: float
    transitive: bool = True


class BandwidthError(ValueError):
    """A bandwidth that cannot go on the wire (negative, NaN, infinite, too large)."""


def check_bandwidth(value: float) -> float:
    """``value`` as a float32 that round-trips, or :class:`BandwidthError` saying why not."""
    if not math.isfinite(value):
        raise BandwidthError(f"link bandwidth {value!r} is not finite")
    if value < 0:
        raise BandwidthError(f"link bandwidth {value!r} is negative")
    if value > MAX_BANDWIDTH:
        raise BandwidthError(f"link bandwidth {value!r} exceeds the float32 range")
    return float(struct.unpack("!f", struct.pack("!f", value))[0])


def encode_link_bandwidth(community: LinkBandwidth) -> int:
    """The community as its 64-bit value (what the EXTENDED_COMMUNITIES attribute carries)."""
    check_bandwidth(community.bytes_per_second)
    kind = TWO_OCTET_AS_TRANSITIVE if community.transitive else TWO_OCTET_AS_NON_TRANSITIVE
    # the AS is informational; a four-octet AS goes in as AS_TRANS (RFC 6793's convention)
    asn = community.asn if community.asn <= 0xFFFF else 23456
    raw = struct.pack("!BBHf", kind, LINK_BANDWIDTH_SUBTYPE, asn, community.bytes_per_second)
    return int.from_bytes(raw, "big")


def decode_link_bandwidth(value: int) -> LinkBandwidth | None:
    """The link bandwidth in a 64-bit extended community, or None when it is another kind.

    A NaN, infinite or negative float on receipt is read as 0 bytes/s (the path carries no
    usable weight), never as an error: the community is optional and transitive."""
    raw = value.to_bytes(8, "big")
    transitive = _LINK_BANDWIDTH_TYPES.get(raw[0])
    if transitive is None or raw[1] != LINK_BANDWIDTH_SUBTYPE:
        return None
    asn, bandwidth = struct.unpack("!Hf", raw[2:])
    if not math.isfinite(bandwidth) or bandwidth < 0:
        bandwidth = 0.0
    return LinkBandwidth(asn, bandwidth, transitive)


def encode_values(values: tuple[int, ...]) -> bytes:
    """The EXTENDED_COMMUNITIES attribute value of 64-bit communities."""
    return b"".join(v.to_bytes(8, "big") for v in values)


def decode_values(value: bytes) -> tuple[int, ...] | None:
    """64-bit communities of an EXTENDED_COMMUNITIES value, None when the length is not a
    non-zero multiple of eight (RFC 7606 §7.14: treat-as-withdraw, done by the caller)."""
    if not value or len(value) % 8:
        return None
    return tuple(int.from_bytes(value[i : i + 8], "big") for i in range(0, len(value), 8))


def link_bandwidths(values: tuple[int, ...]) -> tuple[LinkBandwidth, ...]:
    """Every link bandwidth community among ``values``, in order."""
    found = (decode_link_bandwidth(v) for v in values)
    return tuple(c for c in found if c is not None)


def format_bandwidth(value: int) -> str:
    """A 64-bit community as text: ``lb:65000:1.25e+06`` for link bandwidth, hex otherwise."""
    lb = decode_link_bandwidth(value)
    if lb is None:
        return f"0x{value:016x}"
    prefix = "lb" if lb.transitive else "lb-nt"
    return f"{prefix}:{lb.asn}:{lb.bytes_per_second:g}"
