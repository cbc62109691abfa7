"""Weighted ECMP against FRR 8.4: link bandwidth communities become kernel next-hop weights.

Three agents announce one Local-policy VIP with 1, 2 and 5 ready endpoints; FRR (which weights
multipaths by RFC 10005 link bandwidth when every path carries it) installs one route whose
next hops are weighted in those ratios. Scaling a node's endpoints changes its weight with an
UPDATE: FRR keeps three paths throughout, the route is never withdrawn.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from bgp_objects import service_yaml
from tests.bgp.test_interop_frr import (
    BASE,
    NODE,
    NODE_ASN,
    NODES,
    ROUTER_ASN,
    ROUTER_V4,
    Lab,
    build,
)

from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.lab.routes import Route

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("/usr/lib/frr/bgpd") is None, reason="FRR not installed"),
]

VIP = "203.0.113.0/32"
def write_weighted(directory: Path, counts: dict[str, int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = BASE.format(node_asn=NODE_ASN, router_asn=ROUTER_ASN, router=ROUTER_V4, password="")
    text += "  weightedECMP: endpoints\n"
    text += "".join(NODE.format(name=n) for n in counts)
    endpoints = [
        (f"10.244.{i}.{j + 10}", n)
        for i, (n, c) in enumerate(sorted(counts.items()), 1)
        for j in range(c)
    ]
    text += "---\n" + service_yaml("web", endpoints, local=True)
    tmp = directory / "objects.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(directory / "objects.yaml")


def shares(route: Route) -> dict[str, float]:
    total = sum(h.weight for h in route.nexthops)
    return {str(h.gateway): h.weight / total for h in route.nexthops}


def wait_shares(router: object, expected: dict[str, float], tolerance: float = 0.03) -> Route:
    def matching() -> Route | None:
        route = router.route(VIP)  # type: ignore[attr-defined]
        if route is None or len(route.nexthops) != len(expected):
            return None
        got = shares(route)
        ok = all(abs(got.get(gw, 0.0) - want) <= tolerance for gw, want in expected.items())
        return route if ok else None

    return wait_until(matching, timeout=60, what=f"weighted next hops {expected}",
                      on_timeout=lambda: f"route: {router.route(VIP)}")  # type: ignore[attr-defined]


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.0", 80))
s.listen(1024)
name = sys.argv[1].encode()
while True:
    c, _ = s.accept()
    c.sendall(name)
    c.close()
"""
CLIENT = """
import collections, json, socket, sys
counts = collections.Counter()
for _ in range(int(sys.argv[1])):
    with socket.create_connection(("203.0.113.0", 80), timeout=5) as c:
        counts[c.recv(64).decode()] += 1
print(json.dumps(counts))
"""
CONNECTIONS = 4000


def add_traffic(lab: Lab) -> Netns:
    """A client behind the router, and on every node the VIP on lo with a TCP server that
    answers with the node's name (no data plane: the agents run --no-dataplane)."""
    client = lab.topo.add_netns("cli")
    lab.topo.veth(lab.router, "eth1", client, "eth0")
    lab.router.add_address("eth1", "198.51.100.1/24")
    client.add_address("eth0", "198.51.100.2/24")
    client.add_default_route("198.51.100.1")
    for name, ns in lab.nodes.items():
        ns.add_address("lo", VIP)
        ns.add_route("198.51.100.0/24", via=ROUTER_V4)
        lab.topo.spawn(ns, [sys.executable, "-c", SERVER, name], name=f"server-{name}")
    return client


def measure(client: Netns) -> dict[str, float]:
    out = client.run([sys.executable, "-c", CLIENT, str(CONNECTIONS)], timeout=300)
    counts: dict[str, int] = json.loads(out.stdout)
    assert sum(counts.values()) == CONNECTIONS
    return {n: c / CONNECTIONS for n, c in counts.items()}


def test_endpoint_counts_become_next_hop_weights(netlab: Topology) -> None:
    lab = build(netlab, ["n1", "n2", "n3"])
    lab.router.sysctl("net.ipv4.fib_multipath_hash_policy", 1)  # inside the router netns only
    client = add_traffic(lab)
    write_weighted(lab.config, {"n1": 1, "n2": 2, "n3": 5})
    for name in lab.nodes:
        lab.start_agent(name)
    ips = {n: NODES[n][0] for n in lab.nodes}
    lab.frr.wait_established(*ips.values(), timeout=60)

    # every path carries a link bandwidth community in FRR's RIB
    lab.frr.wait_paths(VIP, 3, timeout=60)
    data = lab.frr.vtysh_json(f"show bgp ipv4 unicast {VIP} json")
    assert isinstance(data, dict)
    texts = [str(p.get("extendedCommunity", {}).get("string", "")) for p in data["paths"]]
    assert all("LB:" in t for t in texts), texts

    # the kernel route's next-hop weights are in the ratio 1:2:5 (within 3 points of 1/8...)
    route = wait_shares(lab.router, {ips["n1"]: 1 / 8, ips["n2"]: 2 / 8, ips["n3"]: 5 / 8})
    print("weights 1/2/5:", {str(h.gateway): h.weight for h in route.nexthops})
    spread = measure(client)
    print(f"spread over {CONNECTIONS} new connections (1/2/5):", spread)
    for name, want in (("n1", 1 / 8), ("n2", 2 / 8), ("n3", 5 / 8)):
        assert abs(spread.get(name, 0.0) - want) <= 0.03, (name, spread)

    # status shows each node's weight
    status = lab.status("n3")
    routes = status["routes"]
    assert isinstance(routes, list) and routes[0]["weight"] == 5.0

    # scaling: n1 goes to 5 endpoints -> 5:2:5; the route is updated, never withdrawn
    write_weighted(lab.config, {"n1": 5, "n2": 2, "n3": 5})
    route = wait_shares(lab.router, {ips["n1"]: 5 / 12, ips["n2"]: 2 / 12, ips["n3"]: 5 / 12})
    print("weights 5/2/5:", {str(h.gateway): h.weight for h in route.nexthops})
    spread = measure(client)
    print(f"spread over {CONNECTIONS} new connections (5/2/5):", spread)
    for name, want in (("n1", 5 / 12), ("n2", 2 / 12), ("n3", 5 / 12)):
        assert abs(spread.get(name, 0.0) - want) <= 0.03, (name, spread)
    assert len(lab.frr.route(VIP)) == 3
    for name in lab.nodes:
        log = lab.agents[name].log_text()
        assert "Traceback" not in log, log


def test_a_burst_of_endpoint_changes_is_paced(netlab: Topology) -> None:
    """n1's endpoint count changes four times within about two seconds (a rollout): with the
    agents' default pacing (one weight change per route per 5 s) FRR receives at most two
    UPDATEs for the VIP from n1 (the first change, then the coalesced last one), never a
    withdrawal, and ends with the last count's weight."""
    import re
    import time

    lab = build(netlab, ["n1", "n2", "n3"])
    write_weighted(lab.config, {"n1": 1, "n2": 2, "n3": 5})
    for name in lab.nodes:
        lab.start_agent(name)
    ips = {n: NODES[n][0] for n in lab.nodes}
    lab.frr.wait_established(*ips.values(), timeout=60)
    wait_shares(lab.router, {ips["n1"]: 1 / 8, ips["n2"]: 2 / 8, ips["n3"]: 5 / 8})
    lab.frr.configure("log stdout debugging")
    lab.frr.vtysh("debug bgp updates in")
    mark = len(lab.frr.processes["bgpd"].log_text())
    for count in (2, 3, 4, 5):
        write_weighted(lab.config, {"n1": count, "n2": 2, "n3": 5})
        time.sleep(0.6)  # > the agents' 0.3 s file poll: each count is seen
        assert len(lab.frr.route(VIP)) == 3
    wait_shares(lab.router, {ips["n1"]: 5 / 12, ips["n2"]: 2 / 12, ips["n3"]: 5 / 12})
    time.sleep(6)  # one more interval: nothing else may come
    log = lab.frr.processes["bgpd"].log_text()[mark:]
    n1 = re.escape(ips["n1"])
    updates = re.findall(rf"{n1}\S* rcvd {re.escape(VIP)}", log)
    print(f"UPDATEs about {VIP} from n1 during the burst: {len(updates)}")
    assert 1 <= len(updates) <= 2, log[-3000:]
    assert not re.search(rf"{n1}\S* rcvd UPDATE about {re.escape(VIP)}.*withdrawn", log)
    assert len(lab.frr.route(VIP)) == 3
