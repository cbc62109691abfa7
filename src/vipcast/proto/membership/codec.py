"""Wire format of the SWIM membership datagrams (sans-IO, values in and out).

Every datagram (big-endian) is one header, one body whose layout its ``kind`` names, a list of
piggybacked rumors, and a truncated HMAC-SHA256 over everything before it::

    magic "VCS1" | kind u8 | name length u8 | sender name (UTF-8)
    | boot u64 | sequence u64 | incarnation u32 | serving version u32 | token u64
    | body length u16 | body | rumor count u8 | rumors
    | HMAC-SHA256(key, recipient name | all of the above)[:16]

The MAC also covers the recipient's name (not sent: each side knows it), so a datagram meant
for one member is refused by every other.

``boot`` is the sender's random 64-bit boot nonce (new at every start, never a clock);
``sequence`` counts the sender's datagrams within that boot (replay window, see
:mod:`vipcast.proto.membership.replay`); ``incarnation`` is the sender's SWIM incarnation and
``serving version`` the version of its serving set;
``token`` is a fresh random nonce in a request (ping, ping-req, challenge, pull, sync) and the
echo of the request's nonce in its answer, so an answer recorded earlier never matches.

A rumor (piggybacked membership change)::

    name length u8 | name | boot u64 | incarnation u32 | state u8 | serving version u32
    | delta flag u8 [| added count u8 | removed count u8 | addresses]

    address = length u8 (4 or 16) | address bytes

Bodies: ``PING_REQ`` = name length u8 | target name; ``SYNC_REQ`` = start u32;
``SYNC`` = start u32 | total u32 | count u16 | member records (a rumor without delta);
``PULL`` = start u16; ``SERVING`` = version u32 | total u16 | start u16 | count u16 | addresses.
Everything else has an empty body. :func:`encode` refuses a datagram above :data:`MTU_PAYLOAD`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import ip_address

MAGIC = b"VCS1"
HEADER = struct.Struct("!QQIIQ")
RUMOR = struct.Struct("!QIBI")
MAC_SIZE = 16
MAX_NAME = 255
#: largest datagram: a 1,500-byte Ethernet MTU minus IPv6 (40) and UDP (8) headers, rounded down
MTU_PAYLOAD = 1400
#: address changes carried in one rumor; a larger change is a version bump and a pull
MAX_DELTA = 16


class WireError(ValueError):
    """A datagram that is malformed (before or after authentication)."""


class Kind(IntEnum):
    PING = 1
    ACK = 2
    PING_REQ = 3
    CHALLENGE = 4
    RESPONSE = 5
    GOSSIP = 6
    SYNC_REQ = 7
    SYNC = 8
    PULL = 9
    SERVING = 10
    LEAVE = 11


class State(IntEnum):
    ALIVE = 1
    SUSPECT = 2
    DEAD = 3
    LEFT = 4


@dataclass(frozen=True)
class Rumor:
    node: str
    boot: int
    incarnation: int
    state: State
    serving_version: int = 0
    #: (added, removed) addresses from ``serving_version - 1``, when small enough to carry
    delta: tuple[frozenset[str], frozenset[str]] | None = None

    def size(self) -> int:
        base = 1 + len(self.node.encode()) + RUMOR.size + 1
        if self.delta is None:
            return base
        added, removed = self.delta
        return base + 2 + sum(_address_size(ip) for ip in (*added, *removed))


@dataclass(frozen=True)
class Datagram:
    kind: Kind
    sender: str
    boot: int
    sequence: int
    incarnation: int
    token: int = 0
    rumors: tuple[Rumor, ...] = ()
    serving_version: int = 0
    #: PING_REQ: the node to probe
    target: str = ""
    #: SYNC_REQ, SYNC, PULL, SERVING: index of the first record or address
    start: int = 0
    #: SYNC, SERVING: records or addresses in the whole answer
    total: int = 0
    #: SYNC: member records
    records: tuple[Rumor, ...] = ()
    #: SERVING: the version of the set and a page of its addresses
    version: int = 0
    addresses: tuple[str, ...] = ()


def _address_size(ip: str) -> int:
    return 1 + len(ip_address(ip).packed)


def _pack_name(name: str) -> bytes:
    raw = name.encode()
    if not 0 < len(raw) <= MAX_NAME:
        raise ValueError(f"node name of {len(raw)} bytes")
    return bytes([len(raw)]) + raw


def _pack_addresses(ips: Sequence[str]) -> bytes:
    out = bytearray()
    for ip in ips:
        packed = ip_address(ip).packed
        out += bytes([len(packed)]) + packed
    return bytes(out)


def _pack_rumor(rumor: Rumor, *, with_delta: bool = True) -> bytes:
    out = _pack_name(rumor.node) + RUMOR.pack(
        rumor.boot, rumor.incarnation, rumor.state, rumor.serving_version
    )
    if rumor.delta is None or not with_delta:
        return out + b"\x00"
    added, removed = (sorted(s, key=lambda a: ip_address(a).packed) for s in rumor.delta)
    return out + bytes([1, len(added), len(removed)]) + _pack_addresses([*added, *removed])


def _body(d: Datagram) -> bytes:
    if d.kind == Kind.PING_REQ:
        return _pack_name(d.target)
    if d.kind in (Kind.SYNC_REQ,):
        return struct.pack("!I", d.start)
    if d.kind == Kind.SYNC:
        records = b"".join(_pack_rumor(r, with_delta=False) for r in d.records)
        return struct.pack("!IIH", d.start, d.total, len(d.records)) + records
    if d.kind == Kind.PULL:
        return struct.pack("!H", d.start)
    if d.kind == Kind.SERVING:
        head = struct.pack("!IHHH", d.version, d.total, d.start, len(d.addresses))
        return head + _pack_addresses(d.addresses)
    return b""


def encode(d: Datagram, key: bytes, recipient: str) -> bytes:
    if len(d.rumors) > 255:
        raise ValueError(f"{len(d.rumors)} rumors in one datagram")
    body = _body(d)
    out = (
        MAGIC
        + bytes([d.kind])
        + _pack_name(d.sender)
        + HEADER.pack(d.boot, d.sequence, d.incarnation, d.serving_version, d.token)
        + struct.pack("!H", len(body))
        + body
        + bytes([len(d.rumors)])
        + b"".join(_pack_rumor(r) for r in d.rumors)
    )
    out += _mac(key, recipient, out)
    if len(out) > MTU_PAYLOAD:
        raise ValueError(f"{d.kind.name} datagram of {len(out)} bytes (at most {MTU_PAYLOAD})")
    return out


def _mac(key: bytes, recipient: str, signed: bytes) -> bytes:
    return hmac.digest(key, _pack_name(recipient) + signed, hashlib.sha256)[:MAC_SIZE]


def header_size(sender: str) -> int:
    """Bytes of a datagram from ``sender`` with an empty body and no rumors."""
    return len(MAGIC) + 1 + 1 + len(sender.encode()) + HEADER.size + 2 + 1 + MAC_SIZE


class _Reader:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data, self.offset = data, offset

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise WireError(f"truncated {what} at offset {self.offset}")
        out = self.data[self.offset : self.offset + size]
        self.offset += size
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[int, ...]:
        return fmt.unpack(self.take(fmt.size, what))

    def name(self, what: str) -> str:
        size = self.u8(what)
        if size == 0:
            raise WireError(f"empty {what}")
        try:
            return self.take(size, what).decode()
        except UnicodeDecodeError as exc:
            raise WireError(f"{what} is not UTF-8") from exc

    def addresses(self, count: int) -> tuple[str, ...]:
        out = []
        for _ in range(count):
            size = self.u8("address length")
            if size not in (4, 16):
                raise WireError(f"address of {size} bytes at offset {self.offset - 1}")
            out.append(str(ip_address(self.take(size, "address"))))
        return tuple(out)

    def rumor(self, *, with_delta: bool = True) -> Rumor:
        node = self.name("rumor name")
        boot, incarnation, state, version = self.unpack(RUMOR, "rumor")
        try:
            member_state = State(state)
        except ValueError as exc:
            raise WireError(f"rumor state {state}") from exc
        flag = self.u8("delta flag")
        delta = None
        if flag == 1 and with_delta:
            added, removed = self.u8("added count"), self.u8("removed count")
            ips = self.addresses(added + removed)
            delta = (frozenset(ips[:added]), frozenset(ips[added:]))
        elif flag != 0:
            raise WireError(f"delta flag {flag}")
        return Rumor(node, boot, incarnation, member_state, version, delta)


def decode(data: bytes, key: bytes, recipient: str) -> Datagram | None:
    """The datagram, or None if its HMAC is wrong; raises :class:`WireError` if malformed."""
    if len(data) < len(MAGIC) + 3 + HEADER.size + 3 + MAC_SIZE or data[:4] != MAGIC:
        raise WireError("not a vipcast membership datagram")
    if len(data) > MTU_PAYLOAD:
        raise WireError(f"datagram of {len(data)} bytes (at most {MTU_PAYLOAD})")
    signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(mac, _mac(key, recipient, signed)):
        return None
    r = _Reader(signed, 4)
    try:
        kind = Kind(r.u8("kind"))
    except ValueError as exc:
        raise WireError(f"unknown kind {data[4]}") from exc
    sender = r.name("sender name")
    boot, sequence, incarnation, serving_version, token = r.unpack(HEADER, "header")
    (body_size,) = r.unpack(struct.Struct("!H"), "body length")
    body = _Reader(r.take(body_size, "body"))
    fields: dict[str, object] = {}
    if kind == Kind.PING_REQ:
        fields["target"] = body.name("target name")
    elif kind == Kind.SYNC_REQ:
        (fields["start"],) = body.unpack(struct.Struct("!I"), "sync start")
    elif kind == Kind.SYNC:
        start, total, count = body.unpack(struct.Struct("!IIH"), "sync page")
        fields.update(start=start, total=total)
        fields["records"] = tuple(body.rumor(with_delta=False) for _ in range(count))
    elif kind == Kind.PULL:
        (fields["start"],) = body.unpack(struct.Struct("!H"), "pull start")
    elif kind == Kind.SERVING:
        version, total, start, count = body.unpack(struct.Struct("!IHHH"), "serving page")
        fields.update(version=version, total=total, start=start)
        fields["addresses"] = body.addresses(count)
    if body.offset != body_size:
        raise WireError(f"{body_size - body.offset} bytes after the {kind.name} body")
    rumors = tuple(r.rumor() for _ in range(r.u8("rumor count")))
    if r.offset != len(signed):
        raise WireError(f"{len(signed) - r.offset} bytes after the rumors")
    return Datagram(
        kind, sender, boot, sequence, incarnation, token, rumors, serving_version,
        **fields,  # type: ignore[arg-type]
    )
