"""The set-up the daemon launcher tests share: FRR in a router namespace and a node namespace on
one dual-stack link, FRR peering with both of the node's addresses."""

from __future__ import annotations

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.frr import FrrConfig, FrrInstance, start_frr
from vipcast.lab.netns import Netns, Topology


def frr_facing_node(netlab: Topology) -> tuple[Netns, Netns, FrrInstance]:
    """(router, node, FRR): the router has 10.0.0.1/30 and fd00::1/64, the node 10.0.0.2/30
    and fd00::2/64 on ``eth0``; FRR (AS 65000, router id 192.0.2.1) announces 198.51.100.0/24
    to AS 65001 at both node addresses."""
    r = netlab.add_netns("router", router=True)
    n = netlab.add_netns("node")
    netlab.veth(r, "eth0", n, "eth0")
    r.add_address("eth0", "10.0.0.1/30")
    n.add_address("eth0", "10.0.0.2/30")
    r.add_address("eth0", "fd00::1/64")
    n.add_address("eth0", "fd00::2/64")
    frr = start_frr(
        r,
        FrrConfig(
            asn=65000,
            router_id="192.0.2.1",
            neighbors=(Neighbor("10.0.0.2", 65001), Neighbor("fd00::2", 65001)),
            networks=("198.51.100.0/24",),
        ),
        netlab.workdir / "frr",
    )
    return r, n, frr
