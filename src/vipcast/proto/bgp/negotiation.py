"""From the two OPENs to the session's :class:`Negotiated` parameters (RFC 4271 §6.2, 5492,
4760, 6793, 8654, 2918, 4724), and BGP identifier collision resolution (RFC 4271 §6.8)."""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from .capabilities import (
    Capability,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    RouteRefreshCapability,
)
from .constants import (
    AS_TRANS,
    BGP_VERSION,
    IPV4_UNICAST,
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    ErrorCode,
    Family,
    OpenSubcode,
)
from .errors import BGPError
from .messages import Open


@dataclass(frozen=True)
class Negotiated:
    peer_asn: int
    peer_router_id: str
    hold_time: int
    keepalive_time: float
    families: frozenset[Family]
    four_octet_as: bool
    extended_messages: bool
    route_refresh: bool
    ibgp: bool
    peer_graceful_restart: GracefulRestart | None = None
    peer_capabilities: tuple[Capability, ...] = ()

    @property
    def max_message_len(self) -> int:
        return MAX_EXTENDED_MESSAGE_LEN if self.extended_messages else MAX_MESSAGE_LEN


def _open_error(subcode: int, reason: str, data: bytes = b"") -> BGPError:
    return BGPError(ErrorCode.OPEN_MESSAGE, subcode, data, reason)


def peer_asn_of(remote: Open) -> int:
    """The peer's real ASN: the 4-octet capability if present, else My AS (RFC 6793 §4.1)."""
    for cap in remote.capabilities:
        if isinstance(cap, FourOctetAs):
            return cap.asn
    return remote.asn


def negotiate(
    local: Open,
    remote: Open,
    *,
    local_asn: int,
    expected_peer_asn: int,
    keepalive_time: float | None = None,
) -> Negotiated:
    """Check the peer's OPEN against ours and what we expect; raise the OPEN error if not."""
    if remote.version != BGP_VERSION:
        raise _open_error(
            OpenSubcode.UNSUPPORTED_VERSION,
            f"version {remote.version}",
            struct.pack("!H", BGP_VERSION),
        )
    peer_asn = peer_asn_of(remote)
    if peer_asn != expected_peer_asn or peer_asn == 0:
        raise _open_error(
            OpenSubcode.BAD_PEER_AS,
            f"peer AS {peer_asn}, expected {expected_peer_asn}",
            struct.pack("!H", remote.asn),
        )
    if remote.hold_time in (1, 2):
        raise _open_error(OpenSubcode.UNACCEPTABLE_HOLD_TIME, f"hold time {remote.hold_time}")
    rid = ipaddress.IPv4Address(remote.router_id)
    ibgp = peer_asn == local_asn
    if int(rid) == 0 or (ibgp and remote.router_id == local.router_id):
        raise _open_error(OpenSubcode.BAD_BGP_IDENTIFIER, f"BGP identifier {rid}", rid.packed)
    ours, theirs = local.capabilities, remote.capabilities
    mine_mp = {c.family for c in ours if isinstance(c, Multiprotocol)}
    their_mp = {c.family for c in theirs if isinstance(c, Multiprotocol)}
    # RFC 4760 §8: a peer without MP capabilities speaks IPv4 unicast only
    if not their_mp:
        their_mp = {IPV4_UNICAST}
    if not mine_mp:
        mine_mp = {IPV4_UNICAST}
    hold = min(local.hold_time, remote.hold_time)
    if hold == 0:
        keepalive = 0.0
    else:
        keepalive = hold / 3 if keepalive_time is None else min(float(keepalive_time), hold / 3)
    gr = next((c for c in theirs if isinstance(c, GracefulRestart)), None)
    return Negotiated(
        peer_asn=peer_asn,
        peer_router_id=str(rid),
        hold_time=hold,
        keepalive_time=keepalive,
        families=frozenset(mine_mp & their_mp),
        four_octet_as=_both(ours, theirs, FourOctetAs),
        extended_messages=_both(ours, theirs, ExtendedMessage),
        route_refresh=_both(ours, theirs, RouteRefreshCapability),
        ibgp=ibgp,
        peer_graceful_restart=gr,
        peer_capabilities=tuple(theirs),
    )


def _both(ours: tuple[Capability, ...], theirs: tuple[Capability, ...], kind: type) -> bool:
    return any(isinstance(c, kind) for c in ours) and any(isinstance(c, kind) for c in theirs)


def my_as_field(local_asn: int) -> int:
    """The 2-byte My Autonomous System value for an ASN (AS_TRANS if it needs 4 bytes)."""
    return local_asn if local_asn <= 0xFFFF else AS_TRANS


class Initiator(enum.Enum):
    LOCAL = "local"
    REMOTE = "remote"


def collision_winner(local_id: str, remote_id: str, local_asn: int, remote_asn: int) -> Initiator:
    """Which of two colliding connections survives (RFC 4271 §6.8, RFC 6286 §2.3).

    The connection initiated by the speaker with the higher BGP identifier is kept; with equal
    identifiers (only legal between different ASes) the one initiated by the higher ASN.
    """
    lid, rid = int(ipaddress.IPv4Address(local_id)), int(ipaddress.IPv4Address(remote_id))
    if lid != rid:
        return Initiator.LOCAL if lid > rid else Initiator.REMOTE
    return Initiator.LOCAL if local_asn > remote_asn else Initiator.REMOTE
