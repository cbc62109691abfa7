"""Prometheus metrics of the BFD runtime (vipcast.runtime.bfd.manager).

Registered on the registry the caller passes.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge


class BfdMetrics:
    """One set of BFD series; :class:`vipcast.runtime.bfd.manager.BfdManager` updates them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.session_state = Gauge(
            "vipcast_bfd_session_state",
            "BFD session state (0 AdminDown, 1 Down, 2 Init, 3 Up)",
            ["peer"],
            registry=registry,
        )
        self.session_up = Gauge(
            "vipcast_bfd_session_up", "1 if the BFD session is Up", ["peer"], registry=registry
        )
        self.detection_time = Gauge(
            "vipcast_bfd_detection_time_seconds",
            "negotiated detection time of the session",
            ["peer"],
            registry=registry,
        )
        self.tx_interval = Gauge(
            "vipcast_bfd_tx_interval_seconds",
            "negotiated transmit interval before jitter",
            ["peer"],
            registry=registry,
        )
        self.transitions = Counter(
            "vipcast_bfd_state_transitions",
            "state changes by new state and diagnostic",
            ["peer", "state", "diag"],
            registry=registry,
        )
        self.packets_sent = Counter(
            "vipcast_bfd_packets_sent", "control packets sent", ["peer"], registry=registry
        )
        self.packets_received = Counter(
            "vipcast_bfd_packets_received", "control packets accepted", ["peer"], registry=registry
        )
        self.packets_dropped = Counter(
            "vipcast_bfd_packets_dropped",
            "control packets discarded, by reason",
            ["reason"],
            registry=registry,
        )
        self.send_errors = Counter(
            "vipcast_bfd_send_errors", "sends the kernel refused", ["peer"], registry=registry
        )

    def forget(self, peer: str) -> None:
        """Drop the per-peer gauges of a removed session."""
        for gauge in (self.session_state, self.session_up, self.detection_time, self.tx_interval):
            with contextlib.suppress(KeyError):
                gauge.remove(peer)
