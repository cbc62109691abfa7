"""The data-plane traffic lab (shared by tests/dataplane and bench/dataplane_wrk.py).

    client --- router --- node (VIP, nftables, health checks) ---+--- b1 (echo :8080)
    198.51.100.2/.3       routes 203.0.113.0/24 and             +--- b2
    2001:db8:c::2         2001:db8:f::/64 to the node          +--- b3

Every namespace carries the run prefix ``vc-<pid>``; processes are stopped by PID and the
namespaces deleted by ``Topology.close()``.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.dataplane.netns_switch import inside
from vipcast.lab.netns import Netns, Process, Topology, wait_until
from vipcast.runtime.probe import ProbeResult, SocketFactory, http_get, tcp_connect

ECHO = Path(__file__).with_name("echo_server.py")
VIP4 = "203.0.113.10"
VIP6 = "2001:db8:f::10"
CLIENT4 = "198.51.100.2"
CLIENT4_OTHER = "198.51.100.3"
CLIENT6 = "2001:db8:c::2"
BACKEND_PORT = 8080


def factory_in(netns: str) -> SocketFactory:
    """Sockets created inside ``netns`` (usable from the test's own thread afterwards)."""

    def make(family: int, type_: int) -> socket.socket:
        with inside(netns):
            return socket.socket(family, type_)

    return make


@dataclass
class Backend:
    name: str
    ns: Netns
    ip4: str
    ip6: str
    node_if: str
    proc: Process | None = None


@dataclass
class TrafficLab:
    topo: Topology
    client: Netns
    router: Netns
    node: Netns
    backends: list[Backend] = field(default_factory=list)

    def client_factory(self) -> SocketFactory:
        return factory_in(self.client.name)

    def node_factory(self) -> SocketFactory:
        return factory_in(self.node.name)

    async def get(
        self, host: str, port: int = 80, source: str | None = None, timeout: float = 2.0
    ) -> ProbeResult:
        return await http_get(
            host, port, "/", timeout=timeout, socket_factory=self.client_factory(),
            source=source,
        )

    async def connect(self, host: str, port: int = 80, source: str | None = None) -> ProbeResult:
        return await tcp_connect(
            host, port, timeout=1.0, socket_factory=self.client_factory(), source=source
        )

    def start_backend(self, b: Backend) -> None:
        b.proc = b.ns.spawn(
            [sys.executable, str(ECHO), str(BACKEND_PORT), b.name], name=f"echo-{b.name}"
        )
        wait_until(
            lambda: f":{BACKEND_PORT} " in b.ns.run(["ss", "-Htln"]).stdout,
            timeout=15, what=f"echo server {b.name} listening",
        )

    def stop_backend(self, b: Backend) -> None:
        if b.proc is not None:
            b.proc.stop(timeout=3.0)
            b.proc = None


def build_traffic_lab(topo: Topology, n_backends: int = 3) -> TrafficLab:
    client = topo.add_netns("dpc")
    router = topo.add_netns("dpr", router=True)
    node = topo.add_netns("dpn", router=True)
    topo.veth(client, "eth0", router, "eth0")
    client.add_address("eth0", f"{CLIENT4}/24")
    client.add_address("eth0", f"{CLIENT4_OTHER}/24")
    client.add_address("eth0", f"{CLIENT6}/64")
    router.add_address("eth0", "198.51.100.1/24")
    router.add_address("eth0", "2001:db8:c::1/64")
    client.add_default_route("198.51.100.1")
    client.add_default_route("2001:db8:c::1")
    topo.veth(router, "eth1", node, "eth0")
    router.add_address("eth1", "10.1.0.1/30")
    router.add_address("eth1", "fd00:1::1/64")
    node.add_address("eth0", "10.1.0.2/30")
    node.add_address("eth0", "fd00:1::2/64")
    router.add_route("203.0.113.0/24", via="10.1.0.2")
    router.add_route("2001:db8:f::/64", via="fd00:1::2")
    node.add_default_route("10.1.0.1")
    node.add_default_route("fd00:1::1")
    lab = TrafficLab(topo, client, router, node)
    for i in range(1, n_backends + 1):
        ns = topo.add_netns(f"dpb{i}")
        topo.veth(node, f"b{i}", ns, "eth0")
        node.add_address(f"b{i}", f"192.0.2.{4 * i + 1}/30")
        node.add_address(f"b{i}", f"fd00:b{i}::1/64")
        ns.add_address("eth0", f"192.0.2.{4 * i + 2}/30")
        ns.add_address("eth0", f"fd00:b{i}::2/64")
        ns.add_default_route(f"192.0.2.{4 * i + 1}")
        ns.add_default_route(f"fd00:b{i}::1")
        b = Backend(f"b{i}", ns, f"192.0.2.{4 * i + 2}", f"fd00:b{i}::2", f"b{i}")
        lab.backends.append(b)
        lab.start_backend(b)
    return lab
