"""vipcast agents against FRR 8.4 in network namespaces.

Topology: a "lan" namespace with a bridge; the FRR router (192.0.2.1, 2001:db8::1) and three
nodes (192.0.2.11-13, 2001:db8::11-13), each running ``vipcast agent`` on the same object files.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bgp_objects import service_yaml

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.frr import FrrConfig, FrrInstance, start_frr
from vipcast.lab.netns import Netns, Process, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("/usr/lib/frr/bgpd") is None, reason="FRR not installed"),
]

ROUTER_V4, ROUTER_V6 = "192.0.2.1", "2001:db8::1"
NODES = {"n1": ("192.0.2.11", "2001:db8::11"), "n2": ("192.0.2.12", "2001:db8::12"),
         "n3": ("192.0.2.13", "2001:db8::13")}  # fmt: skip
NODE_ASN, ROUTER_ASN = 4200000001, 65000

BASE = """\
apiVersion: vipcast.io/v1beta1
kind: BGPPeer
metadata: {{name: rtr}}
spec:
  myASN: {node_asn}
  peerASN: {router_asn}
  peerAddress: {router}
  holdTime: 30s
  connectTime: 2s
  gracefulRestart: true
  restartTime: 60s
{password}---
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {{name: pool}}
spec:
  addresses: [203.0.113.0/28]
---
apiVersion: vipcast.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: adv}}
spec:
  communities: ["65000:100", "large:64512:1:2"]
"""
NODE = "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"
def write_config(
    directory: Path, services: list[str], nodes: list[str], password: str | None = None
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = BASE.format(
        node_asn=NODE_ASN,
        router_asn=ROUTER_ASN,
        router=ROUTER_V4,
        password=f"  password: {password}\n" if password else "",
    )
    text += "".join(NODE.format(name=n) for n in nodes)
    endpoints = [(f"10.244.{i}.10", n) for i, n in enumerate(nodes, 1)]
    text += "".join("---\n" + service_yaml(s, endpoints) for s in services)
    tmp = directory / "objects.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(directory / "objects.yaml")


@dataclass
class Lab:
    topo: Topology
    router: Netns
    frr: FrrInstance
    nodes: dict[str, Netns]
    config: Path
    agents: dict[str, Process]

    def start_agent(self, name: str) -> Process:
        ns = self.nodes[name]
        argv = [
            sys.executable, "-m", "vipcast.cli.main", "agent",
            "--config", str(self.config), "--node", name,
            "--metrics-address", "127.0.0.1:9473",
            "--state-dir", str(self.topo.workdir / f"state-{name}"),
            "--poll-interval", "0.3", "--log-level", "INFO", "--no-dataplane",
        ]  # fmt: skip
        proc = self.topo.spawn(ns, argv, name=f"agent-{name}")
        self.agents[name] = proc
        return proc

    def status(self, name: str) -> dict[str, object]:
        ns = self.nodes[name]
        out = ns.run(
            [sys.executable, "-m", "vipcast.cli.main", "status", "--json",
             "--address", "127.0.0.1:9473"],
            check=True,
        )  # fmt: skip
        document: dict[str, object] = json.loads(out.stdout)
        return document


def build(topo: Topology, node_names: list[str], password: str | None = None) -> Lab:
    lan = topo.add_netns("lan")
    lan.add_bridge("br0")
    router = topo.add_netns("rtr", router=True)
    topo.attach_to_bridge(lan, "br0", "p-rtr", router, "eth0")
    router.add_address("eth0", f"{ROUTER_V4}/24")
    router.add_address("eth0", f"{ROUTER_V6}/64")
    nodes = {}
    for name in node_names:
        ns = topo.add_netns(name)
        topo.attach_to_bridge(lan, "br0", f"p-{name}", ns, "eth0")
        v4, v6 = NODES[name]
        ns.add_address("eth0", f"{v4}/24")
        ns.add_address("eth0", f"{v6}/64")
        nodes[name] = ns
    neighbors = tuple(
        Neighbor(NODES[n][0], NODE_ASN, password=password, keepalive=3, hold_time=9)
        for n in node_names
    )
    frr = start_frr(
        router,
        FrrConfig(asn=ROUTER_ASN, router_id=ROUTER_V4, neighbors=neighbors, stalepath_time=60),
        topo.workdir / "frr",
    )
    return Lab(topo, router, frr, nodes, topo.workdir / "config", {})


@pytest.fixture
def lab3(netlab: Topology) -> Iterator[Lab]:
    lab = build(netlab, ["n1", "n2", "n3"])
    yield lab


def test_three_agents_ecmp_communities_withdraw(lab3: Lab) -> None:
    lab = lab3
    write_config(lab.config, ["web", "api"], ["n1", "n2", "n3"])
    for name in lab.nodes:
        lab.start_agent(name)
    lab.frr.wait_established(*(NODES[n][0] for n in lab.nodes), timeout=60)

    # every node announces both VIPs: FRR installs a 3-nexthop kernel route (ECMP)
    node_ips = sorted(NODES[n][0] for n in lab.nodes)
    routes = {}
    for prefix in ("203.0.113.0/32", "203.0.113.1/32"):
        routes[prefix] = lab.router.wait_route(prefix, gateways=node_ips, timeout=60)
    assert all(len(r.nexthops) == 3 for r in routes.values())

    # attributes as configured: communities and large communities; AS path is the node's ASN
    paths = lab.frr.wait_paths("203.0.113.0/32", 3)
    for path in paths:
        assert "65000:100" in path.communities, path
        assert "64512:1:2" in path.large_communities, path
        assert path.as_path == (NODE_ASN,), path

    # status from the agent's own endpoint, through the CLI
    status = lab.status("n1")
    peers = status["peers"]
    assert isinstance(peers, list) and peers[0]["state"] == "Established"
    assert peers[0]["prefixes_advertised"] == 2

    # the service goes away: every agent withdraws it, the kernel route leaves
    write_config(lab.config, ["web"], ["n1", "n2", "n3"])
    lab.frr.wait_paths("203.0.113.1/32", 0, timeout=30)
    wait_until(lambda: lab.router.route("203.0.113.1/32") is None, timeout=30, what="withdraw")
    assert lab.router.route("203.0.113.0/32") is not None

    # a clean stop sends Cease: FRR drops that node's path at once
    lab.agents["n3"].stop()
    lab.router.wait_route("203.0.113.0/32", gateways=node_ips[:2], timeout=30)


def test_graceful_restart_keeps_forwarding(netlab: Topology) -> None:
    lab = build(netlab, ["n1"])
    write_config(lab.config, ["web"], ["n1"])
    agent = lab.start_agent("n1")
    lab.frr.wait_established(NODES["n1"][0], timeout=60)
    lab.router.wait_route("203.0.113.0/32", gateways=[NODES["n1"][0]], timeout=60)

    agent.kill()  # kill -9: no NOTIFICATION, the TCP connection just closes
    # the router keeps the (stale) route in its kernel table while the agent is away
    for _ in range(10):
        assert lab.router.route("203.0.113.0/32") is not None
        wait_until(lambda: True, timeout=0.3)
    lab.start_agent("n1")
    lab.frr.wait_established(NODES["n1"][0], timeout=60)
    assert lab.router.route("203.0.113.0/32") is not None
    path = lab.frr.wait_paths("203.0.113.0/32", 1)[0]
    wait_until(lambda: not lab.frr.route("203.0.113.0/32")[0].stale, timeout=30, what="EoR")
    assert path.prefix == "203.0.113.0/32"
    log = lab.agents["n1"].log_text()
    assert "R-bit" in log


def test_md5_right_password_accepted_wrong_refused(netlab: Topology) -> None:
    lab = build(netlab, ["n1", "n2"], password="s3cret")
    write_config(lab.config, ["web"], ["n1", "n2"], password="s3cret")
    lab.start_agent("n1")
    wrong = lab.topo.workdir / "config-wrong"
    write_config(wrong, ["web"], ["n1", "n2"], password="wrong")
    lab.config, right = wrong, lab.config
    lab.start_agent("n2")
    lab.config = right
    lab.frr.wait_established(NODES["n1"][0], timeout=60)
    lab.router.wait_route("203.0.113.0/32", gateways=[NODES["n1"][0]], timeout=60)
    assert lab.frr.neighbor_state(NODES["n2"][0]) != "Established"


def test_ipv6_session_and_gtsm(netlab: Topology, static_speaker: Any) -> None:
    """An IPv6 session carrying an IPv6 VIP, and an IPv4 session with GTSM on both sides."""
    rtr = netlab.add_netns("rtr", router=True)
    node = netlab.add_netns("n1")
    netlab.veth(rtr, "eth0", node, "eth0")
    for ns, (v4, v6) in ((rtr, (ROUTER_V4, ROUTER_V6)), (node, NODES["n1"])):
        ns.add_address("eth0", f"{v4}/24")
        ns.add_address("eth0", f"{v6}/64")
    n4, n6 = NODES["n1"]
    frr = start_frr(
        rtr,
        FrrConfig(
            asn=ROUTER_ASN,
            router_id=ROUTER_V4,
            neighbors=(
                Neighbor(n4, NODE_ASN, ttl_security_hops=1),
                Neighbor(n6, NODE_ASN),
            ),
        ),
        netlab.workdir / "frr",
    )
    speaker = static_speaker(node, netlab.workdir)
    common = {"local_asn": NODE_ASN, "peer_asn": ROUTER_ASN, "router_id": n4, "hold_time": 9,
              "connect_retry_time": 2, "idle_hold_time": 0.5}  # fmt: skip
    speaker.configure(
        [
            {"name": "v4", "address": ROUTER_V4, "gtsm_hops": 1, **common},
            {"name": "v6", "address": ROUTER_V6, **common},
        ],
        {"v4": {"203.0.113.50/32": {}}, "v6": {"2001:db8:100::50/128": {}}},
    )
    frr.wait_established(n4, n6, timeout=60)
    rtr.wait_route("203.0.113.50/32", gateways=[n4], timeout=30)
    route6 = wait_until(lambda: rtr.route("2001:db8:100::50/128"), timeout=30, what="v6 route")
    assert route6.nexthops


def test_ibgp_local_pref_2byte_route_refresh_hold_timer(
    netlab: Topology, static_speaker: Any
) -> None:
    """iBGP with a 2-byte ASN: LOCAL_PREF and communities arrive; FRR's ROUTE-REFRESH is
    answered; freezing bgpd makes vipcast's hold timer expire."""
    rtr = netlab.add_netns("rtr", router=True)
    node = netlab.add_netns("n1")
    netlab.veth(rtr, "eth0", node, "eth0")
    for ns, v4 in ((rtr, ROUTER_V4), (node, NODES["n1"][0])):
        ns.add_address("eth0", f"{v4}/24")
    n4 = NODES["n1"][0]
    frr = start_frr(
        rtr,
        FrrConfig(
            asn=ROUTER_ASN,
            router_id=ROUTER_V4,
            neighbors=(Neighbor(n4, ROUTER_ASN, keepalive=3, hold_time=9),),
        ),
        netlab.workdir / "frr",
    )
    speaker = static_speaker(node, netlab.workdir)
    attrs = {"local_pref": 250, "communities": [65000 << 16 | 100],
             "large_communities": [[64512, 1, 2]]}  # fmt: skip
    speaker.configure(
        [{"name": "r", "address": ROUTER_V4, "local_asn": ROUTER_ASN, "peer_asn": ROUTER_ASN,
          "router_id": n4, "hold_time": 3, "connect_retry_time": 2, "idle_hold_time": 0.5}],
        {"r": {"203.0.113.60/32": attrs}},
    )  # fmt: skip
    frr.wait_established(n4, timeout=60)
    path = frr.wait_paths("203.0.113.60/32", 1)[0]
    assert path.local_pref == 250, path
    assert path.as_path == (), path
    assert "65000:100" in path.communities, path
    assert "64512:1:2" in path.large_communities, path
    rtr.wait_route("203.0.113.60/32", gateways=[n4], timeout=30)

    # route refresh: FRR (no soft-reconfiguration inbound) sends ROUTE-REFRESH; vipcast re-sends
    sent = int(speaker.status()["r"]["updates_sent"])
    frr.vtysh(f"clear bgp ipv4 unicast {n4} soft in")
    speaker.wait(lambda s: int(s["r"]["updates_sent"]) > sent, 30, "route refresh answered")
    assert frr.wait_paths("203.0.113.60/32", 1)[0].local_pref == 250

    # freeze bgpd: vipcast's hold timer (3 s) expires and it sends NOTIFICATION 4
    bgpd = frr.processes["bgpd"]
    speaker.expect_hold_expiry("r", bgpd)
