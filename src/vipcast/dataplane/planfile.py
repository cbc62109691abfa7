"""A NodePlan as plain data (YAML/JSON), for ``vipcast dataplane render|apply PLANFILE``.

The shape mirrors :class:`~vipcast.core.desired.NodePlan` field by field::

    node: n1
    local_vips: [203.0.113.10]
    nat:
      - service: default/web
        vip: 203.0.113.10
        port: 80
        protocol: TCP
        traffic_policy: Cluster
        source_ranges: []
        backends:
          - {ip: 192.0.2.2, port: 8080, node: n1, local: true, ready: true}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from vipcast.core.desired import Backend, NatRule, NodePlan


class PlanFileError(ValueError):
    """The plan document does not have the NodePlan shape."""


def plan_from_data(data: Any) -> NodePlan:
    """Build a NodePlan's NAT part (and local VIPs) from parsed YAML/JSON."""
    if not isinstance(data, Mapping):
        raise PlanFileError("a plan file holds one mapping (node, nat, local_vips)")
    try:
        rules = tuple(
            NatRule(
                service=str(r["service"]),
                vip=str(r["vip"]),
                port=int(r["port"]),
                protocol=r.get("protocol", "TCP"),
                backends=tuple(
                    Backend(
                        ip=str(b["ip"]),
                        port=int(b["port"]),
                        node=b.get("node"),
                        local=bool(b.get("local", False)),
                        ready=bool(b.get("ready", True)),
                    )
                    for b in r.get("backends", ())
                ),
                traffic_policy=r.get("traffic_policy", "Cluster"),
                source_ranges=tuple(str(s) for s in r.get("source_ranges", ())),
            )
            for r in data.get("nat", ())
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanFileError(f"bad nat rule: {exc!r}") from exc
    for rule in rules:
        if rule.protocol not in ("TCP", "UDP", "SCTP"):
            raise PlanFileError(f"{rule.service}: protocol {rule.protocol!r}")
        if rule.traffic_policy not in ("Cluster", "Local"):
            raise PlanFileError(f"{rule.service}: traffic_policy {rule.traffic_policy!r}")
    return NodePlan(
        node=str(data.get("node", "")),
        nat=rules,
        local_vips=tuple(str(v) for v in data.get("local_vips", ())),
    )


def plan_to_data(plan: NodePlan) -> dict[str, Any]:
    """The NAT part of ``plan`` as plain data (the inverse of :func:`plan_from_data`)."""
    return {
        "node": plan.node,
        "local_vips": list(plan.local_vips),
        "nat": [
            {**asdict(r), "backends": [asdict(b) for b in r.backends],
             "source_ranges": list(r.source_ranges)}
            for r in plan.nat
        ],
    }
