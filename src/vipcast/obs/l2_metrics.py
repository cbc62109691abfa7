"""Prometheus metrics of the L2 runtime (vipcast.runtime.l2.driver).

Registered on the registry the caller passes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class L2Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.vip_owned = Gauge(
            "vipcast_l2_vip_owned",
            "1 if this node answers ARP/NDP for the VIP, else 0",
            ["ip"],
            registry=registry,
        )
        self.members_alive = Gauge(
            "vipcast_l2_members_alive", "members alive in this node's view", registry=registry
        )
        self.quorum = Gauge(
            "vipcast_l2_quorum", "1 if this node sees a majority of members", registry=registry
        )
        self.ownership_changes = Counter(
            "vipcast_l2_ownership_changes",
            "VIPs taken or released by this node, or announced again after a refutation",
            ["change"],
            registry=registry,
        )
        self.frames = Counter(
            "vipcast_l2_frames",
            "frames received by the responder, by outcome",
            ["interface", "outcome"],
            registry=registry,
        )
        self.announcements = Counter(
            "vipcast_l2_announcements",
            "gratuitous ARP / unsolicited NA frames sent",
            ["interface"],
            registry=registry,
        )
        self.send_errors = Counter(
            "vipcast_l2_send_errors", "frames the kernel refused", ["interface"], registry=registry
        )
