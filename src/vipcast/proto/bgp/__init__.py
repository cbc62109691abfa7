"""Sans-IO BGP-4: codec, capabilities, the RFC 4271 FSM and a session.

The driver-facing contract is ``docs/bgp-session-api.md``.
"""

from .adj_rib_out import HEAD_START, head_start
from .config import SessionConfig, SessionStats
from .constants import IPV4_UNICAST, IPV6_UNICAST, Family, Origin, State
from .errors import BGPError
from .events import (
    CloseWanted,
    ConnectWanted,
    EndOfRibReceived,
    Established,
    NotificationReceived,
    NotificationSent,
    RouteRefreshReceived,
    RoutesReceived,
    SessionDown,
    SessionEvent,
    StateChanged,
)
from .messages import Notification
from .negotiation import Initiator, Negotiated, collision_winner
from .packing import RouteAttributes
from .session import Session

__all__ = [
    "HEAD_START",
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "BGPError",
    "CloseWanted",
    "ConnectWanted",
    "EndOfRibReceived",
    "Established",
    "Family",
    "Initiator",
    "Negotiated",
    "Notification",
    "NotificationReceived",
    "NotificationSent",
    "Origin",
    "RouteAttributes",
    "RouteRefreshReceived",
    "RoutesReceived",
    "Session",
    "SessionConfig",
    "SessionDown",
    "SessionEvent",
    "SessionStats",
    "State",
    "StateChanged",
    "collision_winner",
    "head_start",
]
