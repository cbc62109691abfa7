"""Envoy as the gateway's data plane: the proxy model rendered into xDS resources and
bootstraps (pure). The ADS server and the process supervision are in ``runtime/envoy``."""

from vipcast.dataplane.envoy.bootstrap import ads_bootstrap, static_bootstrap, to_json
from vipcast.dataplane.envoy.resources import ProxyOptions, render, resource_bytes
from vipcast.proto.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_ORDER

__all__ = [
    "CLUSTER", "ENDPOINT", "LISTENER", "ROUTE", "SECRET", "TYPE_ORDER", "ProxyOptions",
    "ads_bootstrap", "render", "resource_bytes", "static_bootstrap", "to_json",
]
