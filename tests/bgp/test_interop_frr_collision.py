"""Connection collision (RFC 4271 §6.8) against a real FRR 8.4, both sides active.

vipcast listens on port 179 *and* connects; FRR connects to it every second. To make the
race certain rather than lucky, an nftables rule in the router's namespace drops every BGP
segment that carries data (bigger than a SYN) while both TCP connections come up: the OPENs
wait in TCP's retransmission queues. Once ``ss`` shows the two connections established, the
rule goes, the retransmitted OPENs arrive, and each side holds one inbound and one outbound
connection in OpenSent/OpenConfirm: both must close the same one. Then: one Established
session, the route in FRR's kernel table, no flapping. Both directions of the rule are
covered: vipcast's BGP identifier above FRR's (vipcast keeps its outbound connection) and
below it (vipcast keeps FRR's).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import point_to_point
import pytest
from point_to_point import N4, R4

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.frr import FrrConfig, start_frr
from vipcast.lab.netns import Netns, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("/usr/lib/frr/bgpd") is None, reason="FRR not installed"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nftables not installed"),
    pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed"),
]

NODE_ASN, ROUTER_ASN = 65001, 65000
VIP = "203.0.113.60/32"
#: in the router's namespace only: hold every BGP segment with data (a SYN is 60 bytes)
HOLD_OPENS = """
table inet vc_hold {
  chain in { type filter hook input priority 0; tcp dport 179 ip length > 64 drop;
             tcp sport 179 ip length > 64 drop; }
  chain out { type filter hook output priority 0; tcp dport 179 ip length > 64 drop;
              tcp sport 179 ip length > 64 drop; }
}
"""


def bgp_connections(node: Netns) -> list[str]:
    """The node's established TCP connections with the router on port 179 (either side)."""
    out = node.run(["ss", "-Htn", "state", "established"]).stdout
    return [line for line in out.splitlines() if f"{R4}:179" in line or f"{N4}:179" in line]


def link(topo: Topology) -> tuple[Netns, Netns]:
    return point_to_point.link(topo, v6=False)


@pytest.mark.parametrize(
    ("router_id", "keeps"),
    [("192.0.2.11", "outbound"), ("192.0.2.0", "inbound")],
    ids=["vipcast-id-higher", "vipcast-id-lower"],
)
def test_collision_with_frr_both_active(
    netlab: Topology, static_speaker: Any, router_id: str, keeps: str
) -> None:
    rtr, node = link(netlab)
    frr = start_frr(
        rtr,
        FrrConfig(
            asn=ROUTER_ASN,
            router_id=R4,
            neighbors=(Neighbor(N4, NODE_ASN, connect_retry=1, keepalive=3, hold_time=9),),
            graceful_restart=False,
        ),
        netlab.workdir / "frr",
    )
    rtr.run(["nft", "-f", "-"], input_text=HOLD_OPENS)
    speaker = static_speaker(node, netlab.workdir, listen=[("0.0.0.0", 179)])
    speaker.configure(
        [
            {
                "name": "r",
                "address": R4,
                "local_asn": NODE_ASN,
                "peer_asn": ROUTER_ASN,
                "router_id": router_id,
                "hold_time": 9,
                "connect_retry_time": 1,
                "idle_hold_time": 0.2,
            },
        ],
        {"r": {VIP: {}}},
    )
    # vipcast's connection to FRR and FRR's to vipcast, both up, their OPENs held back
    wait_until(lambda: len(bgp_connections(node)) >= 2, timeout=30, what="two connections")
    rtr.run(["nft", "delete", "table", "inet", "vc_hold"])

    frr.wait_established(N4, timeout=60)
    rtr.wait_route(VIP, gateways=[N4], timeout=30)
    speaker.wait(lambda s: s["r"]["state"] == "Established", timeout=30, what="Established")
    # whichever side saw both OPENs first resolved it: vipcast closed the loser itself, or
    # FRR did and vipcast got Cease/Connection Collision Resolution (6/7) on that connection
    # (waited for, bounded: the loser's Cease travels on the other TCP connection, which
    # vipcast may read after the survivor's KEEPALIVE that made the session Established)
    closing = "inbound" if keeps == "outbound" else "outbound"

    def resolved() -> bool:
        log = speaker.log_path.read_text()
        resolved_here = f"connection collision, closing the {closing} one" in log
        resolved_there = "Notification(code=6, subcode=7" in log
        return resolved_here or resolved_there

    wait_until(resolved, timeout=30, what="the collision resolved (here or by FRR)",
               on_timeout=lambda: speaker.log_path.read_text()[-3000:])  # fmt: skip
    # the survivor is the connection the higher BGP identifier opened (RFC 4271 §6.8)
    survivor = f"{N4}:179 " if keeps == "inbound" else f"{R4}:179"
    wait_until(lambda: len(bgp_connections(node)) == 1, timeout=30, what="one connection")
    assert survivor in bgp_connections(node)[0], bgp_connections(node)

    # one session left, both ends agree, nothing flaps over a few keepalive periods (3 s)
    before = speaker.status()["r"]["established_transitions"]
    time.sleep(4)
    after = speaker.status()["r"]
    assert after["state"] == "Established"
    assert after["established_transitions"] == before
    assert len(bgp_connections(node)) == 1, bgp_connections(node)
    assert survivor in bgp_connections(node)[0], bgp_connections(node)
    assert frr.neighbor_state(N4) == "Established"
    assert rtr.route(VIP) is not None
    speaker.stop()
