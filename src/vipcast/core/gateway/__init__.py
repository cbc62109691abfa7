"""The L7 gateway's pure core: Gateway API objects (and Ingresses) -> per-node proxy model and
Gateway API status values. See :mod:`vipcast.core.gateway.translate`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vipcast.lazy_exports import lazy_exports

if TYPE_CHECKING:
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

#: where each name of ``__all__`` lives, imported when first read (vipcast.lazy_exports;
#: tests/foundation/test_lazy_exports.py reads every name)
_WHERE = {
    "Condition": "vipcast.core.gateway.model",
    "ProxyModel": "vipcast.core.gateway.model",
    "Request": "vipcast.core.gateway.lookup",
    "Translation": "vipcast.core.gateway.model",
    "condition": "vipcast.core.gateway.model",
    "listener_config": "vipcast.core.gateway.lookup",
    "model_bytes": "vipcast.core.gateway.model",
    "route_for": "vipcast.core.gateway.lookup",
    "translate": "vipcast.core.gateway.translate",
}

__getattr__ = lazy_exports(globals(), _WHERE)
