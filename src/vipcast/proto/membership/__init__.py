"""Node membership on the LAN (sans-IO): the wire codec and the protocol state machine.

The runtime (:mod:`vipcast.runtime.membership`) drives it over UDP; L2 ownership decisions
over its :class:`View` are in :mod:`vipcast.core.l2owner`.
"""

from vipcast.proto.membership.codec import (
    MAX_SERVING,
    Heartbeat,
    Kind,
    MembershipError,
    decode_heartbeat,
)
from vipcast.proto.membership.protocol import (
    Membership,
    MembershipConfig,
    Received,
    Verdict,
    View,
)

__all__ = [
    "MAX_SERVING",
    "Heartbeat",
    "Kind",
    "Membership",
    "MembershipConfig",
    "MembershipError",
    "Received",
    "Verdict",
    "View",
    "decode_heartbeat",
]
