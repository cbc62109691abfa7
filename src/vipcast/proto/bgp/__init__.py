"""Sans-IO BGP-4: codec, capabilities, the RFC 4271 FSM and a session.

The driver-facing contract is ``docs/bgp-session-api.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vipcast.lazy_exports import lazy_exports

if TYPE_CHECKING:
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

#: where each name of ``__all__`` lives, imported when first read (vipcast.lazy_exports;
#: tests/foundation/test_lazy_exports.py reads every name)
_WHERE = {
    "BGPError": ".errors",
    "CloseWanted": ".events",
    "ConnectWanted": ".events",
    "EndOfRibReceived": ".events",
    "Established": ".events",
    "Family": ".constants",
    "HEAD_START": ".adj_rib_out",
    "IPV4_UNICAST": ".constants",
    "IPV6_UNICAST": ".constants",
    "Initiator": ".negotiation",
    "Negotiated": ".negotiation",
    "Notification": ".messages",
    "NotificationReceived": ".events",
    "NotificationSent": ".events",
    "Origin": ".constants",
    "RouteAttributes": ".packing",
    "RouteRefreshReceived": ".events",
    "RoutesReceived": ".events",
    "Session": ".session",
    "SessionConfig": ".config",
    "SessionDown": ".events",
    "SessionEvent": ".events",
    "SessionStats": ".config",
    "State": ".constants",
    "StateChanged": ".events",
    "collision_winner": ".negotiation",
    "head_start": ".adj_rib_out",
}

__getattr__ = lazy_exports(globals(), _WHERE)
