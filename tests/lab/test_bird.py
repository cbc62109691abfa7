"""BIRD launcher: FRR ↔ BIRD in namespaces, routes both ways with communities."""

from __future__ import annotations

import shutil

import pytest
from frr_link import frr_facing_node
from hypothesis import given
from hypothesis import strategies as st

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, parse_protocols, parse_routes, start_bird
from vipcast.lab.netns import Topology

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("bird") is None or shutil.which("vtysh") is None,
        reason="BIRD or FRR not installed",
    ),
]

SHOW_ROUTE = """Table master4:
198.51.100.0/24      unicast [n1 14:20:11.661] * (100) [AS65000i]
\tvia 10.0.0.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65000 65010
\tBGP.next_hop: 10.0.0.1
\tBGP.med: 0
\tBGP.local_pref: 100
\tBGP.community: (65000,7) (65000,8)
\tBGP.large_community: (65000, 1, 2)
                     unicast [n2 14:20:12.000] (100) [AS65002i]
\tvia 10.0.0.5 on eth1
\tType: BGP univ
\tBGP.as_path: 65002
\tBGP.next_hop: 10.0.0.5
"""


def test_parse_show_route_all() -> None:
    paths = parse_routes(SHOW_ROUTE)["198.51.100.0/24"]
    assert len(paths) == 2
    first, second = paths
    assert first.best and first.peer == "n1" and first.as_path == (65000, 65010)
    assert first.communities == ("65000:7", "65000:8")
    assert first.large_communities == ("65000:1:2",)
    assert first.local_pref == 100 and first.med == 0 and first.nexthop == "10.0.0.1"
    assert not second.best and second.peer == "n2" and second.nexthop == "10.0.0.5"


def test_parse_protocols() -> None:
    text = (
        "Name       Proto      Table      State  Since         Info\n"
        "device1    Device     ---        up     14:20:09.786\n"
        "n1         BGP        ---        start  14:20:09.786  Active\n"
        "n2         BGP        ---        up     14:20:11.661  Established\n"
        "n3         BGP        ---        down   14:20:11.661\n"
    )
    assert parse_protocols(text) == {"n1": "Active", "n2": "Established", "n3": "down"}


def test_frr_bird_established_routes_both_ways(netlab: Topology) -> None:
    _router, n, frr = frr_facing_node(netlab)
    bird = start_bird(
        n,
        BirdConfig(
            asn=65001,
            router_id="192.0.2.2",
            neighbors=(Neighbor("10.0.0.1", 65000), Neighbor("fd00::1", 65000)),
            networks=("2001:db8:1::/48",),
            extra=(
                "protocol static tagged { ipv4; route 203.0.113.0/24 blackhole {"
                " bgp_community.add((65001,42)); bgp_large_community.add((65001,1,2)); }; }"
            ),
        ),
        netlab.workdir / "bird",
    )
    frr.wait_established()
    bird.wait_established()
    (path,) = frr.wait_paths("203.0.113.0/24")
    assert path.as_path == (65001,) and path.nexthop == "10.0.0.2"
    assert path.communities == ("65001:42",)
    assert path.large_communities == ("65001:1:2",)
    frr.wait_paths("2001:db8:1::/48")
    # BIRD installs what it learned into its namespace's kernel table
    assert n.wait_route("198.51.100.0/24").gateways == ("10.0.0.1",)
    (back,) = bird.route("198.51.100.0/24")
    assert back.as_path == (65000,) and back.peer == "n1"


@given(st.text())
def test_parsers_never_raise_on_arbitrary_text(text: str) -> None:
    parse_routes(text)
    parse_protocols(text)
    parse_routes(SHOW_ROUTE + text)
