"""A router namespace and a node namespace joined by one veth: the interop tests' wiring."""

from __future__ import annotations

from typing import Any

from vipcast.lab.netns import Netns, Topology

R4, R6, N4, N6 = "192.0.2.1", "2001:db8::1", "192.0.2.11", "2001:db8::11"


def link(topo: Topology, node_name: str = "node", *, v6: bool = True) -> tuple[Netns, Netns]:
    """``rtr`` (R4/R6) and ``node_name`` (N4/N6) on ``eth0``; IPv6 addresses when ``v6``."""
    rtr = topo.add_netns("rtr", router=True)
    node = topo.add_netns(node_name)
    topo.veth(rtr, "eth0", node, "eth0")
    for ns, v4, v6_addr in ((rtr, R4, R6), (node, N4, N6)):
        ns.add_address("eth0", f"{v4}/24")
        if v6:
            ns.add_address("eth0", f"{v6_addr}/64")
    return rtr, node


def peer(name: str, address: str, local_asn: int, peer_asn: int, **extra: Any) -> dict[str, Any]:
    """A peer of the node's static speaker (router id N4; 9 s hold, fast retries)."""
    return {
        "name": name, "address": address, "local_asn": local_asn, "peer_asn": peer_asn,
        "router_id": N4, "hold_time": 9, "connect_retry_time": 2, "idle_hold_time": 0.5, **extra,
    }  # fmt: skip
