"""Session options the other areas rely on, verified FRR ↔ BIRD: MD5 + GTSM, and BFD."""

from __future__ import annotations

import shutil
import time

import pytest

from vipcast.lab.daemons import BfdProfile, BirdConfig, FrrConfig, Neighbor, start_bird, start_frr
from vipcast.lab.netns import Netns, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("bird") is None or shutil.which("vtysh") is None,
        reason="BIRD or FRR not installed",
    ),
]


def _pair(netlab: Topology) -> tuple[Netns, Netns, Netns]:
    """router and node on a bridge in "lan" (so cutting the node's port keeps router carrier)."""
    lan = netlab.add_netns("lan")
    lan.add_bridge("br0")
    r = netlab.add_netns("router", router=True)
    n = netlab.add_netns("node")
    netlab.attach_to_bridge(lan, "br0", "p-r", r, "eth0")
    netlab.attach_to_bridge(lan, "br0", "p-n", n, "eth0")
    r.add_address("eth0", "192.0.2.1/24")
    n.add_address("eth0", "192.0.2.11/24")
    return lan, r, n


def test_md5_and_gtsm_established_and_wrong_password_is_not(netlab: Topology) -> None:
    _, r, n = _pair(netlab)
    frr = start_frr(
        r,
        FrrConfig(
            asn=65000,
            router_id="192.0.2.1",
            neighbors=(Neighbor("192.0.2.11", 65001, password="s3cret", ttl_security_hops=1),),
        ),
        netlab.workdir / "frr",
    )
    bird = start_bird(
        n,
        BirdConfig(
            asn=65001,
            router_id="192.0.2.11",
            neighbors=(Neighbor("192.0.2.1", 65000, password="s3cret", ttl_security_hops=1),),
            networks=("203.0.113.0/24",),
        ),
        netlab.workdir / "bird",
    )
    frr.wait_established()
    frr.wait_paths("203.0.113.0/24")
    # MD5 really is on: BIRD restarted with another password never gets Established
    bird.stop()
    wait_until(
        lambda: frr.neighbor_state("192.0.2.11") != "Established", timeout=30, what="session down"
    )
    bad = start_bird(
        n,
        BirdConfig(
            asn=65001,
            router_id="192.0.2.11",
            neighbors=(Neighbor("192.0.2.1", 65000, password="wrong", ttl_security_hops=1),),
        ),
        netlab.workdir / "bird-bad",
    )
    time.sleep(4)
    assert frr.neighbor_state("192.0.2.11") != "Established"
    assert not bad.established()


def test_bfd_takes_session_down_on_cable_cut(netlab: Topology) -> None:
    lan, r, n = _pair(netlab)
    frr = start_frr(
        r,
        FrrConfig(
            asn=65000,
            router_id="192.0.2.1",
            # long hold time: only BFD can take the session down quickly
            neighbors=(
                Neighbor("192.0.2.11", 65001, bfd=True, bfd_profile="fast",
                         keepalive=30, hold_time=90),
            ),
            bfd_profiles=(BfdProfile("fast", detect_multiplier=3, receive_interval=100,
                                     transmit_interval=100),),
        ),
        netlab.workdir / "frr",
    )  # fmt: skip
    start_bird(
        n,
        BirdConfig(
            asn=65001,
            router_id="192.0.2.11",
            neighbors=(Neighbor("192.0.2.1", 65000, bfd=True, keepalive=30, hold_time=90),),
            bfd_interval_ms=100,
        ),
        netlab.workdir / "bird",
    )
    frr.wait_established()
    wait_until(
        lambda: [p for p in frr.bfd_peers() if p.get("status") == "up"],
        timeout=30,
        what="BFD up at FRR",
    )
    lan.set_link("p-n", False)
    # detection is ~300 ms; the deadline is generous for a loaded machine, far below hold 90 s
    wait_until(
        lambda: frr.neighbor_state("192.0.2.11") != "Established",
        timeout=20,
        interval=0.05,
        what="BGP down through BFD",
    )
