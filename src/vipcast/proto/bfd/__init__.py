"""Sans-IO BFD (RFC 5880 asynchronous mode, RFC 5881 single hop, RFC 5883 multihop).

:class:`Session` is the whole protocol for one peer: packets and ``now`` in, packets, deadlines
and :class:`StateChanged` events out. :mod:`vipcast.runtime.bfd.manager` gives it sockets
and timers.
"""

from vipcast.proto.bfd.constants import (
    MULTIHOP_PORT,
    SINGLE_HOP_PORT,
    SINGLE_HOP_TTL,
    SOURCE_PORT_MAX,
    SOURCE_PORT_MIN,
    AuthType,
    Diag,
    State,
)
from vipcast.proto.bfd.packet import Auth, BFDPacketError, ControlPacket, DropReason, decode
from vipcast.proto.bfd.session import Session, SessionConfig, StateChanged, jittered

__all__ = [
    "MULTIHOP_PORT",
    "SINGLE_HOP_PORT",
    "SINGLE_HOP_TTL",
    "SOURCE_PORT_MAX",
    "SOURCE_PORT_MIN",
    "Auth",
    "AuthType",
    "BFDPacketError",
    "ControlPacket",
    "Diag",
    "DropReason",
    "Session",
    "SessionConfig",
    "State",
    "StateChanged",
    "decode",
    "jittered",
]
