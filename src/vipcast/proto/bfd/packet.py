"""The BFD control packet (RFC 5880 §4): a frozen value, its encoder and its decoder.

Layout of the mandatory section (24 octets, network order)::

    octet 0   Vers(3) Diag(5)
    octet 1   Sta(2) P F C A D M
    octet 2   Detect Mult
    octet 3   Length
    4..7      My Discriminator
    8..11     Your Discriminator
    12..15    Desired Min TX Interval        (microseconds)
    16..19    Required Min RX Interval       (microseconds)
    20..23    Required Min Echo RX Interval  (microseconds)

followed, when the A bit is set, by the authentication section (§4.2-§4.4).

:func:`decode` applies the packet-only reception checks of §6.8.6 (version, length, detect
multiplier, multipoint, discriminators) and raises :class:`BFDPacketError`, and nothing else,
for any input it refuses. Checks that need a session (authentication in use, TTL, state) are
the session's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

from vipcast.proto.bfd.constants import (
    AUTH_DIGEST_LENGTHS,
    MANDATORY_LENGTH,
    VERSION,
    AuthType,
    State,
)

_MANDATORY = struct.Struct("!BBBBIIIII")
_DIGEST_HEAD = struct.Struct("!BBBBI")  # type, len, key id, reserved, sequence

_FLAG_POLL = 0x20
_FLAG_FINAL = 0x10
_FLAG_CPI = 0x08
_FLAG_AUTH = 0x04
_FLAG_DEMAND = 0x02
_FLAG_MULTIPOINT = 0x01

_PASSWORD_MIN = 1
_PASSWORD_MAX = 16


class DropReason(Enum):
    """Why a received packet was discarded (RFC 5880 §6.8.6 and RFC 5881/5883)."""

    TOO_SHORT = "shorter than the mandatory section"
    BAD_VERSION = "version is not 1"
    BAD_LENGTH = "Length field is inconsistent"
    TRUNCATED = "Length field exceeds the payload"
    BAD_AUTH_SECTION = "malformed authentication section"
    ZERO_DETECT_MULT = "Detect Mult is zero"
    MULTIPOINT = "Multipoint bit is set"
    ZERO_MY_DISCR = "My Discriminator is zero"
    ZERO_YOUR_DISCR = "Your Discriminator is zero while the state is Init or Up"
    NO_SESSION = "no session matches"
    AUTH_MISMATCH = "authentication present or absent against configuration"
    BAD_TTL = "TTL / hop limit below the required value"
    ADMIN_DOWN = "the session is administratively down"


class BFDPacketError(Exception):
    """A received packet that must be discarded, with the reason."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Auth:
    """The authentication section. Parsed so it can be judged; vipcast does not verify it.

    ``password`` is set for simple password (§4.2); ``sequence`` and ``digest`` for the keyed
    MD5/SHA1 types (§4.3, §4.4).
    """

    auth_type: AuthType
    key_id: int
    password: bytes = b""
    sequence: int = 0
    digest: bytes = b""

    def encode(self) -> bytes:
        if self.auth_type is AuthType.SIMPLE_PASSWORD:
            if not _PASSWORD_MIN <= len(self.password) <= _PASSWORD_MAX:
                raise ValueError("simple password must be 1-16 octets")
            body = self.password
            return bytes((self.auth_type, 3 + len(body), self.key_id)) + body
        length = AUTH_DIGEST_LENGTHS.get(self.auth_type)
        if length is None:
            raise ValueError(f"cannot encode auth type {self.auth_type!r}")
        if len(self.digest) != length - _DIGEST_HEAD.size:
            raise ValueError(f"digest must be {length - _DIGEST_HEAD.size} octets")
        head = _DIGEST_HEAD.pack(self.auth_type, length, self.key_id, 0, self.sequence)
        return head + self.digest


@dataclass(frozen=True)
class ControlPacket:
    """One BFD control packet. Intervals are in microseconds, as on the wire."""

    state: State
    my_discr: int
    your_discr: int = 0
    diag: int = 0
    detect_mult: int = 3
    desired_min_tx_us: int = 1_000_000
    required_min_rx_us: int = 1_000_000
    required_min_echo_rx_us: int = 0
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    demand: bool = False
    auth: Auth | None = None

    def encode(self) -> bytes:
        """The packet's wire form. Refuses values the wire cannot carry (ValueError)."""
        if self.poll and self.final:
            raise ValueError("a packet must not carry both Poll and Final (RFC 5880 §6.5)")
        auth = self.auth.encode() if self.auth is not None else b""
        flags = (
            (_FLAG_POLL if self.poll else 0)
            | (_FLAG_FINAL if self.final else 0)
            | (_FLAG_CPI if self.control_plane_independent else 0)
            | (_FLAG_AUTH if self.auth is not None else 0)
            | (_FLAG_DEMAND if self.demand else 0)
        )
        head = _MANDATORY.pack(
            (VERSION << 5) | (self.diag & 0x1F),
            (int(self.state) << 6) | flags,
            self.detect_mult,
            MANDATORY_LENGTH + len(auth),
            self.my_discr,
            self.your_discr,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        )
        return head + auth


def decode(data: bytes) -> ControlPacket:
    """Parse and check one control packet; raise :class:`BFDPacketError` if it must be dropped."""
    if len(data) < MANDATORY_LENGTH:
        raise BFDPacketError(DropReason.TOO_SHORT, f"{len(data)} octets")
    (vers_diag, sta_flags, detect_mult, length, my_discr, your_discr, min_tx, min_rx, echo_rx) = (
        _MANDATORY.unpack_from(data)
    )
    version = vers_diag >> 5
    if version != VERSION:
        raise BFDPacketError(DropReason.BAD_VERSION, f"version {version}")
    has_auth = bool(sta_flags & _FLAG_AUTH)
    if length < MANDATORY_LENGTH + (2 if has_auth else 0) or (
        not has_auth and length != MANDATORY_LENGTH
    ):
        raise BFDPacketError(DropReason.BAD_LENGTH, f"Length {length}")
    if length > len(data):
        raise BFDPacketError(DropReason.TRUNCATED, f"Length {length} > {len(data)} octets")
    if detect_mult == 0:
        raise BFDPacketError(DropReason.ZERO_DETECT_MULT)
    if sta_flags & _FLAG_MULTIPOINT:
        raise BFDPacketError(DropReason.MULTIPOINT)
    if my_discr == 0:
        raise BFDPacketError(DropReason.ZERO_MY_DISCR)
    state = State(sta_flags >> 6)
    if your_discr == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise BFDPacketError(DropReason.ZERO_YOUR_DISCR, f"state {state.name}")
    auth = _decode_auth(bytes(data[MANDATORY_LENGTH:length])) if has_auth else None
    return ControlPacket(
        state=state,
        my_discr=my_discr,
        your_discr=your_discr,
        diag=vers_diag & 0x1F,
        detect_mult=detect_mult,
        desired_min_tx_us=min_tx,
        required_min_rx_us=min_rx,
        required_min_echo_rx_us=echo_rx,
        poll=bool(sta_flags & _FLAG_POLL),
        final=bool(sta_flags & _FLAG_FINAL),
        control_plane_independent=bool(sta_flags & _FLAG_CPI),
        demand=bool(sta_flags & _FLAG_DEMAND),
        auth=auth,
    )


def _decode_auth(section: bytes) -> Auth:
    auth_type_code, auth_len = section[0], section[1]
    if auth_len != len(section):
        raise BFDPacketError(
            DropReason.BAD_AUTH_SECTION, f"Auth Len {auth_len} in a {len(section)}-octet section"
        )
    try:
        auth_type = AuthType(auth_type_code)
    except ValueError:
        raise BFDPacketError(DropReason.BAD_AUTH_SECTION, f"Auth Type {auth_type_code}") from None
    if auth_type is AuthType.SIMPLE_PASSWORD:
        if not 3 + _PASSWORD_MIN <= auth_len <= 3 + _PASSWORD_MAX:
            raise BFDPacketError(DropReason.BAD_AUTH_SECTION, f"password Auth Len {auth_len}")
        return Auth(auth_type, key_id=section[2], password=section[3:])
    expected = AUTH_DIGEST_LENGTHS.get(auth_type)
    if expected is None or auth_len != expected:
        raise BFDPacketError(
            DropReason.BAD_AUTH_SECTION, f"{auth_type.name} with Auth Len {auth_len}"
        )
    _, _, key_id, _, sequence = _DIGEST_HEAD.unpack_from(section)
    return Auth(auth_type, key_id=key_id, sequence=sequence, digest=section[_DIGEST_HEAD.size :])


__all__ = ["Auth", "BFDPacketError", "ControlPacket", "DropReason", "decode"]
