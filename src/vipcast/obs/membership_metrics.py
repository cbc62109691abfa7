"""Prometheus metrics of the node membership: a collector over the runtime's plain counters
(read at scrape time, so the runtime imports no Prometheus)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

#: what the snapshot callable returns: {"received": {verdict: n}, "sent": n, "sent_bytes": n,
#: "alive": n, "dead": n, "quorum": 0 or 1}; None while no membership runs
Snapshot = Mapping[str, object] | None


class MembershipCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        data = self._snapshot()
        if data is None:
            return
        received = CounterMetricFamily(
            "vipcast_membership_datagrams_received",
            "membership datagrams received, by verdict (refused ones included)",
            labels=["verdict"],
        )
        verdicts = data.get("received", {})
        assert isinstance(verdicts, Mapping)
        for verdict, count in sorted(verdicts.items()):
            received.add_metric([str(verdict)], float(count))
        yield received
        yield CounterMetricFamily(
            "vipcast_membership_datagrams_sent", "membership datagrams sent",
            value=_number(data.get("sent")),
        )
        yield CounterMetricFamily(
            "vipcast_membership_sent_bytes", "membership payload bytes sent",
            value=_number(data.get("sent_bytes")),
        )
        yield GaugeMetricFamily(
            "vipcast_membership_alive", "members alive in this node's view",
            value=_number(data.get("alive")),
        )
        yield GaugeMetricFamily(
            "vipcast_membership_dead",
            "members known dead in this node's view (their backends leave Cluster-policy maps)",
            value=_number(data.get("dead")),
        )
        yield GaugeMetricFamily(
            "vipcast_membership_quorum", "1 if this node sees a majority of members",
            value=_number(data.get("quorum")),
        )


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def register_membership_metrics(
    registry: CollectorRegistry, snapshot: Callable[[], Snapshot]
) -> MembershipCollector:
    collector = MembershipCollector(snapshot)
    registry.register(collector)
    return collector
