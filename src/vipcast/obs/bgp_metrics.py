"""Prometheus metrics of the BGP speaker, collected at scrape time from its status snapshot.

The collector is registered on a registry the composition root passes in; nothing here touches
the default registry. Status values are read structurally (:class:`PeerStatusView`), so this
module does not depend on the runtime that produces them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

#: session states as numbers for the state gauge (RFC 4271 FSM order)
STATE_NUMBERS = {
    "Idle": 1,
    "Connect": 2,
    "Active": 3,
    "OpenSent": 4,
    "OpenConfirm": 5,
    "Established": 6,
}


class PeerStatusView(Protocol):
    """What the collector reads of one peer's status."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def prefixes_advertised(self) -> int: ...
    @property
    def prefixes_received(self) -> int: ...
    @property
    def updates_sent(self) -> int: ...
    @property
    def updates_received(self) -> int: ...
    @property
    def notifications_sent(self) -> int: ...
    @property
    def notifications_received(self) -> int: ...
    @property
    def established_transitions(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


class BGPCollector(Collector):
    """Turns a status snapshot into metric families on every scrape."""

    def __init__(self, snapshot: Callable[[], Sequence[PeerStatusView]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        labels = ["peer", "address"]
        state = GaugeMetricFamily(
            "vipcast_bgp_session_state",
            "BGP FSM state per peer (1 Idle .. 6 Established)",
            labels=labels,
        )
        up = GaugeMetricFamily(
            "vipcast_bgp_session_up", "1 when the session is Established", labels=labels
        )
        advertised = GaugeMetricFamily(
            "vipcast_bgp_prefixes_advertised", "Prefixes in the Adj-RIB-Out sent", labels=labels
        )
        received = GaugeMetricFamily(
            "vipcast_bgp_prefixes_received", "Prefixes the peer announced to us", labels=labels
        )
        counters = {
            "updates_sent": CounterMetricFamily(
                "vipcast_bgp_updates_sent", "UPDATE messages sent", labels=labels
            ),
            "updates_received": CounterMetricFamily(
                "vipcast_bgp_updates_received", "UPDATE messages received", labels=labels
            ),
            "notifications_sent": CounterMetricFamily(
                "vipcast_bgp_notifications_sent", "NOTIFICATION messages sent", labels=labels
            ),
            "notifications_received": CounterMetricFamily(
                "vipcast_bgp_notifications_received",
                "NOTIFICATION messages received",
                labels=labels,
            ),
            "established_transitions": CounterMetricFamily(
                "vipcast_bgp_established_transitions",
                "Times the session reached Established",
                labels=labels,
            ),
        }
        last_error = GaugeMetricFamily(
            "vipcast_bgp_last_error_info",
            "The last error of a peer's session (value 1, text in a label)",
            labels=[*labels, "error"],
        )
        for peer in self._snapshot():
            values = [peer.name, peer.address]
            state.add_metric(values, STATE_NUMBERS.get(peer.state, 0))
            up.add_metric(values, 1.0 if peer.state == "Established" else 0.0)
            advertised.add_metric(values, peer.prefixes_advertised)
            received.add_metric(values, peer.prefixes_received)
            for attribute, family in counters.items():
                family.add_metric(values, float(getattr(peer, attribute)))
            if peer.last_error:
                last_error.add_metric([*values, peer.last_error], 1.0)
        yield state
        yield up
        yield advertised
        yield received
        yield from counters.values()
        yield last_error


def register_bgp_metrics(
    registry: CollectorRegistry, snapshot: Callable[[], Sequence[PeerStatusView]]
) -> BGPCollector:
    collector = BGPCollector(snapshot)
    registry.register(collector)
    return collector
