"""Sans-IO BFD (RFC 5880 asynchronous mode, RFC 5881 single hop, RFC 5883 multihop).

:class:`Session` is the whole protocol for one peer: packets and ``now`` in, packets, deadlines
and :class:`StateChanged` events out. :mod:`vipcast.runtime.bfd.manager` gives it sockets
and timers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vipcast.lazy_exports import lazy_exports

if TYPE_CHECKING:
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

#: where each name of ``__all__`` lives, imported when first read (vipcast.lazy_exports;
#: tests/foundation/test_lazy_exports.py reads every name)
_WHERE = {
    "Auth": "vipcast.proto.bfd.packet",
    "AuthType": "vipcast.proto.bfd.constants",
    "BFDPacketError": "vipcast.proto.bfd.packet",
    "ControlPacket": "vipcast.proto.bfd.packet",
    "Diag": "vipcast.proto.bfd.constants",
    "DropReason": "vipcast.proto.bfd.packet",
    "MULTIHOP_PORT": "vipcast.proto.bfd.constants",
    "SINGLE_HOP_PORT": "vipcast.proto.bfd.constants",
    "SINGLE_HOP_TTL": "vipcast.proto.bfd.constants",
    "SOURCE_PORT_MAX": "vipcast.proto.bfd.constants",
    "SOURCE_PORT_MIN": "vipcast.proto.bfd.constants",
    "Session": "vipcast.proto.bfd.session",
    "SessionConfig": "vipcast.proto.bfd.session",
    "State": "vipcast.proto.bfd.constants",
    "StateChanged": "vipcast.proto.bfd.session",
    "decode": "vipcast.proto.bfd.packet",
    "jittered": "vipcast.proto.bfd.session",
}

__getattr__ = lazy_exports(globals(), _WHERE)
