"""ExaBGP launcher: FRR ↔ ExaBGP; ExaBGP logs what it receives and announces on command."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.exabgp import ExabgpConfig, replay, start_exabgp
from vipcast.lab.frr import FrrConfig, start_frr
from vipcast.lab.netns import Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("exabgp") is None or shutil.which("vtysh") is None,
        reason="ExaBGP or FRR not installed",
    ),
]


def _update(peer: str, announce: dict[str, Any] | None, withdraw: dict[str, Any] | None) -> Any:
    update: dict[str, Any] = {"attribute": {"as-path": [65000], "community": [[65000, 7]]}}
    if announce:
        update["announce"] = announce
    if withdraw:
        update["withdraw"] = withdraw
    return {
        "type": "update",
        "neighbor": {"address": {"peer": peer}, "message": {"update": update}},
    }


def test_replay_applies_announce_withdraw_and_session_down() -> None:
    a = {"ipv4 unicast": {"10.0.0.1": [{"nlri": "192.0.2.10/32"}, {"nlri": "192.0.2.11/32"}]}}
    events = [
        _update("10.0.0.1", a, None),
        _update("10.0.0.1", None, {"ipv4 unicast": [{"nlri": "192.0.2.10/32"}]}),
    ]
    rib = replay(events)
    assert list(rib) == ["192.0.2.11/32"]
    (path,) = rib["192.0.2.11/32"].values()
    assert path.communities == ("65000:7",) and path.as_path == (65000,)
    down = {"type": "state", "neighbor": {"address": {"peer": "10.0.0.1"}, "state": "down"}}
    assert replay([*events, down]) == {}


def test_frr_exabgp_established_routes_logged(netlab: Topology) -> None:
    r = netlab.add_netns("router", router=True)
    n = netlab.add_netns("peer")
    netlab.veth(r, "eth0", n, "eth0")
    r.add_address("eth0", "10.0.0.1/30")
    n.add_address("eth0", "10.0.0.2/30")
    frr = start_frr(
        r,
        FrrConfig(
            asn=65000,
            router_id="192.0.2.1",
            neighbors=(Neighbor("10.0.0.2", 65001),),
            networks=("198.51.100.0/24",),
            extra="route-map TAG permit 10\n set large-community 65000:1:2\n",
            extra_bgp=("address-family ipv4 unicast", " neighbor 10.0.0.2 route-map TAG out"),
        ),
        netlab.workdir / "frr",
    )
    exa = start_exabgp(
        n,
        ExabgpConfig(
            asn=65001,
            router_id="192.0.2.2",
            local_address="10.0.0.2",
            neighbors=(Neighbor("10.0.0.1", 65000),),
            networks=("203.0.113.0/24",),
        ),
        netlab.workdir / "exabgp",
    )
    frr.wait_established()
    exa.wait_established()
    frr.wait_paths("203.0.113.0/24")
    (got,) = wait_until(lambda: exa.route("198.51.100.0/24"), timeout=30, what="update at exabgp")
    assert got.as_path == (65000,) and got.nexthop == "10.0.0.1"
    assert got.large_communities == ("65000:1:2",)
    assert exa.updates(), "raw updates are kept too"

    exa.send("announce route 203.0.113.9/32 next-hop self community [65001:9]")
    (path,) = frr.wait_paths("203.0.113.9/32")
    assert path.communities == ("65001:9",)
    exa.send("withdraw route 203.0.113.9/32 next-hop self")
    frr.wait_paths("203.0.113.9/32", 0)
