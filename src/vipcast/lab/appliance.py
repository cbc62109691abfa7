"""The HAProxy appliance tier in network namespaces: clients -> router -> appliance -> nodes.

``client`` (10.10.0.2) and ``outsider`` (10.10.1.2) sit behind ``router`` (FRR, AS 64512);
the router reaches the ``appliance`` over 10.30.0.0/30 and learns the appliance's VIPs
(198.51.100.0/24, on the appliance's loopback) from vipcast's own BGP speaker running on the
appliance (AS 64513, ``python -m vipcast.app.bgp_static`` fed JSON lines through a file).
The appliance reaches each node ``n<i>`` over its own link (10.20.<i>.1 <-> 10.20.<i>.2);
every node runs backends (:mod:`vipcast.lab.proxy_backend`) on ports 8081.. that report the
client address they were given. The appliance's HAProxy is driven by
:class:`~vipcast.providers.haproxy.driver.HAProxyDriver`, launched inside the appliance
namespace (its sockets live in the run's directory).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.core.external import Member
from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.frr import FrrConfig, FrrInstance, start_frr
from vipcast.lab.netns import Netns, Process, Topology, wait_until
from vipcast.providers.haproxy.driver import HAProxyDriver

VIP = "198.51.100.1"
ROUTER_ASN = 64512
APPLIANCE_ASN = 64513
ROUTER_LINK, APPLIANCE_LINK = "10.30.0.1", "10.30.0.2"


@dataclass
class Appliance:
    topology: Topology
    client: Netns
    outsider: Netns
    appliance: Netns
    router: Netns
    frr: FrrInstance
    nodes: list[Netns]
    #: JSON lines the appliance's speaker reads (appended by :meth:`announce`)
    speaker_input: Path
    speaker: Process
    #: every backend as a member (node address, port, node name)
    members: list[Member] = field(default_factory=list)
    backends: list[Process] = field(default_factory=list)

    def driver(self, state_dir: Path) -> HAProxyDriver:
        return HAProxyDriver(state_dir, launcher=self.appliance.exec_argv([]), drain_timeout=5.0)

    def announce(self, vips: Iterable[str]) -> None:
        """Make the appliance's speaker announce exactly these VIPs (host routes) to the
        router, next hop the appliance."""
        peer = {"name": "router", "address": ROUTER_LINK, "local_asn": APPLIANCE_ASN,
                "peer_asn": ROUTER_ASN, "router_id": APPLIANCE_LINK, "hold_time": 9,
                "connect_retry_time": 1.0, "families": ["ipv4"]}
        routes: dict[str, dict[str, object]] = {f"{vip}/32": {} for vip in sorted(set(vips))}
        with self.speaker_input.open("a") as out:
            out.write(json.dumps({"peers": [peer], "routes": {"router": routes}}) + "\n")

    def wait_route(self, vip: str, present: bool = True, timeout: float = 30.0) -> None:
        """Wait until the router holds (or no longer holds) the VIP from the appliance."""
        self.frr.wait_paths(f"{vip}/32", 1 if present else 0, timeout=timeout)


def build(topo: Topology, nodes: int = 2, backends_per_node: int = 2) -> Appliance:
    client, outsider = topo.add_netns("client"), topo.add_netns("outsider")
    router = topo.add_netns("router", router=True)
    box = topo.add_netns("appliance", router=True)
    topo.veth(client, "eth0", router, "cl0")
    topo.veth(outsider, "eth0", router, "out0")
    topo.veth(router, "app0", box, "up0")
    client.add_address("eth0", "10.10.0.2/24")
    router.add_address("cl0", "10.10.0.1/24")
    outsider.add_address("eth0", "10.10.1.2/24")
    router.add_address("out0", "10.10.1.1/24")
    router.add_address("app0", f"{ROUTER_LINK}/30")
    box.add_address("up0", f"{APPLIANCE_LINK}/30")
    client.add_default_route("10.10.0.1")
    outsider.add_default_route("10.10.1.1")
    box.add_default_route(ROUTER_LINK)
    # the node links behind the appliance (for "straight to the backend" comparisons only;
    # the VIPs themselves come by BGP)
    router.add_route("10.20.0.0/16", via=APPLIANCE_LINK)
    box.add_address("lo", f"{VIP}/32")
    frr = start_frr(router, FrrConfig(
        asn=ROUTER_ASN, router_id=ROUTER_LINK, hostname="router",
        neighbors=(Neighbor(address=APPLIANCE_LINK, remote_as=APPLIANCE_ASN, hold_time=9,
                            keepalive=3, connect_retry=1, description="appliance"),)),
        topo.workdir / "frr")
    speaker_input = topo.workdir / "appliance-speaker.jsonl"
    speaker_input.write_text("")
    speaker = box.spawn(["sh", "-c", f"tail -n +1 -F {shlex.quote(str(speaker_input))} "
                         f"2>/dev/null | exec {shlex.quote(sys.executable)} -m "
                         "vipcast.app.bgp_static"], name="speaker")
    lab = Appliance(topo, client, outsider, box, router, frr, [], speaker_input, speaker)
    for i in range(1, nodes + 1):
        node = topo.add_netns(f"n{i}")
        topo.veth(box, f"n{i}", node, "eth0")
        box.add_address(f"n{i}", f"10.20.{i}.1/24")
        node.add_address("eth0", f"10.20.{i}.2/24")
        node.add_default_route(f"10.20.{i}.1")
        lab.nodes.append(node)
        for b in range(backends_per_node):
            port = 8081 + b
            proc = node.spawn([sys.executable, "-m", "vipcast.lab.proxy_backend",
                               "--id", f"n{i}-{port}", "--node", f"n{i}", "--port", str(port)],
                              name=f"backend-n{i}-{port}")
            lab.backends.append(proc)
            lab.members.append(Member(f"10.20.{i}.2", port, f"n{i}"))
    for proc in lab.backends:
        wait_until(lambda p=proc: "ready" in p.log_text(), timeout=20.0,  # type: ignore[misc]
                   what="appliance lab backend listening")
    return lab
