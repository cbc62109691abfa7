"""The L7 gateway's pure core: Gateway API objects (and Ingresses) -> per-node proxy model and
Gateway API status values. See :mod:`vipcast.core.gateway.translate`."""

from vipcast.core.gateway.lookup import Request, listener_config, route_for
from vipcast.core.gateway.model import (
    Condition,
    ProxyModel,
    Translation,
    condition,
    model_bytes,
)
from vipcast.core.gateway.translate import translate

__all__ = [
    "Condition", "ProxyModel", "Request", "Translation", "condition", "listener_config",
    "model_bytes", "route_for", "translate",
]
