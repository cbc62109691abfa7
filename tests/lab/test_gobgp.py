"""GoBGP launcher: FRR ↔ GoBGP in namespaces, routes with communities both ways."""

from __future__ import annotations

import shutil

import pytest
from frr_link import frr_facing_node

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.gobgp import GobgpConfig, render_gobgp, start_gobgp
from vipcast.lab.netns import Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("gobgpd") is None or shutil.which("vtysh") is None,
        reason="GoBGP or FRR not installed",
    ),
]


def test_render_gobgp_toml() -> None:
    text = render_gobgp(
        GobgpConfig(
            asn=65001,
            router_id="192.0.2.2",
            neighbors=(Neighbor("10.0.0.1", 65000, password="pw", passive=True,
                                ttl_security_hops=1, hold_time=9, keepalive=3),),
        )
    )  # fmt: skip
    assert 'neighbor-address = "10.0.0.1"' in text
    assert 'auth-password = "pw"' in text
    assert "passive-mode = true" in text
    assert "ttl-min = 255" in text
    assert "hold-time = 9" in text
    assert 'afi-safi-name = "ipv4-unicast"' in text


def test_frr_gobgp_established_routes_both_ways(netlab: Topology) -> None:
    r, n, frr = frr_facing_node(netlab)
    gobgp = start_gobgp(
        n,
        GobgpConfig(
            asn=65001,
            router_id="192.0.2.2",
            neighbors=(Neighbor("10.0.0.1", 65000), Neighbor("fd00::1", 65000)),
            networks=("2001:db8:1::/48",),
        ),
        netlab.workdir / "gobgp",
    )
    gobgp.announce("203.0.113.7/32", communities=("65001:42",), large_communities=("65001:1:2",))
    frr.wait_established()
    gobgp.wait_established()
    (path,) = frr.wait_paths("203.0.113.7/32")
    assert path.communities == ("65001:42",) and path.large_communities == ("65001:1:2",)
    assert path.nexthop == "10.0.0.2" and path.as_path == (65001,)
    frr.wait_paths("2001:db8:1::/48")
    (back,) = wait_until(lambda: gobgp.route("198.51.100.0/24"), timeout=30, what="route at gobgp")
    assert back.as_path == (65000,) and back.peer == "10.0.0.1"
    # zebra installed the GoBGP route into the router's kernel
    assert r.wait_route("203.0.113.7/32").gateways == ("10.0.0.2",)
    gobgp.withdraw("203.0.113.7/32")
    frr.wait_paths("203.0.113.7/32", 0)
