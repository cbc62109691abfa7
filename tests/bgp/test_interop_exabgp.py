"""vipcast's speaker against ExaBGP 4.2 in network namespaces (ExaBGP logs what it receives).

"rtr" runs ExaBGP (192.0.2.1); "node" runs the vipcast speaker at 192.0.2.11.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import point_to_point
import pytest
from point_to_point import N4, R4, peer

from vipcast.lab import exabgp as exabgp_lab
from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.exabgp import ExabgpConfig, start_exabgp
from vipcast.lab.netns import Netns, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("exabgp") is None, reason="ExaBGP not installed"),
]



def link(topo: Topology) -> tuple[Netns, Netns]:
    return point_to_point.link(topo, v6=False)


@pytest.mark.parametrize(("local_asn", "peer_asn"), [(4200000001, 65000), (65000, 65000)])
def test_routes_and_attributes_reach_exabgp(
    netlab: Topology, static_speaker: Any, local_asn: int, peer_asn: int
) -> None:
    rtr, node = link(netlab)
    exa = start_exabgp(
        rtr,
        ExabgpConfig(
            asn=peer_asn, router_id=R4, local_address=R4,
            neighbors=(Neighbor(N4, local_asn),), listen_address=R4,
        ),
        netlab.workdir / "exabgp",
    )  # fmt: skip
    speaker = static_speaker(node, netlab.workdir)
    attrs = {"communities": [65000 << 16 | 100], "large_communities": [[64512, 1, 2]]}
    if local_asn == peer_asn:
        attrs["local_pref"] = 250
    speaker.configure(
        [{
            "name": "r", "address": R4, "local_asn": local_asn, "peer_asn": peer_asn,
            "router_id": N4, "hold_time": 30, "connect_retry_time": 2, "idle_hold_time": 0.5,
        }],
        {"r": {"203.0.113.10/32": attrs, "203.0.113.11/32": {}}},
    )  # fmt: skip
    exa.wait_established(N4, timeout=60)
    path = wait_until(lambda: exa.route("203.0.113.10/32"), timeout=30, what="route")[0]
    assert "65000:100" in path.communities, path
    assert "64512:1:2" in path.large_communities, path
    if local_asn == peer_asn:
        assert path.local_pref == 250
        assert path.as_path == ()
    else:
        assert path.as_path == (local_asn,)
    speaker.send({"routes": {"r": {"203.0.113.11/32": {}}}})
    wait_until(lambda: not exa.route("203.0.113.10/32"), timeout=30, what="withdraw")
    assert exa.route("203.0.113.11/32")


R6, N6 = "2001:db8::1", "2001:db8::11"


def link_dual(topo: Topology) -> tuple[Netns, Netns]:
    rtr, node = link(topo)
    rtr.add_address("eth0", f"{R6}/64")
    node.add_address("eth0", f"{N6}/64")
    return rtr, node


def test_v6_session_2byte_ebgp_md5(netlab: Topology, static_speaker: Any) -> None:
    """eBGP with a 2-byte ASN over IPv4 and IPv6, both TCP-MD5 signed: the wrong password
    gets no session, the right one does; routes and communities arrive on both families."""
    rtr, node = link_dual(netlab)
    exa = start_exabgp(
        rtr,
        ExabgpConfig(
            asn=65000, router_id=R4, local_address=R4, listen_address=R4,
            neighbors=(
                Neighbor(N4, 65001, password="s3cret"),
                Neighbor(N6, 65001, password="s3cret", local_address=R6),
            ),
        ),
        netlab.workdir / "exabgp",
    )  # fmt: skip
    # ExaBGP listens on R4 only: the v6 session is ExaBGP's own connection to our listener
    speaker = static_speaker(node, netlab.workdir, listen=[(N6, 179)])
    routes = {
        "v4": {"203.0.113.70/32": {"communities": [65000 << 16 | 100]}},
        "v6": {
            "2001:db8:100::70/128": {
                "communities": [65000 << 16 | 200],
                "large_communities": [[64512, 1, 2]],
            }
        },
    }
    speaker.configure([peer("v4", R4, 65001, 65000, password="wrong")], routes)
    with pytest.raises(TimeoutError):
        exa.wait_established(N4, timeout=4)
    assert speaker.state("v4") != "Established"
    speaker.configure(
        [
            peer("v4", R4, 65001, 65000, password="s3cret"),
            peer("v6", R6, 65001, 65000, password="s3cret", passive=True),
        ],
        routes,
    )
    exa.wait_established(N4, N6, timeout=60)
    path = wait_until(lambda: exa.route("203.0.113.70/32"), timeout=30, what="v4 route")[0]
    assert "65000:100" in path.communities, path
    assert path.as_path == (65001,), path
    path6 = wait_until(lambda: exa.route("2001:db8:100::70/128"), timeout=30, what="v6 route")[0]
    assert "65000:200" in path6.communities, path6
    assert "64512:1:2" in path6.large_communities, path6
    assert path6.as_path == (65001,), path6
    assert path6.nexthop == N6, path6
    speaker.send({"routes": {"v4": routes["v4"], "v6": {}}})
    wait_until(lambda: not exa.route("2001:db8:100::70/128"), timeout=30, what="v6 withdraw")
    assert exa.route("203.0.113.70/32")


def test_route_refresh_and_hold_timer(
    netlab: Topology, static_speaker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ExaBGP sends ROUTE-REFRESH on its API command (it needs ``capability { route-refresh; }``,
    which the lab launcher does not render: added to its output here); freezing ExaBGP makes
    vipcast's hold timer expire."""
    render = exabgp_lab.render_exabgp

    def with_route_refresh(cfg: ExabgpConfig, events: Path, commands: Path) -> str:
        text = render(cfg, events, commands)
        return text.replace("  family {", "  capability { route-refresh; }\n  family {")

    monkeypatch.setattr(exabgp_lab, "render_exabgp", with_route_refresh)
    rtr, node = link(netlab)
    exa = start_exabgp(
        rtr,
        ExabgpConfig(
            asn=65000, router_id=R4, local_address=R4, listen_address=R4,
            neighbors=(Neighbor(N4, 65001, hold_time=9),),
        ),
        netlab.workdir / "exabgp",
    )  # fmt: skip
    speaker = static_speaker(node, netlab.workdir)
    speaker.configure([peer("r", R4, 65001, 65000, hold_time=3)], {"r": {"203.0.113.80/32": {}}})
    exa.wait_established(N4, timeout=60)
    wait_until(lambda: exa.route("203.0.113.80/32"), timeout=30, what="route")

    sent, seen = int(speaker.status()["r"]["updates_sent"]), len(exa.events())
    exa.send(f"neighbor {N4} announce route-refresh ipv4 unicast")
    speaker.wait(lambda s: int(s["r"]["updates_sent"]) > sent, 30, "route refresh answered")
    wait_until(
        lambda: any(
            "203.0.113.80/32" in json.dumps(update)
            for update in exa.events()[seen:]
            if update.get("type") == "update"
        ),
        timeout=30,
        what="the route re-sent to ExaBGP",
    )

    speaker.expect_hold_expiry("r", exa.process)
