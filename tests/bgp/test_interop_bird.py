"""vipcast's speaker against BIRD 2 in network namespaces.

"rtr" runs BIRD (192.0.2.1, 2001:db8::1, kernel export on); "node" runs the vipcast speaker
(``python -m vipcast.app.bgp_static``) at 192.0.2.11 / 2001:db8::11.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from point_to_point import N4, N6, R4, R6, link, peer

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, BirdInstance, start_bird
from vipcast.lab.netns import LabError, Netns, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 not installed"),
]





def bird(topo: Topology, rtr: Netns, asn: int, *neighbors: Neighbor) -> BirdInstance:
    return start_bird(
        rtr, BirdConfig(asn=asn, router_id=R4, neighbors=neighbors), topo.workdir / "bird"
    )


def gone(b: BirdInstance, prefix: str) -> bool:
    try:
        return not b.route(prefix)
    except LabError:  # birdc: "Network not found"
        return True


def test_ebgp_v4_and_v6_4byte_asn_communities(netlab: Topology, static_speaker: Any) -> None:
    rtr, node = link(netlab)
    b = bird(
        netlab, rtr, 65000,
        Neighbor(N4, 4200000001, hold_time=9), Neighbor(N6, 4200000001, hold_time=9),
    )  # fmt: skip
    speaker = static_speaker(node, netlab.workdir)
    routes = {
        "v4": {
            "203.0.113.10/32": {
                "communities": [65000 << 16 | 100],
                "large_communities": [[64512, 1, 2]],
            }
        },
        "v6": {"2001:db8:100::10/128": {"communities": [65000 << 16 | 200]}},
    }
    speaker.configure(
        [peer("v4", R4, 4200000001, 65000), peer("v6", R6, 4200000001, 65000)], routes
    )
    b.wait_established(N4, N6, timeout=60)
    path = wait_until(lambda: b.route("203.0.113.10/32"), timeout=30, what="v4 route")[0]
    assert "65000:100" in path.communities
    assert "64512:1:2" in path.large_communities
    assert path.as_path == (4200000001,)
    path6 = wait_until(lambda: b.route("2001:db8:100::10/128"), timeout=30, what="v6 route")[0]
    assert "65000:200" in path6.communities
    rtr.wait_route("203.0.113.10/32", gateways=[N4], timeout=30)
    # withdraw
    speaker.send({"routes": {"v4": {}, "v6": {}}})
    wait_until(lambda: gone(b, "203.0.113.10/32"), timeout=30, what="v4 withdraw")
    wait_until(lambda: gone(b, "2001:db8:100::10/128"), timeout=30, what="v6 withdraw")


def test_ibgp_local_pref_and_2byte_asn(netlab: Topology, static_speaker: Any) -> None:
    rtr, node = link(netlab)
    b = bird(netlab, rtr, 65000, Neighbor(N4, 65000, hold_time=9))
    speaker = static_speaker(node, netlab.workdir)
    speaker.configure(
        [peer("r", R4, 65000, 65000)],
        {"r": {"203.0.113.20/32": {"local_pref": 250}}},
    )
    b.wait_established(N4, timeout=60)
    path = wait_until(lambda: b.route("203.0.113.20/32"), timeout=30, what="route")[0]
    assert path.local_pref == 250
    assert path.as_path == ()


def test_hold_timer_expiry_and_route_refresh(netlab: Topology, static_speaker: Any) -> None:
    rtr, node = link(netlab)
    b = bird(netlab, rtr, 65000, Neighbor(N4, 65001, hold_time=9))
    speaker = static_speaker(node, netlab.workdir)
    speaker.configure([peer("r", R4, 65001, 65000, hold_time=3)], {"r": {"203.0.113.30/32": {}}})
    b.wait_established(N4, timeout=60)
    wait_until(lambda: b.route("203.0.113.30/32"), timeout=30, what="route")
    # route refresh: BIRD asks again, vipcast re-sends its Adj-RIB-Out
    sent = int(speaker.status()["r"]["updates_sent"])
    b.birdc("reload", "in", "n1")
    speaker.wait(lambda s: int(s["r"]["updates_sent"]) > sent, 30, "route refresh answered")
    # freeze BIRD: vipcast's hold timer (3 s) expires and it sends NOTIFICATION 4
    speaker.expect_hold_expiry("r", b.process)


def test_graceful_restart_keeps_route(netlab: Topology, static_speaker: Any) -> None:
    rtr, node = link(netlab)
    b = bird(netlab, rtr, 65000, Neighbor(N4, 65001, hold_time=9))
    routes: dict[str, dict[str, dict[str, object]]] = {"r": {"203.0.113.40/32": {}}}
    first = static_speaker(node, netlab.workdir, name="first")
    first.configure([peer("r", R4, 65001, 65000, graceful_restart=True, restart_time=60)], routes)
    b.wait_established(N4, timeout=60)
    rtr.wait_route("203.0.113.40/32", gateways=[N4], timeout=30)
    first.kill()  # kill -9
    for _ in range(5):
        assert rtr.route("203.0.113.40/32") is not None, "route lost during restart"
        wait_until(lambda: True, timeout=0.3)
    second = static_speaker(node, netlab.workdir, name="second")
    second.configure(
        [peer("r", R4, 65001, 65000, graceful_restart=True, restart_time=60, restarting=True)],
        routes,
    )
    b.wait_established(N4, timeout=60)
    assert rtr.route("203.0.113.40/32") is not None
    wait_until(lambda: b.route("203.0.113.40/32"), timeout=30, what="route after restart")


def test_md5_right_password_accepted_wrong_refused(netlab: Topology, static_speaker: Any) -> None:
    rtr, node = link(netlab)
    b = bird(netlab, rtr, 65000, Neighbor(N4, 65001, password="s3cret", hold_time=9))
    speaker = static_speaker(node, netlab.workdir)
    routes: dict[str, dict[str, dict[str, object]]] = {"r": {"203.0.113.50/32": {}}}
    speaker.configure([peer("r", R4, 65001, 65000, password="wrong")], routes)
    # segments signed with the wrong key are dropped by the kernel: no session comes up
    with pytest.raises(TimeoutError):
        b.wait_established(N4, timeout=4)
    assert speaker.state("r") != "Established"
    speaker.configure([peer("r", R4, 65001, 65000, password="s3cret")], routes)
    b.wait_established(N4, timeout=60)
    wait_until(lambda: b.route("203.0.113.50/32"), timeout=30, what="route over MD5 session")
