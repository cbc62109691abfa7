"""What a :class:`~vipcast.proto.bgp.session.Session` tells its driver, as frozen values.

The driver (``runtime/bgp*``) pops them with ``Session.next_event()`` after every call into the
session and acts: ``ConnectWanted`` -> open a TCP connection (abandoning any attempt still in
flight), ``CloseWanted`` -> write out ``data_to_send()`` and then close the connection. All other
events are informational (logging, metrics, status).
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import Family, State
from .messages import Notification
from .negotiation import Negotiated


@dataclass(frozen=True)
class ConnectWanted:
    """Open a TCP connection to the peer now (and drop an attempt still pending)."""


@dataclass(frozen=True)
class CloseWanted:
    """Flush ``data_to_send()``, then close the TCP connection."""


@dataclass(frozen=True)
class StateChanged:
    old: State
    new: State


@dataclass(frozen=True)
class Established:
    negotiated: Negotiated


@dataclass(frozen=True)
class SessionDown:
    """The session left Established/OpenSent/OpenConfirm (or failed to connect).

    ``notification`` is the NOTIFICATION that ended it (sent by us when ``sent`` is true,
    received from the peer otherwise), or None for a lost connection.
    """

    reason: str
    notification: Notification | None = None
    sent: bool = False


@dataclass(frozen=True)
class NotificationSent:
    notification: Notification


@dataclass(frozen=True)
class NotificationReceived:
    notification: Notification


@dataclass(frozen=True)
class RoutesReceived:
    """One UPDATE was accepted: how many prefixes it announced and withdrew (not stored)."""

    announced: int
    withdrawn: int
    #: RFC 7606: the UPDATE was malformed in a way that turns its announcements into withdrawals
    treat_as_withdraw: bool = False


@dataclass(frozen=True)
class EndOfRibReceived:
    family: Family


@dataclass(frozen=True)
class RouteRefreshReceived:
    """The peer asked for our routes again; the session has already queued them."""

    family: Family


SessionEvent = (
    ConnectWanted
    | CloseWanted
    | StateChanged
    | Established
    | SessionDown
    | NotificationSent
    | NotificationReceived
    | RoutesReceived
    | EndOfRibReceived
    | RouteRefreshReceived
)
