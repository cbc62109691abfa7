"""xDS protocol state (sans I/O): the server side of a state-of-the-world stream, type URLs."""

from vipcast.proto.xds.sotw import Acked, Nacked, Outcome, Request, Send, SotwStream
from vipcast.proto.xds.types import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    SECRET,
    TYPE_ORDER,
    WILDCARD,
)

__all__ = [
    "CLUSTER", "ENDPOINT", "LISTENER", "ROUTE", "SECRET", "TYPE_ORDER", "WILDCARD", "Acked",
    "Nacked", "Outcome", "Request", "Send", "SotwStream",
]
