"""Ethernet II framing (no VLAN tags: the kernel strips them before an AF_PACKET socket sees them).

MAC addresses are 6-byte :class:`bytes`; :func:`parse_mac` and :func:`format_mac` convert to and
from the usual ``aa:bb:cc:dd:ee:ff`` text.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from vipcast.proto.l2.errors import L2Error

HEADER = struct.Struct("!6s6sH")
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
#: shortest frame on the wire without the FCS; shorter frames are padded with zeros
MIN_FRAME = 60


class EtherType(IntEnum):
    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100
    IPV6 = 0x86DD


@dataclass(frozen=True)
class EthernetFrame:
    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes

    def encode(self) -> bytes:
        frame = HEADER.pack(self.dst, self.src, self.ethertype) + self.payload
        return frame.ljust(MIN_FRAME, b"\x00")


def decode_frame(data: bytes) -> EthernetFrame:
    if len(data) < HEADER.size:
        raise L2Error(f"frame of {len(data)} bytes is shorter than an Ethernet header")
    dst, src, ethertype = HEADER.unpack_from(data)
    if ethertype < 0x0600:
        raise L2Error(f"802.3 length field {ethertype}, not an Ethernet II type")
    return EthernetFrame(dst, src, ethertype, bytes(data[HEADER.size :]))


def parse_mac(text: str) -> bytes:
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise L2Error(f"not a MAC address: {text!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError as exc:
        raise L2Error(f"not a MAC address: {text!r}") from exc


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def is_unicast_mac(mac: bytes) -> bool:
    return len(mac) == 6 and not mac[0] & 1
