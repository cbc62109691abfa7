"""Prometheus metrics of the L7 gateway, collected at scrape time from its status document
(the mapping :meth:`vipcast.runtime.envoy.EnvoyGateway.status` returns, read structurally)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry


class GatewayCollector(Collector):
    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        doc = self._status()
        envoy = doc.get("envoy", {})
        ready = GaugeMetricFamily("vipcast_gateway_envoy_ready",
                                  "1 when the node's Envoy answers /ready")
        ready.add_metric([], 1.0 if envoy.get("ready") else 0.0)
        restarts = CounterMetricFamily("vipcast_gateway_envoy_restarts",
                                       "Times the node's Envoy exited and was restarted")
        restarts.add_metric([], float(envoy.get("restarts", 0)))
        in_sync = GaugeMetricFamily("vipcast_gateway_xds_in_sync",
                                    "1 when Envoy ACKed the current version of every type")
        in_sync.add_metric([], 1.0 if doc.get("in_sync") else 0.0)
        acks = CounterMetricFamily("vipcast_gateway_xds_acks", "xDS responses Envoy accepted")
        acks.add_metric([], float(doc.get("acks", 0)))
        nacks = CounterMetricFamily("vipcast_gateway_xds_nacks", "xDS responses Envoy refused")
        nacks.add_metric([], float(doc.get("nacks", 0)))
        refused = GaugeMetricFamily(
            "vipcast_gateway_xds_refused_info",
            "The version of a type Envoy refused last (value 1; message in a label)",
            labels=["type", "version", "message"])
        for type_name, info in doc.get("nacked", {}).items():
            refused.add_metric([type_name, info["version"], info["message"][:200]], 1.0)
        updates = CounterMetricFamily("vipcast_gateway_model_updates",
                                      "Proxy model changes pushed over xDS")
        updates.add_metric([], float(doc.get("updates", 0)))
        yield from (ready, restarts, in_sync, acks, nacks, refused, updates)


def register_gateway_metrics(
    registry: CollectorRegistry, status: Callable[[], Mapping[str, Any]]
) -> GatewayCollector:
    collector = GatewayCollector(status)
    registry.register(collector)
    return collector
