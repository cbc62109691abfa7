"""Wire format of the all-to-all heartbeat (sans-IO).

One datagram (big-endian)::

    magic "VCM2" | kind u8 (1 alive, 2 leaving) | name length u8 | name (UTF-8)
    | incarnation u64 | sequence u64 | serving count u16 | serving entries
    | HMAC-SHA256 over everything before it (32 bytes)

    serving entry = address length u8 (4 or 16) | address bytes

At most :data:`MAX_SERVING` entries fit one datagram.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import ip_address

MAGIC = b"VCM2"
COUNTERS = struct.Struct("!QQH")
DIGEST_SIZE = 32
MAX_NAME = 255
#: serving entries in one datagram (3,000 IPv6 entries: 51 kB, below the UDP maximum)
MAX_SERVING = 3000


class MembershipError(ValueError):
    """A heartbeat datagram that is malformed (before authentication)."""


class Kind(IntEnum):
    ALIVE = 1
    LEAVING = 2


@dataclass(frozen=True)
class Heartbeat:
    kind: Kind
    node: str
    incarnation: int
    sequence: int
    #: the VIPs the sender can serve now (canonical address strings)
    serving: frozenset[str] = frozenset()

    def encode(self, key: bytes) -> bytes:
        name = self.node.encode()
        if not 0 < len(name) <= MAX_NAME:
            raise ValueError(f"node name of {len(name)} bytes")
        if len(self.serving) > MAX_SERVING:
            raise ValueError(f"{len(self.serving)} serving entries (at most {MAX_SERVING})")
        entries = b"".join(
            bytes([len(packed)]) + packed
            for packed in sorted(ip_address(ip).packed for ip in self.serving)
        )
        body = (
            MAGIC
            + bytes([self.kind, len(name)])
            + name
            + COUNTERS.pack(self.incarnation, self.sequence, len(self.serving))
            + entries
        )
        return body + hmac.digest(key, body, hashlib.sha256)


def _decode_serving(data: bytes, count: int) -> frozenset[str]:
    out: list[str] = []
    offset = 0
    for _ in range(count):
        if offset >= len(data):
            raise MembershipError(f"{count} serving entries announced, {len(out)} present")
        size = data[offset]
        if size not in (4, 16) or offset + 1 + size > len(data):
            raise MembershipError(f"serving entry of {size} bytes at offset {offset}")
        out.append(str(ip_address(data[offset + 1 : offset + 1 + size])))
        offset += 1 + size
    if offset != len(data):
        raise MembershipError(f"{len(data) - offset} bytes after the serving entries")
    return frozenset(out)


def decode_heartbeat(data: bytes, key: bytes) -> Heartbeat | None:
    """The heartbeat, or None if its HMAC is wrong; raises :class:`MembershipError` if the
    datagram is malformed."""
    if len(data) < len(MAGIC) + 2 + COUNTERS.size + DIGEST_SIZE or data[:4] != MAGIC:
        raise MembershipError("not a vipcast heartbeat")
    kind, name_length = data[4], data[5]
    fixed = 6 + name_length + COUNTERS.size
    if name_length == 0 or len(data) < fixed + DIGEST_SIZE:
        raise MembershipError(f"heartbeat of {len(data)} bytes with a {name_length}-byte name")
    body, digest = data[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
    if not hmac.compare_digest(digest, hmac.digest(key, body, hashlib.sha256)):
        return None
    try:
        node = body[6 : 6 + name_length].decode()
        heartbeat_kind = Kind(kind)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MembershipError(f"authenticated but unreadable heartbeat: {exc}") from exc
    incarnation, sequence, count = COUNTERS.unpack_from(body, 6 + name_length)
    serving = _decode_serving(body[fixed:], count)
    return Heartbeat(heartbeat_kind, node, incarnation, sequence, serving)
