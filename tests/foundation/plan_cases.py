"""Seeded random clusters that exercise every path of the planner, and plans as plain data.

Used by ``test_plan_reference.py``: the optimised planner is compared with a straightforward
reference and with a snapshot of its output taken before the optimisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from typing import Any

from vipcast.core.desired import NodePlan

V = "vipcast.io/v1beta1"


def cluster_documents(seed: int, services: int = 60, nodes: int = 6) -> list[dict[str, Any]]:
    """Pools (v4, v6, dual, one shared by two BGP advertisements), peers with node selectors,
    L2 with interfaces, aggregation, communities, localPref; services with several ports,
    dual stack, Local policy, sharing keys, source ranges; slices with named and unnamed
    ports, IPv6 slices, not-ready, terminating and node-less endpoints; nodes not Ready."""
    rnd = random.Random(seed)
    docs: list[dict[str, Any]] = [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "v4"},
         "spec": {"addresses": ["192.0.2.0/26"], "avoidBuggyIPs": True}},
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "dual"},
         "spec": {"addresses": ["198.51.100.0/27", "2001:db8:0:1::/120"]}},
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "both"},
         "spec": {"addresses": ["203.0.113.0/27", "2001:db8:0:2::/122"],
                  "serviceAllocation": {"priority": 1}}},
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "lan"},
         "spec": {"addresses": ["198.18.0.0/26", "fd00::100-fd00::1ff"]}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "tor-a"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1",
                  "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "tor-b"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.2"}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "spine"},
         "spec": {"myASN": 64512, "peerASN": 64501, "peerAddress": "10.0.0.3",
                  "nodeSelectors": [{"matchLabels": {"rack": "b"}}]}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "host"},
         "spec": {"ipAddressPools": ["v4", "dual", "both"], "communities": ["65000:1"],
                  "localPref": 100}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "agg"},
         "spec": {"ipAddressPools": ["both"], "aggregationLength": 28,
                  "aggregationLengthV6": 124, "communities": ["large:64512:1:2", "65000:2"],
                  "localPref": 200, "peers": ["tor-b", "spine"],
                  "nodeSelectors": [{"matchLabels": {"bgp": "yes"}}]}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "extra"},
         "spec": {"ipAddressPools": ["v4"], "communities": ["65000:3"], "peers": ["tor-b"]}},
        {"apiVersion": V, "kind": "L2Advertisement", "metadata": {"name": "l2-all"},
         "spec": {"ipAddressPools": ["lan", "dual"]}},
        {"apiVersion": V, "kind": "L2Advertisement", "metadata": {"name": "l2-eth"},
         "spec": {"ipAddressPools": ["lan"], "interfaces": ["eth1", "eth0"],
                  "nodeSelectors": [{"matchLabels": {"rack": "a"}}]}},
    ]
    names = [f"n{i}" for i in range(nodes)]
    for name in names:
        labels = {"rack": rnd.choice(["a", "b"])}
        if rnd.random() < 0.6:
            labels["bgp"] = "yes"
        node: dict[str, Any] = {"apiVersion": "v1", "kind": "Node",
                                "metadata": {"name": name, "labels": labels}}
        if rnd.random() < 0.8:
            ready = "True" if rnd.random() < 0.85 else "False"
            node["status"] = {"conditions": [{"type": "Ready", "status": ready}]}
        docs.append(node)
    for s in range(services):
        name, ns = f"s{s}", rnd.choice(["a", "b"])
        meta: dict[str, Any] = {"name": name, "namespace": ns}
        ports = [{"name": "http", "port": 80 + s % 3}]
        if rnd.random() < 0.4:
            ports.append({"name": "dns", "port": 53, "protocol": "UDP"})
        if rnd.random() < 0.2:
            ports.append({"port": 9000 + s, "targetPort": 9100})
        spec: dict[str, Any] = {"type": "LoadBalancer", "selector": {"app": name},
                                "ports": ports}
        if rnd.random() < 0.4:
            spec |= {"ipFamilyPolicy": rnd.choice(["PreferDualStack", "RequireDualStack"]),
                     "ipFamilies": rnd.choice([["IPv4", "IPv6"], ["IPv6", "IPv4"]])}
        if rnd.random() < 0.25:
            spec["externalTrafficPolicy"] = "Local"
        if rnd.random() < 0.15:
            spec["loadBalancerSourceRanges"] = ["192.0.2.0/24"]
        annotations = {}
        if rnd.random() < 0.3:
            annotations["vipcast.io/allow-shared-ip"] = f"k{s % 3}"
        if rnd.random() < 0.5:
            annotations["vipcast.io/address-pool"] = rnd.choice(["v4", "dual", "both", "lan"])
        if annotations:
            meta["annotations"] = annotations
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})
        for part in range(rnd.choice([0, 1, 1, 1, 2])):
            family = rnd.choice(["IPv4", "IPv4", "IPv6"])
            endpoints = []
            for e in range(rnd.randint(0, 3)):
                ip = f"10.{part}.{s}.{e}" if family == "IPv4" else f"fd00:{part}::{s:x}:{e}"
                endpoint: dict[str, Any] = {"addresses": [ip]}
                if rnd.random() < 0.9:
                    endpoint["nodeName"] = rnd.choice(names)
                roll = rnd.random()
                if roll < 0.15:
                    endpoint["conditions"] = {"ready": False}
                elif roll < 0.25:
                    endpoint["conditions"] = {"ready": True, "terminating": True}
                endpoints.append(endpoint)
            slice_ports: list[dict[str, Any]] = [{"name": "http", "port": 8080}]
            if rnd.random() < 0.5:
                slice_ports.append({"name": "dns", "port": 5353, "protocol": "UDP"})
            if rnd.random() < 0.1:
                slice_ports = []
            docs.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-{part}", "namespace": ns,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": family, "ports": slice_ports, "endpoints": endpoints,
            })
    return docs


def plan_data(plan: NodePlan) -> dict[str, Any]:
    """A NodePlan's duties (what the planner of core.plan fills) as JSON-ready data (tuples
    become lists); the fields the node pipeline adds later are not part of the digests."""
    data = dataclasses.asdict(plan)
    for route in data["bgp"]:
        # added later (weighted ECMP): absent from the digests while empty
        if not route.get("extended_communities"):
            route.pop("extended_communities", None)
    return {k: data[k] for k in ("node", "bgp", "l2", "nat", "local_vips")}


def digest(data: Any) -> str:
    """SHA-256 of the canonical JSON of ``data``."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
