"""Node membership on the LAN (sans-IO): SWIM failure detection and dissemination with HMAC
authentication and restart-proof replay protection.

``codec`` is the wire format, ``replay`` the per-peer window, ``members`` the member table's
values and rumor precedence, ``authentication`` which datagrams count (HMAC, proven-fresh
boots, challenges), ``dissemination`` the rumors heard and this node's own record,
``detection`` the probe round, suspicions and local health, ``sync`` the paged state transfer,
``view`` what users see, ``protocol`` the state machine that ties them (receive, tick, leave,
sending).
The runtime (:mod:`vipcast.runtime.membership`) drives it over UDP; L2 ownership decisions over
its :class:`View` are in :mod:`vipcast.core.l2owner`. See docs/membership.md.
"""

from vipcast.proto.membership.authentication import Verdict
from vipcast.proto.membership.codec import Datagram, Kind, Rumor, State, WireError, decode, encode
from vipcast.proto.membership.config import (
    SUSPICION_MIN_RANGE,
    MembershipConfig,
    Timers,
    suspicion_min_problem,
)
from vipcast.proto.membership.protocol import MAX_SERVING, Membership, Received
from vipcast.proto.membership.view import Interner, View

__all__ = [
    "MAX_SERVING",
    "SUSPICION_MIN_RANGE",
    "Datagram",
    "Interner",
    "Kind",
    "Membership",
    "MembershipConfig",
    "Received",
    "Rumor",
    "State",
    "Timers",
    "Verdict",
    "View",
    "WireError",
    "decode",
    "encode",
    "suspicion_min_problem",
]
