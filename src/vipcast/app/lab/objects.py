"""The object files the lab's agents read: pools, peers, advertisements, Nodes, Services.

Plain values from :class:`~vipcast.app.lab.options.LabOptions`; :func:`write_objects` puts them
in ``<workdir>/config`` as YAML.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml

from vipcast.app.lab.cni import (
    cni_speaker,
    daemon_peers,
    handoff_objects,
    separate_peers,
)
from vipcast.app.lab.gateway import GATEWAY_POOL, gateway_objects, gateway_pool, pod_objects
from vipcast.app.lab.options import (
    NODE_ASN,
    POOL_V4,
    POOL_V6,
    ROUTER_ASN,
    ROUTER_V4,
    ROUTER_V6,
    LabOptions,
    backend_ips,
    local_backends,
    node_v4,
    node_v6,
    vipcast_v4,
    vipcast_v6,
)


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, **extra}


def lab_objects(opts: LabOptions) -> dict[str, list[dict[str, Any]]]:
    """The object files the agents read, by file name."""
    api = "vipcast.io/v1beta1"
    n = opts.nodes
    config: list[dict[str, Any]] = [
        {"apiVersion": api, "kind": "IPAddressPool", "metadata": _meta("lab"),
         "spec": {"addresses": [POOL_V4, POOL_V6], "avoidBuggyIPs": True}},
    ]
    pools = ["lab"]
    if opts.gateway:
        config.append(gateway_pool())
        pools.append("gateway")
    if opts.mode == "bgp":
        peer_common: dict[str, Any] = {
            "myASN": NODE_ASN, "peerASN": ROUTER_ASN, "holdTime": f"{opts.hold_time}s",
            # an agent restart closes TCP first (GR helper keeps its routes); a dead node
            # goes silent and BFD down resets the session without GR (docs/lab.md)
            "gracefulRestart": opts.agent_graceful_restart,
        }
        if opts.bfd:
            peer_common["bfdProfile"] = "fast"
            config.append({"apiVersion": api, "kind": "BFDProfile", "metadata": _meta("fast"),
                           "spec": {"receiveInterval": opts.bfd_interval_ms,
                                    "transmitInterval": opts.bfd_interval_ms,
                                    "detectMultiplier": opts.bfd_multiplier}})
        routers = ((ROUTER_V4, ROUTER_ASN), (ROUTER_V6, ROUTER_ASN))
        if opts.cni == "bird" and opts.coexist == "separate":
            # mode 1: each agent peers the router itself, from its node's second address
            config.append(cni_speaker(asn=NODE_ASN, routers=routers, listen_port=179))
            config += separate_peers(
                n, vipcast_v4, vipcast_v6, router_v4=ROUTER_V4, router_v6=ROUTER_V6,
                router_asn=ROUTER_ASN, hold_time=opts.hold_time,
                graceful_restart=opts.agent_graceful_restart, bfd=opts.bfd)
        elif opts.cni == "bird" and opts.coexist == "handoff":
            # mode 3: no session at all, a file for the node's BIRD
            config += handoff_objects(n, opts.workdir, asn=NODE_ASN, routers=routers)
        elif opts.cni == "bird":  # mode 2: each agent peers its node's BIRD, not the router
            config.append(cni_speaker(asn=NODE_ASN, routers=routers))
            config += daemon_peers(n, node_v4, node_v6, asn=NODE_ASN, hold_time=opts.hold_time,
                                   graceful_restart=opts.agent_graceful_restart)
        else:
            config += [
                {"apiVersion": api, "kind": "BGPPeer", "metadata": _meta("router-v4"),
                 "spec": {**peer_common, "peerAddress": ROUTER_V4}},
                {"apiVersion": api, "kind": "BGPPeer", "metadata": _meta("router-v6"),
                 "spec": {**peer_common, "peerAddress": ROUTER_V6}},
            ]
        config += [
            {"apiVersion": api, "kind": "Community", "metadata": _meta("lab-communities"),
             "spec": {"communities": [{"name": "vip", "value": f"{ROUTER_ASN}:100"}]}},
            {"apiVersion": api, "kind": "BGPAdvertisement", "metadata": _meta("to-router"),
             "spec": {"ipAddressPools": pools, "communities": ["vip"],
                      **({"weightedECMP": "endpoints"} if opts.backends else {})}},
        ]
    else:
        config.append({"apiVersion": api, "kind": "L2Advertisement", "metadata": _meta("lan"),
                       "spec": {"ipAddressPools": pools, "interfaces": ["eth0"]}})
    nodes = [
        {"apiVersion": "v1", "kind": "Node",
         "metadata": _meta(f"n{i}", labels={"kubernetes.io/hostname": f"n{i}"}),
         "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": node_v4(i)},
                                  {"type": "InternalIP", "address": node_v6(i)}]}}
        for i in range(1, n + 1)
    ]
    all_nodes = list(range(1, n + 1))
    services = [
        obj
        for objs in (
            _service("web", "Cluster", [("TCP", 80)], all_nodes, "IPv4"),
        _service("web-local", "Local", [("TCP", 80)], all_nodes, "IPv4",
                 counts={i: local_backends(opts, i) for i in all_nodes}),
        _service("dual", "Cluster", [("TCP", 80)], all_nodes, "dual"),
        _service("dns-tcp", "Cluster", [("TCP", 53)], all_nodes, "IPv4", sharing="dns"),
        _service("dns-udp", "Cluster", [("UDP", 53)], all_nodes, "IPv4", sharing="dns"),
        )
        for obj in objs
    ]
    files = {"config.yaml": config, "nodes.yaml": nodes, "services.yaml": services}
    if opts.gateway:
        files["gateway.yaml"] = gateway_objects()
        files["gateway-pods.yaml"] = pod_objects(n, backend_ips)
    return files


def lab_pools(opts: LabOptions) -> tuple[str, ...]:
    """Every VIP pool of the lab (the CNI's BIRD accepts host routes inside them only)."""
    return (POOL_V4, POOL_V6) + ((GATEWAY_POOL,) if opts.gateway else ())


def _service(
    name: str,
    policy: str,
    ports: list[tuple[str, int]],
    on_nodes: Iterable[int],
    family: Literal["IPv4", "dual"],
    sharing: str | None = None,
    counts: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    # backends on a dead node leave the other nodes' NAT maps within about a second
    annotations = {"vipcast.io/health-check": "tcp, interval=0.3, timeout=0.25, fall=2"}
    if sharing:
        annotations["vipcast.io/allow-shared-ip"] = sharing
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": policy,
        "ports": [{"name": f"p{p}", "port": p, "protocol": proto, "targetPort": 8080}
                  for proto, p in ports],
        "selector": {"app": name},
    }
    if family == "dual":
        spec["ipFamilyPolicy"] = "RequireDualStack"
        spec["ipFamilies"] = ["IPv4", "IPv6"]
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(name, namespace="default", annotations=annotations), "spec": spec}
    ]
    families = [("IPv4", 0)] + ([("IPv6", 1)] if family == "dual" else [])
    for addr_type, idx in families:
        endpoints = [
            {"addresses": [ips[idx]], "nodeName": f"n{i}", "conditions": {"ready": True}}
            for i in on_nodes
            for ips in backend_ips(i, counts[i] if counts is not None else 2)
        ]
        objects.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(f"{name}-{addr_type.lower()}", namespace="default",
                              labels={"kubernetes.io/service-name": name}),
            "addressType": addr_type,
            "endpoints": endpoints,
            "ports": [{"name": f"p{p}", "port": 8080, "protocol": proto} for proto, p in ports],
        })
    return objects


def write_objects(opts: LabOptions, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for fname, docs in lab_objects(opts).items():
        (directory / fname).write_text(yaml.safe_dump_all(docs, sort_keys=False))
