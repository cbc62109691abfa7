"""Prometheus metrics of the address pools: capacity and addresses in use, per pool.

Collected at scrape time from the last allocation's pool usage (``AllocationResult.pool_usage``:
per pool, addresses in use and the addresses it can hand out — with ``avoidBuggyIPs`` the .0 and
.255 addresses are left out, as MetalLB counts). The composition root passes the registry and a
callable returning that mapping; nothing here touches the default registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

#: pool name -> (addresses in use, addresses it can hand out)
PoolUsage = Mapping[str, tuple[int, int]]


class PoolCollector(Collector):
    """Turns the last pool usage into metric families on every scrape."""

    def __init__(self, usage: Callable[[], PoolUsage]) -> None:
        self._usage = usage

    def collect(self) -> Iterable[Metric]:
        total = GaugeMetricFamily(
            "vipcast_pool_addresses_total",
            "Addresses the pool can hand out (avoidBuggyIPs leaves out .0 and .255).",
            labels=["pool"],
        )
        in_use = GaugeMetricFamily(
            "vipcast_pool_addresses_in_use",
            "Addresses of the pool assigned to at least one Service.",
            labels=["pool"],
        )
        for name, (used, capacity) in sorted(self._usage().items()):
            total.add_metric([name], float(capacity))
            in_use.add_metric([name], float(used))
        yield total
        yield in_use


def register_pool_metrics(
    registry: CollectorRegistry, usage: Callable[[], PoolUsage]
) -> PoolCollector:
    collector = PoolCollector(usage)
    registry.register(collector)
    return collector
