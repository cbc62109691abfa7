"""The L7 gateway's pure core: Gateway API objects (and Ingresses) -> per-node proxy model and
Gateway API status values. See :mod:`vipcast.core.gateway.translate`."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

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

#: where each name of ``__all__`` lives, imported when first read: importing one module of
#: the package (as ``vipcast plan`` does) does not import all of it
#: (tests/foundation/test_cli_lazy.py reads every name)
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


def __getattr__(name: str) -> object:
    """A name of ``__all__``, imported from its module when first read."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
