"""OPEN capabilities (RFC 5492) as frozen values, with their encoders and decoders.

Decoders are a literal table by capability code; unknown codes are kept as
:class:`UnknownCapability` and ignored by negotiation, as RFC 5492 §3 asks.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from .constants import CapabilityCode, ErrorCode, Family
from .errors import BGPError

_GR_RESTARTING = 0x8
_GR_NOTIFICATION = 0x4
_GR_FORWARDING = 0x80


@dataclass(frozen=True)
class Multiprotocol:
    """RFC 4760: we speak this AFI/SAFI."""

    family: Family


@dataclass(frozen=True)
class RouteRefreshCapability:
    """RFC 2918 (code 2), or the pre-standard code 128 when ``old`` is true."""

    old: bool = False


@dataclass(frozen=True)
class ExtendedMessage:
    """RFC 8654: messages other than OPEN and KEEPALIVE may be up to 65535 bytes."""


@dataclass(frozen=True)
class FourOctetAs:
    """RFC 6793: our real (possibly 4-byte) AS number."""

    asn: int


@dataclass(frozen=True)
class GracefulRestart:
    """RFC 4724: restart time, R-bit (``restarting``), per-family forwarding-state bit."""

    restart_time: int
    restarting: bool = False
    #: RFC 8538 N-bit
    notification: bool = False
    families: tuple[tuple[Family, bool], ...] = ()


@dataclass(frozen=True)
class UnknownCapability:
    code: int
    value: bytes = b""


Capability = (
    Multiprotocol
    | RouteRefreshCapability
    | ExtendedMessage
    | FourOctetAs
    | GracefulRestart
    | UnknownCapability
)


def _bad(reason: str) -> BGPError:
    return BGPError(ErrorCode.OPEN_MESSAGE, 0, reason=f"malformed capability: {reason}")


def encode_capability(cap: Capability) -> bytes:
    """``code(1) length(1) value`` for one capability."""
    code: int
    if isinstance(cap, Multiprotocol):
        code, value = (
            CapabilityCode.MULTIPROTOCOL,
            struct.pack("!HBB", cap.family.afi, 0, cap.family.safi),
        )
    elif isinstance(cap, RouteRefreshCapability):
        code = CapabilityCode.ROUTE_REFRESH_OLD if cap.old else CapabilityCode.ROUTE_REFRESH
        value = b""
    elif isinstance(cap, ExtendedMessage):
        code, value = CapabilityCode.EXTENDED_MESSAGE, b""
    elif isinstance(cap, FourOctetAs):
        code, value = CapabilityCode.FOUR_OCTET_AS, struct.pack("!I", cap.asn)
    elif isinstance(cap, GracefulRestart):
        flags = (_GR_RESTARTING if cap.restarting else 0) | (
            _GR_NOTIFICATION if cap.notification else 0
        )
        parts = [struct.pack("!H", (flags << 12) | (cap.restart_time & 0x0FFF))]
        for family, forwarding in cap.families:
            parts.append(
                struct.pack("!HBB", family.afi, family.safi, _GR_FORWARDING if forwarding else 0)
            )
        code, value = CapabilityCode.GRACEFUL_RESTART, b"".join(parts)
    else:
        code, value = cap.code, cap.value
    if len(value) > 255:
        raise ValueError("capability value longer than 255 bytes")
    return bytes((code, len(value))) + value


def _multiprotocol(value: bytes) -> Capability:
    if len(value) != 4:
        raise _bad("multiprotocol length")
    afi, _reserved, safi = struct.unpack("!HBB", value)
    return Multiprotocol(Family(afi, safi))


def _route_refresh(value: bytes) -> Capability:
    if value:
        raise _bad("route refresh length")
    return RouteRefreshCapability()


def _route_refresh_old(value: bytes) -> Capability:
    if value:
        raise _bad("route refresh length")
    return RouteRefreshCapability(old=True)


def _extended_message(value: bytes) -> Capability:
    if value:
        raise _bad("extended message length")
    return ExtendedMessage()


def _four_octet(value: bytes) -> Capability:
    if len(value) != 4:
        raise _bad("4-octet AS length")
    return FourOctetAs(struct.unpack("!I", value)[0])


def _graceful_restart(value: bytes) -> Capability:
    if len(value) < 2 or (len(value) - 2) % 4:
        raise _bad("graceful restart length")
    (head,) = struct.unpack_from("!H", value)
    flags = head >> 12
    families = []
    for off in range(2, len(value), 4):
        afi, safi, fflags = struct.unpack_from("!HBB", value, off)
        families.append((Family(afi, safi), bool(fflags & _GR_FORWARDING)))
    return GracefulRestart(
        restart_time=head & 0x0FFF,
        restarting=bool(flags & _GR_RESTARTING),
        notification=bool(flags & _GR_NOTIFICATION),
        families=tuple(families),
    )


DECODERS: dict[int, Callable[[bytes], Capability]] = {
    CapabilityCode.MULTIPROTOCOL: _multiprotocol,
    CapabilityCode.ROUTE_REFRESH: _route_refresh,
    CapabilityCode.ROUTE_REFRESH_OLD: _route_refresh_old,
    CapabilityCode.EXTENDED_MESSAGE: _extended_message,
    CapabilityCode.FOUR_OCTET_AS: _four_octet,
    CapabilityCode.GRACEFUL_RESTART: _graceful_restart,
}


def decode_capabilities(data: bytes) -> list[Capability]:
    """Decode the value of one Capabilities optional parameter (any number of capabilities)."""
    caps: list[Capability] = []
    off = 0
    while off < len(data):
        if off + 2 > len(data):
            raise _bad("truncated header")
        code, length = data[off], data[off + 1]
        off += 2
        if off + length > len(data):
            raise _bad("truncated value")
        value = bytes(data[off : off + length])
        off += length
        decoder = DECODERS.get(code)
        caps.append(decoder(value) if decoder else UnknownCapability(code, value))
    return caps
