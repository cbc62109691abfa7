"""BGP message framing (RFC 4271 §4.1): bytes in any split -> whole messages out.

The :class:`Framer` buffers what the socket gave and yields ``(type, body)`` for each complete
message after checking the header (marker, length bounds per type, known type). It is safe
byte by byte: feeding a stream one byte at a time yields exactly the same messages.
"""

from __future__ import annotations

import struct

from .constants import (
    HEADER_LEN,
    MARKER,
    MAX_MESSAGE_LEN,
    MIN_LENGTH,
    ErrorCode,
    HeaderSubcode,
    MessageType,
)
from .errors import BGPError

#: OPEN and KEEPALIVE stay within 4096 bytes even with extended messages (RFC 8654 §3)
_ALWAYS_SMALL = frozenset({MessageType.OPEN, MessageType.KEEPALIVE})


def frame(msg_type: int, body: bytes) -> bytes:
    """Header + body."""
    return MARKER + struct.pack("!HB", HEADER_LEN + len(body), msg_type) + body


def check_header(header: bytes, max_len: int) -> tuple[int, int]:
    """Validate a 19-byte header; return (length, type) or raise the header error."""
    if header[:16] != MARKER:
        raise BGPError(
            ErrorCode.MESSAGE_HEADER,
            HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED,
            reason="marker is not all ones",
        )
    length, msg_type = struct.unpack_from("!HB", header, 16)
    minimum = MIN_LENGTH.get(msg_type)
    if minimum is None:
        raise BGPError(
            ErrorCode.MESSAGE_HEADER,
            HeaderSubcode.BAD_MESSAGE_TYPE,
            bytes((msg_type,)),
            f"unknown message type {msg_type}",
        )
    limit = MAX_MESSAGE_LEN if msg_type in _ALWAYS_SMALL else max_len
    if (
        length < minimum
        or length > limit
        or (msg_type == MessageType.KEEPALIVE and length != HEADER_LEN)
    ):
        raise BGPError(
            ErrorCode.MESSAGE_HEADER,
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            struct.pack("!H", length),
            f"bad length {length} for message type {msg_type}",
        )
    return length, msg_type


class Framer:
    """Reassemble messages from a byte stream."""

    def __init__(self, max_len: int = MAX_MESSAGE_LEN) -> None:
        #: may change between calls (after the OPEN exchange)
        self.max_len = max_len
        self._buf = bytearray()
        self._off = 0

    def feed(self, data: bytes) -> None:
        if self._off and self._off >= len(self._buf) // 2:
            del self._buf[: self._off]
            self._off = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._off

    def clear(self) -> None:
        self._buf.clear()
        self._off = 0

    def next_message(self) -> tuple[int, bytes] | None:
        """The next complete ``(type, body)``, None if more bytes are needed; or BGPError."""
        buf, off = self._buf, self._off
        if len(buf) - off < HEADER_LEN:
            return None
        length, msg_type = check_header(bytes(buf[off : off + HEADER_LEN]), self.max_len)
        if len(buf) - off < length:
            return None
        self._off = off + length
        return msg_type, bytes(buf[off + HEADER_LEN : off + length])
