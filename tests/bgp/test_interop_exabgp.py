"""vipcast's speaker against ExaBGP 4.2 in network namespaces (ExaBGP logs what it receives).

"rtr" runs ExaBGP (192.0.2.1); "node" runs the vipcast speaker at 192.0.2.11.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.exabgp import ExabgpConfig, start_exabgp
from vipcast.lab.netns import Netns, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("exabgp") is None, reason="ExaBGP not installed"),
]

R4, N4 = "192.0.2.1", "192.0.2.11"


def link(topo: Topology) -> tuple[Netns, Netns]:
    rtr = topo.add_netns("rtr", router=True)
    node = topo.add_netns("node")
    topo.veth(rtr, "eth0", node, "eth0")
    rtr.add_address("eth0", f"{R4}/24")
    node.add_address("eth0", f"{N4}/24")
    return rtr, node


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
