"""End to end: vipcast nodes announce a VIP over BGP with BFD to FRR; a node is cut behind the
bridge and the router's kernel route loses its nexthop within a second or so (BFD 100 ms x 3),
long before the 9 s hold timer; the node's own BFD tells its speaker to drop the session."""

from __future__ import annotations

import pytest
from bfdecmp import NODES, VipcastNode, bfdd_status, build, nexthops, start_router, trial

from vipcast.lab.netns import Topology, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]


def test_router_drops_cut_node_nexthop(netlab: Topology) -> None:
    r, sw, nodes = build(netlab)
    frr = start_router(netlab, r)
    started: list[VipcastNode] = []
    try:
        for short, ns in nodes.items():
            started.append(VipcastNode.start(ns, NODES[short]))
        wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=60, what="ECMP route")
        wait_until(lambda: all(bfdd_status(frr, a) == "up" for a in NODES.values()),
                   timeout=30, what="BFD up on the router")  # fmt: skip
        n1 = started[0]
        reasons: dict[str, str] = {}
        got = trial(r, sw, frr, "n1", reasons=reasons)  # cut, measure, restore, wait
        # behaviour, not speed (bench/bfd_failover.py has the figures): bfdd declared n1 down
        # and the router dropped its next hop while the link was cut (15 s deadline), and it
        # was BFD that reset the BGP session, not the 9 s hold timer
        assert "route" in got and "bfdd" in got, got
        assert "bfd down" in reasons["bgp"].lower(), (reasons, got)  # Cease/BFD Down sent
        # the node's BFD also saw the router vanish and made its speaker drop the session
        assert n1.drops == ["r"]
        assert started[1].drops == []
        assert n1.ns.call(lambda: n1.bfd.status()["r"].state) == "UP"
    finally:
        for node in started:
            node.stop()
