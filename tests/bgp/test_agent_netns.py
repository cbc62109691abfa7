"""The real ``vipcast agent`` process in network namespaces, against a full table and BIRD.

- A peer that sends a full table (200,000 prefixes: every /32 of 198.18.0.0/15 and IPv6
  /128s from 2001:db8:1::) gets them counted and dropped: the agent's RSS grows by a bounded
  amount (generous bound: the figure itself goes to bench/README.md), its own VIP stays
  announced and its status stays answerable.
- Graceful restart with BIRD as the helper: ``kill -9`` of the agent, BIRD keeps the route in
  its kernel table while the agent is away, the restarted agent takes over (End-of-RIB).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import point_to_point
import pytest
from bgp_objects import service_yaml
from point_to_point import N4, R4, R6

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, start_bird
from vipcast.lab.netns import Netns, Process, Topology, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

NODE_ASN, ROUTER_ASN = 4200000001, 65000
V4_HOSTS = 1 << 17  # all of 198.18.0.0/15
FULL_TABLE = 200_000
#: RSS growth allowed while holding a full-table session (measured: see bench/README.md)
RSS_BOUND_MIB = 60

CONFIG = """\
apiVersion: vipcast.io/v1beta1
kind: BGPPeer
metadata: {{name: rtr}}
spec:
  myASN: {node_asn}
  peerASN: {router_asn}
  peerAddress: {router}
  holdTime: 30s
  connectTime: 2s
  gracefulRestart: {gr}
  restartTime: 60s
---
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {{name: pool}}
spec:
  addresses: [203.0.113.0/28]
---
apiVersion: vipcast.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: adv}}
---
apiVersion: v1
kind: Node
metadata: {{name: n1}}
"""
VIP = "203.0.113.0/32"


def link(topo: Topology) -> tuple[Netns, Netns]:
    return point_to_point.link(topo, "n1")


def start_agent(topo: Topology, node: Netns, config: Path) -> Process:
    argv = [
        sys.executable, "-m", "vipcast.cli.main", "agent",
        "--config", str(config), "--node", "n1",
        "--metrics-address", "127.0.0.1:9473",
        "--state-dir", str(topo.workdir / "state-n1"),
        "--poll-interval", "0.3", "--log-level", "INFO", "--no-dataplane",
    ]  # fmt: skip
    return topo.spawn(node, argv, name="agent-n1")


def agent_peer(node: Netns) -> dict[str, Any]:
    out = node.run(
        [sys.executable, "-m", "vipcast.cli.main", "status", "--json",
         "--address", "127.0.0.1:9473"],
        check=True,
    )  # fmt: skip
    peers: list[dict[str, Any]] = json.loads(out.stdout)["peers"]
    return peers[0]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def write_config(directory: Path, graceful_restart: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = CONFIG.format(
        node_asn=NODE_ASN,
        router_asn=ROUTER_ASN,
        router=R4,
        gr="true" if graceful_restart else "false",
    )
    text += "---\n" + service_yaml("web", [("10.244.1.10", "n1")])
    (directory / "objects.yaml").write_text(text)
    return directory


def test_full_table_is_counted_not_kept(netlab: Topology, static_speaker: Any) -> None:
    rtr, node = link(netlab)
    config = write_config(netlab.workdir / "config", graceful_restart=False)
    table = static_speaker(rtr, netlab.workdir, name="table", listen=[("0.0.0.0", 179)])
    table.configure(
        [
            {
                "name": "n1",
                "address": N4,
                "local_asn": ROUTER_ASN,
                "peer_asn": NODE_ASN,
                "router_id": R4,
                "passive": True,
                "hold_time": 30,
                "next_hop_v6": R6,
            },
        ],
        {},
    )
    agent = start_agent(netlab, node, config)
    table.wait(lambda s: s["n1"]["state"] == "Established", timeout=60, what="session")
    table.wait(lambda s: s["n1"]["prefixes_received"] == 1, timeout=60, what="the agent's VIP")
    wait_until(lambda: agent_peer(node)["state"] == "Established", timeout=30, what="status")
    time.sleep(1)  # let the agent settle after its first plan
    before = rss_mib(agent.pid)

    table.send(
        {
            "generate": [
                {"peer": "n1", "base": "198.18.0.0", "count": V4_HOSTS},
                {"peer": "n1", "base": "2001:db8:1::", "count": FULL_TABLE - V4_HOSTS},
            ]
        }
    )
    table.wait(
        lambda s: s["n1"]["prefixes_advertised"] == FULL_TABLE, timeout=120, what="table sent"
    )
    wait_until(
        lambda: agent_peer(node)["prefixes_received"] == FULL_TABLE,
        timeout=120,
        what="the agent counted the full table",
    )
    after = rss_mib(agent.pid)
    print(f"agent RSS before {before:.1f} MiB, with a {FULL_TABLE}-prefix peer {after:.1f} MiB")
    assert after - before < RSS_BOUND_MIB, (before, after)

    # still serving: the session is up, the VIP still announced; the table is withdrawn
    # (received prefixes are a counter of announcements, so it stays at the full table)
    assert agent_peer(node)["state"] == "Established"
    assert table.status()["n1"]["prefixes_received"] == 1
    table.send({"routes": {}})
    table.wait(lambda s: s["n1"]["prefixes_advertised"] == 0, timeout=60, what="withdrawn")
    time.sleep(1)
    assert agent.alive()
    assert agent_peer(node)["state"] == "Established"
    assert table.status()["n1"]["state"] == "Established"
    table.stop()


@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 not installed")
def test_graceful_restart_with_bird_through_the_agent(netlab: Topology) -> None:
    rtr, node = link(netlab)
    config = write_config(netlab.workdir / "config", graceful_restart=True)
    bird = start_bird(
        rtr,
        BirdConfig(
            asn=ROUTER_ASN,
            router_id=R4,
            neighbors=(Neighbor(N4, NODE_ASN, keepalive=3, hold_time=9),),
        ),
        netlab.workdir / "bird",
    )
    agent = start_agent(netlab, node, config)
    bird.wait_established(N4, timeout=60)
    rtr.wait_route(VIP, gateways=[N4], timeout=60)

    agent.kill()  # kill -9: no NOTIFICATION; BIRD keeps the stale route (RFC 4724 helper)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert rtr.route(VIP) is not None, "route lost while the agent was away"
        time.sleep(0.2)
    start_agent(netlab, node, config)
    bird.wait_established(N4, timeout=60)
    # the route never left the kernel table, and stays after the restarted agent's End-of-RIB
    for _ in range(10):
        assert rtr.route(VIP) is not None, "route lost across the restart"
        time.sleep(0.3)
    wait_until(lambda: agent_peer(node)["state"] == "Established", timeout=30, what="status")
