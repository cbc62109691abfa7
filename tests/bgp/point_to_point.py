"""A router namespace and a node namespace joined by one veth: the interop tests' wiring."""

from __future__ import annotations

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
