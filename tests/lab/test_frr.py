"""FRR launcher: two FRRs peer in namespaces, routes cross, zebra installs ECMP in the kernel."""

from __future__ import annotations

import shutil

import pytest

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.frr import FrrConfig, render_bgpd, start_frr
from vipcast.lab.netns import Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("vtysh") is None, reason="FRR not installed"),
]


def test_render_bgpd_has_the_knobs() -> None:
    text = render_bgpd(
        FrrConfig(
            asn=65000,
            router_id="192.0.2.1",
            neighbors=(
                Neighbor("192.0.2.11", 65001, password="s3cret", ttl_security_hops=1, bfd=True,
                         bfd_profile="fast", passive=True, keepalive=3, hold_time=9, port=1179),
                Neighbor("2001:db8::11", 65001, ebgp_multihop=2),
            ),
            networks=("198.51.100.0/24",),
        )
    )  # fmt: skip
    for line in (
        "neighbor 192.0.2.11 password s3cret",
        "neighbor 192.0.2.11 ttl-security hops 1",
        "neighbor 192.0.2.11 bfd profile fast",
        "neighbor 192.0.2.11 passive",
        "neighbor 192.0.2.11 timers 3 9",
        "neighbor 192.0.2.11 port 1179",
        "neighbor 2001:db8::11 ebgp-multihop 2",
        "bgp bestpath as-path multipath-relax",
        "no bgp ebgp-requires-policy",
        "network 198.51.100.0/24",
    ):
        assert line in text
    v6 = text.split("address-family ipv6 unicast")[1]
    assert "neighbor 2001:db8::11 activate" in v6 and "192.0.2.11 activate" not in v6


def test_frr_pair_established_route_crosses_ecmp_in_kernel(netlab: Topology) -> None:
    lan = netlab.add_netns("lan")
    lan.add_bridge("br0")
    router = netlab.add_netns("router", router=True)
    nodes = [netlab.add_netns(f"n{i}") for i in (1, 2)]
    netlab.attach_to_bridge(lan, "br0", "p-r", router, "eth0")
    router.add_address("eth0", "192.0.2.1/24")
    router.add_address("eth0", "2001:db8::1/64")
    for i, n in enumerate(nodes, start=1):
        netlab.attach_to_bridge(lan, "br0", f"p-n{i}", n, "eth0")
        n.add_address("eth0", f"192.0.2.1{i}/24")
        n.add_address("eth0", f"2001:db8::1{i}/64")

    rtr = start_frr(
        router,
        FrrConfig(
            asn=65000,
            router_id="192.0.2.1",
            neighbors=tuple(
                Neighbor(a, 65001) for i in (1, 2) for a in (f"192.0.2.1{i}", f"2001:db8::1{i}")
            ),
        ),
        netlab.workdir / "router",
    )
    speakers = [
        start_frr(
            n,
            FrrConfig(
                asn=65001,
                router_id=f"192.0.2.1{i}",
                neighbors=(Neighbor("192.0.2.1", 65000), Neighbor("2001:db8::1", 65000)),
                networks=("203.0.113.10/32", "2001:db8:f::10/128"),
                # without GR the router drops a stopped speaker's routes at once
                graceful_restart=False,
            ),
            netlab.workdir / n.short,
        )
        for i, n in enumerate(nodes, start=1)
    ]
    rtr.wait_established(timeout=60)
    assert rtr.neighbor_states()["192.0.2.11"] == "Established"

    paths = rtr.wait_paths("203.0.113.10/32", 2)
    assert {p.nexthop for p in paths} == {"192.0.2.11", "192.0.2.12"}
    assert all(p.as_path == (65001,) for p in paths)

    # best path and multipath marks follow the paths' arrival (FRR runs bestpath later)
    def marked() -> bool:
        paths = rtr.route("203.0.113.10/32")
        return any(p.best for p in paths) and any(p.multipath for p in paths)

    wait_until(marked, timeout=30, what="best + multipath marked")

    route = router.wait_route("203.0.113.10/32", count=2)
    assert route.gateways == ("192.0.2.11", "192.0.2.12")
    assert route.protocol == "bgp"
    v6 = router.wait_route("2001:db8:f::10/128", count=2)
    assert len(v6.nexthops) == 2

    # one speaker stops: the router drops to one path
    speakers[0].stop()
    router.wait_route("203.0.113.10/32", gateways=["192.0.2.12"])
