"""Sans-IO BGP-4: codec, capabilities, the RFC 4271 FSM and a session.

The driver-facing contract is ``docs/bgp-session-api.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

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

#: where each name of ``__all__`` lives, imported when first read: importing one module of
#: the package (as ``vipcast plan`` does) does not import all of it
#: (tests/foundation/test_cli_lazy.py reads every name)
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


def __getattr__(name: str) -> object:
    """A name of ``__all__``, imported from its module when first read."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
