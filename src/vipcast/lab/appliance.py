"""The HAProxy appliance tier in network namespaces: clients -> appliance -> nodes.

``client`` (10.10.0.2) and ``outsider`` (10.10.1.2) reach the appliance (10.10.0.1, 10.10.1.1);
the appliance reaches each node ``n<i>`` over its own link (10.20.<i>.1 <-> 10.20.<i>.2) and
holds the VIPs (198.51.100.0/24) on its loopback. Every node runs backends
(:mod:`vipcast.lab.proxy_backend`) on ports 8081.. that report the client address they were
given. The appliance's HAProxy is driven by :class:`~vipcast.providers.haproxy.driver.HAProxyDriver`
(launched inside the appliance namespace; its sockets live in the run's directory).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.core.external import Member
from vipcast.lab.netns import Netns, Process, Topology, wait_until
from vipcast.providers.haproxy.driver import HAProxyDriver

VIP = "198.51.100.1"


@dataclass
class Appliance:
    topology: Topology
    client: Netns
    outsider: Netns
    appliance: Netns
    nodes: list[Netns]
    #: every backend as a member (node address, port, node name)
    members: list[Member] = field(default_factory=list)
    backends: list[Process] = field(default_factory=list)

    def driver(self, state_dir: Path) -> HAProxyDriver:
        return HAProxyDriver(state_dir, launcher=self.appliance.exec_argv([]), drain_timeout=5.0)


def build(topo: Topology, nodes: int = 2, backends_per_node: int = 2) -> Appliance:
    client, outsider = topo.add_netns("client"), topo.add_netns("outsider")
    box = topo.add_netns("appliance", router=True)
    topo.veth(client, "eth0", box, "cl0")
    topo.veth(outsider, "eth0", box, "out0")
    client.add_address("eth0", "10.10.0.2/24")
    box.add_address("cl0", "10.10.0.1/24")
    outsider.add_address("eth0", "10.10.1.2/24")
    box.add_address("out0", "10.10.1.1/24")
    client.add_default_route("10.10.0.1")
    outsider.add_default_route("10.10.1.1")
    box.add_address("lo", f"{VIP}/32")
    lab = Appliance(topo, client, outsider, box, [])
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
