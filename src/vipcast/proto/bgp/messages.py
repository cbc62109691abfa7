"""OPEN, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH messages, and the message dispatcher.

UPDATE lives in :mod:`.update` (it is most of the work). Each message is a frozen value;
:func:`encode_message` returns the framed bytes and :func:`decode_message` reads a body the
:class:`~.wire.Framer` produced, raising only :class:`BGPError`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .attributes import WireContext
from .capabilities import Capability, decode_capabilities, encode_capability
from .constants import (
    HEADER_LEN,
    MIN_LENGTH,
    ErrorCode,
    Family,
    HeaderSubcode,
    MessageType,
    OpenSubcode,
    OptionalParameter,
)
from .errors import BGPError
from .update import Update, decode_update, encode_update_body
from .wire import frame


@dataclass(frozen=True)
class Open:
    #: the 2-byte "My Autonomous System" field (AS_TRANS when the real ASN needs 4 bytes)
    asn: int
    hold_time: int
    router_id: str
    capabilities: tuple[Capability, ...] = ()
    version: int = 4


@dataclass(frozen=True)
class Notification:
    code: int
    subcode: int = 0
    data: bytes = b""

    @classmethod
    def from_error(cls, error: BGPError) -> Notification:
        """The one place a protocol error becomes a NOTIFICATION."""
        return cls(error.code, error.subcode, error.data)

    def describe(self) -> str:
        try:
            code = ErrorCode(self.code).name
        except ValueError:
            code = str(self.code)
        text = f"{code}/{self.subcode}"
        message = self.shutdown_message()
        return f"{text} {message!r}" if message else text

    def shutdown_message(self) -> str | None:
        """RFC 9003 text of a Cease/Administrative Shutdown or Reset, if any."""
        if self.code != ErrorCode.CEASE or self.subcode not in (2, 4) or not self.data:
            return None
        n = self.data[0]
        if n + 1 > len(self.data):
            return None
        return self.data[1 : 1 + n].decode("utf-8", "replace")


def shutdown_data(message: str) -> bytes:
    """RFC 9003 Shutdown Communication: length byte + UTF-8 (at most 255 bytes)."""
    raw = message.encode()[:255]
    while raw:
        try:
            raw.decode()
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    return bytes((len(raw),)) + raw if raw else b""


@dataclass(frozen=True)
class Keepalive:
    pass


@dataclass(frozen=True)
class RouteRefresh:
    family: Family
    #: RFC 7313 message subtype (0 = normal request)
    subtype: int = 0


Message = Open | Update | Notification | Keepalive | RouteRefresh


def _open_error(subcode: int, reason: str, data: bytes = b"") -> BGPError:
    return BGPError(ErrorCode.OPEN_MESSAGE, subcode, data, reason)


def _encode_open(msg: Open) -> bytes:
    caps = b"".join(encode_capability(c) for c in msg.capabilities)
    if not caps:
        params = b""
    elif len(caps) <= 253:
        params = bytes((OptionalParameter.CAPABILITIES, len(caps))) + caps
    else:  # RFC 9072 extended optional parameters length
        inner = struct.pack("!BH", OptionalParameter.CAPABILITIES, len(caps)) + caps
        params = struct.pack("!BBH", 255, 255, len(inner)) + inner
        head = struct.pack("!BHH4s", msg.version, msg.asn, msg.hold_time, _rid(msg.router_id))
        return head + params
    head = struct.pack("!BHH4s", msg.version, msg.asn, msg.hold_time, _rid(msg.router_id))
    return head + bytes((len(params),)) + params


def _rid(router_id: str) -> bytes:
    return ipaddress.IPv4Address(router_id).packed


def _decode_open(body: bytes, ctx: WireContext) -> Open:
    version, asn, hold, rid, opt_len = struct.unpack_from("!BHH4sB", body)
    params = body[10:]
    extended = len(params) >= 1 and opt_len == 255 and params[0] == 255
    if extended:
        if len(params) < 3:
            raise _open_error(0, "truncated extended optional parameters")
        (opt_len,) = struct.unpack_from("!H", params, 1)
        params = params[3:]
    if opt_len != len(params):
        raise _open_error(0, f"optional parameters length {opt_len} != {len(params)}")
    caps: list[Capability] = []
    off = 0
    hlen = 3 if extended else 2
    while off < len(params):
        if off + hlen > len(params):
            raise _open_error(0, "truncated optional parameter")
        ptype = params[off]
        plen = struct.unpack_from("!H", params, off + 1)[0] if extended else params[off + 1]
        off += hlen
        if off + plen > len(params):
            raise _open_error(0, "optional parameter overruns")
        if ptype != OptionalParameter.CAPABILITIES:
            raise _open_error(
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, f"optional parameter {ptype}"
            )
        caps.extend(decode_capabilities(params[off : off + plen]))
        off += plen
    return Open(asn, hold, str(ipaddress.IPv4Address(rid)), tuple(caps), version)


def _decode_notification(body: bytes, ctx: WireContext) -> Notification:
    return Notification(body[0], body[1], bytes(body[2:]))


def _decode_keepalive(body: bytes, ctx: WireContext) -> Keepalive:
    return Keepalive()


def _decode_route_refresh(body: bytes, ctx: WireContext) -> RouteRefresh:
    if len(body) != 4:
        raise BGPError(ErrorCode.ROUTE_REFRESH, 1, body, "ROUTE-REFRESH length")
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(Family(afi, safi), subtype)


DECODERS: dict[int, Callable[[bytes, WireContext], Message]] = {
    MessageType.OPEN: _decode_open,
    MessageType.UPDATE: decode_update,
    MessageType.NOTIFICATION: _decode_notification,
    MessageType.KEEPALIVE: _decode_keepalive,
    MessageType.ROUTE_REFRESH: _decode_route_refresh,
}


def decode_message(msg_type: int, body: bytes, ctx: WireContext | None = None) -> Message:
    """Decode one message body (the framer checked the header; lengths are checked again)."""
    decoder = DECODERS.get(msg_type)
    if decoder is None:
        raise BGPError(ErrorCode.MESSAGE_HEADER, HeaderSubcode.BAD_MESSAGE_TYPE, bytes((msg_type,)))
    length = HEADER_LEN + len(body)
    if length < MIN_LENGTH[msg_type] or (msg_type == MessageType.KEEPALIVE and body):
        raise BGPError(
            ErrorCode.MESSAGE_HEADER,
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            struct.pack("!H", length & 0xFFFF),
            f"bad length {length} for message type {msg_type}",
        )
    return decoder(body, ctx or WireContext())


def encode_message(msg: Message, ctx: WireContext | None = None) -> bytes:
    """The framed bytes of one message."""
    if isinstance(msg, Open):
        return frame(MessageType.OPEN, _encode_open(msg))
    if isinstance(msg, Update):
        return frame(MessageType.UPDATE, encode_update_body(msg, ctx or WireContext()))
    if isinstance(msg, Notification):
        return frame(MessageType.NOTIFICATION, bytes((msg.code, msg.subcode)) + msg.data)
    if isinstance(msg, Keepalive):
        return frame(MessageType.KEEPALIVE, b"")
    return frame(
        MessageType.ROUTE_REFRESH,
        struct.pack("!HBB", msg.family.afi, msg.subtype, msg.family.safi),
    )
