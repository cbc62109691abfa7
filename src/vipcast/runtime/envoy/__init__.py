"""The gateway's runtime: ADS over gRPC on a unix socket, and the supervised Envoy process."""

from vipcast.runtime.envoy.ads import NodeReport, XdsCache, serve_ads
from vipcast.runtime.envoy.process import (
    EnvoyProcess,
    EnvoySettings,
    admin_get,
    cpu_budget,
    find_envoy,
)

__all__ = [
    "EnvoyProcess", "EnvoySettings", "NodeReport",
    "XdsCache", "admin_get", "cpu_budget", "find_envoy", "serve_ads",
]
