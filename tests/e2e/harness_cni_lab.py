"""A burst of VIP changes for the labs beside a BGP-speaking CNI (``--cni bird``, every mode):
Services that appear at once and go again, and what the router must show meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from harness_lab import WEB

from vipcast.lab.frr import FrrInstance

#: the burst's Services ask for these addresses (vipcast.io/loadBalancerIPs)
BURST_IPS = [f"192.0.2.{n}" for n in range(20, 26)]


def burst_service(name: str, ip: str) -> list[dict[str, Any]]:
    """A Cluster Service asking for ``ip``, backed by the pods on every node."""
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": "default",
                      "annotations": {"vipcast.io/loadBalancerIPs": ip}},
         "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                  "selector": {"app": name}}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": name, "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [f"10.244.{i}.10"], "nodeName": f"n{i}",
                        "conditions": {"ready": True}} for i in (1, 2, 3)],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
    ]


def vip_bursts(frr: FrrInstance, workdir: str, *, next_hops: set[str] | None = None,
               why: Callable[[], str] = lambda: "") -> None:
    """Three rounds: the burst's six Services appear at once in an extra object file and the
    router gets each VIP over 3 paths (with these ``next_hops``, when given); the file goes and
    every VIP is withdrawn (through every node's speaker). The lab's own ``WEB`` VIP stays
    throughout (``why()``: what a failure message adds)."""
    extra = Path(workdir) / "config" / "burst.yaml"
    for round_ in range(3):
        docs = [d for k, ip in enumerate(BURST_IPS) for d in burst_service(f"burst{k}", ip)]
        # written whole, then renamed in: an agent polling the directory (every 0.3 s) never
        # reads a half-written file (a refusal, logged, that would only delay the round)
        tmp = extra.with_name(".burst.tmp")
        tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        tmp.rename(extra)
        for ip in BURST_IPS:
            paths = frr.wait_paths(f"{ip}/32", 3, timeout=45)
            if next_hops is not None:
                assert {p.nexthop for p in paths} == next_hops
        extra.unlink()
        for ip in BURST_IPS:
            frr.wait_paths(f"{ip}/32", 0, timeout=45)
        assert frr.route(f"{WEB}/32"), (
            f"round {round_}: the lab's own VIP went with the burst{why()}")
