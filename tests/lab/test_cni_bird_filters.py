"""The shipped mode-2 snippet's filters, against a speaker that does not behave.

vipcast only ever announces host routes inside its pools; the snippet must not rely on that.
Here GoBGP takes vipcast's place on the node (iBGP to BIRD's ``vipcast4`` protocol on the
node's address, port 1790) and announces a VIP and four things a VIP speaker must never get
through a CNI's BIRD: the whole pool, a host route outside it, another node's pod block and
an unrelated prefix. The router (FRR) must learn the node's pod block and the VIP and nothing
else, and the node's kernel must not get a route for the VIP.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.cni_bird import CniBirdConfig, start_cni_bird
from vipcast.lab.frr import FrrConfig, start_frr
from vipcast.lab.gobgp import GobgpConfig, start_gobgp
from vipcast.lab.netns import Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 is not installed"),
    pytest.mark.skipif(shutil.which("gobgpd") is None, reason="GoBGP is not installed"),
    pytest.mark.skipif(not Path("/usr/lib/frr/bgpd").exists(), reason="FRR is not installed"),
]

ROUTER, NODE = "198.18.0.1", "198.18.0.11"
VIP = "192.0.2.5/32"
REFUSED = ("192.0.2.0/27", "192.0.2.40/32", "10.244.2.0/24", "198.51.100.0/24")


def test_the_snippet_passes_vips_only(netlab: Topology) -> None:
    router, node = netlab.add_netns("router", router=True), netlab.add_netns("n1")
    netlab.veth(router, "eth0", node, "eth0")
    router.add_address("eth0", f"{ROUTER}/24")
    node.add_address("eth0", f"{NODE}/24")
    node.add_address("eth0", "fd00:18::11/64")
    frr = start_frr(router, FrrConfig(asn=64512, router_id=ROUTER,
                                      neighbors=(Neighbor(NODE, 64513, hold_time=9),)),
                    netlab.workdir / "frr")
    bird = start_cni_bird(node, CniBirdConfig(
        asn=64513, router_id=NODE, node_v4=NODE, node_v6="fd00:18::11",
        blocks=("10.244.1.0/24",), pools=("10.244.0.0/16",),
        routers=(Neighbor(ROUTER, 64512, hold_time=9),), coexist="daemon",
        vip_pools=("192.0.2.0/27", "2001:db8:100::/120")), netlab.workdir / "bird")
    gobgp = start_gobgp(node, GobgpConfig(
        asn=64513, router_id="198.19.0.11", listen_port=-1,
        neighbors=(Neighbor(NODE, 64513, port=1790, local_address=NODE),)),
        netlab.workdir / "gobgp")
    frr.wait_established(NODE)
    gobgp.wait_established(NODE)
    # the refused ones first: once the VIP, sent last on the same session, is at the router,
    # BIRD has handled every one before it
    for prefix in (*REFUSED, VIP):
        gobgp.announce(prefix)
    frr.wait_paths(VIP, 1)
    wait_until(lambda: VIP in bird.routes("ipv4"), what="BIRD has the VIP")
    for prefix in REFUSED:
        assert not frr.route(prefix), f"{prefix} reached the router"
    assert frr.received_prefixes(NODE) == ["10.244.1.0/24", VIP]
    assert frr.route(VIP)[0].as_path == (64513,)
    assert node.route(VIP) is None, "BIRD programmed the VIP into the node's kernel"
    # what BIRD's import filter refused is not even in its table
    table = bird.routes("ipv4")
    assert not set(REFUSED) & set(table), sorted(table)
