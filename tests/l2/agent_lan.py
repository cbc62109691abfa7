"""A LAN of full node agents in L2 mode (``vipcast agent``: data plane, health checks, verified
announcement, L2 responder and membership), one local HTTP backend per node, and a client.

    client 192.0.2.100 --- br0 (namespace "lan") ---+--- n1 192.0.2.1 (agent, backend :8080)
                                                     +--- n2 192.0.2.2
                                                     +--- n3 192.0.2.3

The one Service (``externalTrafficPolicy: Local`` unless told otherwise) has the single address
of its pool, :data:`VIP`, port 80, and one endpoint per node: the node's own address, port 8080,
served by ``tests/dataplane/echo_server.py`` named after the node, so each HTTP answer says which
node's data plane carried it. The config is one file every agent reads; tests edit it (e.g. an
endpoint not ready) and the agents pick the change up by polling.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2_lan import Capture, bridged_lan, converged

from vipcast.core.ownership import l2_candidates
from vipcast.lab.netns import Netns, Process, Topology, wait_until

PYTHON = sys.executable
ECHO = Path(__file__).resolve().parents[1] / "dataplane" / "echo_server.py"
VIP = "192.0.2.64"
BACKEND_PORT = 8080
STATUS_PORT = 9473
KEY = "l2-agent-test-key-0123456789"
#: fast checks so the tests stay short: down after 2 failures 0.3 s apart
HEALTH = "tcp, interval=0.3, timeout=0.25, fall=2, rise=1"

CONFIG = """\
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {{name: lan}}
spec:
  addresses: [{vip}/32]
---
apiVersion: vipcast.io/v1beta1
kind: L2Advertisement
metadata: {{name: lan}}
spec:
  ipAddressPools: [lan]
  interfaces: [eth0]
{nodes}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
  annotations: {{vipcast.io/health-check: "{health}"}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: {policy}
  selector: {{app: web}}
  ports:
    - {{name: http, port: 80, targetPort: {port}, protocol: TCP}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: demo
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports:
  - {{name: http, port: {port}, protocol: TCP}}
endpoints:
{endpoints}
"""

NODE = """\
---
apiVersion: v1
kind: Node
metadata: {{name: {name}, annotations: {{vipcast.io/drain: "{drain}"}}}}
status:
  addresses: [{{type: InternalIP, address: {address}}}]
"""

ENDPOINT = """\
  - addresses: [{address}]
    nodeName: {name}
    conditions: {{ready: {ready}}}
"""

#: HTTP GET of VIP:80 every ``period`` on a fresh connection; one JSON line per attempt
PROBE = r"""
import json, socket, sys, time
vip, period, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 0.3
end = time.time() + duration
next_send = time.time()
while time.time() < end:
    sent = time.time()
    node = error = None
    try:
        with socket.create_connection((vip, 80), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        node = data.split(b"\r\n\r\n", 1)[1].split()[0].decode()
    except (OSError, IndexError) as exc:
        error = repr(exc)
    print(json.dumps({"sent": sent, "node": node, "error": error,
                      "seconds": round(time.time() - sent, 4)}), flush=True)
    next_send += period
    time.sleep(max(0.0, next_send - time.time()))
"""


@dataclass(frozen=True)
class Attempt:
    sent: float
    node: str | None
    #: why no node answered (the exception), and how long the attempt took: a failure's
    #: cause in an assertion's message (a reset, or a timeout on a starved machine)
    error: str | None = field(default=None, compare=False)
    seconds: float | None = field(default=None, compare=False)


def parse_attempts(text: str) -> list[Attempt]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            item = json.loads(line)
            out.append(Attempt(item["sent"], item["node"], item.get("error"),
                               item.get("seconds")))
    return out


@dataclass
class AgentLan:
    topo: Topology
    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    policy: str = "Local"
    #: the nodes the config file names (a Node object and an endpoint each); None: all of
    #: ``nodes`` (a test adds or removes one later to show live membership)
    configured: tuple[str, ...] | None = None
    ready: dict[str, bool] = field(default_factory=dict)
    #: nodes whose Node object carries ``vipcast.io/drain: "true"``
    drained: set[str] = field(default_factory=set)
    agents: dict[str, Process] = field(default_factory=dict)
    backends: dict[str, Process] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> Netns:
        return self.topo["client"]

    @property
    def lan(self) -> Netns:
        return self.topo["lan"]

    @property
    def config_path(self) -> Path:
        return self.topo.workdir / "config.yaml"

    def address(self, node: str) -> str:
        return f"192.0.2.{self.nodes.index(node) + 1}"

    def members(self) -> tuple[str, ...]:
        """The nodes the config names now."""
        return self.nodes if self.configured is None else self.configured

    def candidates(self) -> tuple[str, ...]:
        """The preference order every agent computes for the VIP (all endpoints ready)."""
        return l2_candidates(VIP, self.members())

    def set_configured(self, nodes: tuple[str, ...]) -> None:
        """Rewrite the config with exactly these Nodes (the agents pick it up by polling)."""
        self.configured = nodes
        self.write_config()

    # ---- building

    def build(self) -> AgentLan:
        bridged_lan(self.topo, (*self.nodes, "client"))
        self.client.add_address("eth0", "192.0.2.100/24")
        for name in self.nodes:
            ns = self.topo[name]
            ns.add_address("eth0", f"{self.address(name)}/24")
            # the agent adds a local route for the VIP: only vipcast's responder may answer ARP
            ns.sysctl("net.ipv4.conf.all.arp_ignore", 1)
            ns.sysctl("net.ipv4.conf.eth0.arp_ignore", 1)
            self.macs[name] = ns.ip_json("link", "show", "dev", "eth0")[0]["address"]
            self.ready[name] = True
            self.start_backend(name)
        (self.topo.workdir / "l2.key").write_text(KEY)
        self.write_config()
        return self

    def write_config(self) -> None:
        nodes = "".join(NODE.format(name=n, address=self.address(n),
                                    drain="true" if n in self.drained else "false")
                        for n in self.members())
        endpoints = "".join(
            ENDPOINT.format(address=self.address(n), name=n,
                            ready="true" if self.ready[n] else "false")
            for n in self.members()
        )
        text = CONFIG.format(vip=VIP, nodes=nodes.rstrip("\n"), health=HEALTH,
                             policy=self.policy, port=BACKEND_PORT, endpoints=endpoints)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config_path)  # agents never read a half-written file

    def set_ready(self, node: str, ready: bool) -> None:
        self.ready[node] = ready
        self.write_config()

    def set_drained(self, node: str, drained: bool) -> None:
        """``vipcast drain``/``undrain`` as the files see it: the Node's annotation."""
        (self.drained.add if drained else self.drained.discard)(node)
        self.write_config()

    def start_backend(self, node: str) -> None:
        ns = self.topo[node]
        self.backends[node] = ns.spawn(
            [PYTHON, str(ECHO), str(BACKEND_PORT), node], name=f"echo-{node}-{time.monotonic_ns()}"
        )
        wait_until(lambda: f":{BACKEND_PORT} " in ns.run(["ss", "-Htln"]).stdout,
                   timeout=15, what=f"backend of {node} listening")

    def stop_backend(self, node: str) -> float:
        moment = time.time()
        self.backends.pop(node).stop(timeout=3.0)
        return moment

    def start_agent(self, node: str) -> Process:
        proc = self.topo[node].spawn(
            [PYTHON, "-m", "vipcast.cli.main", "agent", "--config", str(self.config_path),
             "--node", node, "--metrics-address", f"127.0.0.1:{STATUS_PORT}",
             "--membership-key-file", str(self.topo.workdir / "l2.key"),
             "--state-dir", str(self.topo.workdir / f"state-{node}"),
             "--poll-interval", "0.2"],
            name=f"agent-{node}",
        )
        self.agents[node] = proc
        return proc

    def start_all(self) -> None:
        for node in self.nodes:
            self.start_agent(node)
        self.wait_converged()

    def wait_converged(self, timeout: float = 90.0) -> dict[str, dict[str, Any]]:
        """Wait until every running agent is past its start-up wait, sees all running agents
        alive with a quorum and names the same owner (``l2_lan.converged``); return their L2
        statuses."""
        running = [n for n, a in self.agents.items() if a.alive()]

        def l2(node: str) -> dict[str, Any]:
            section = self.status(node).get("l2")
            if not isinstance(section, dict):
                raise LookupError(f"{node}: no l2 status yet")
            return section

        statuses: dict[str, dict[str, Any]] = wait_until(
            lambda: (st := {n: l2(n) for n in running}) and converged(st) and st,
            timeout=timeout, interval=0.2, what="agents settled and agreeing",
            on_timeout=self.topo.logs,
        )
        return statuses

    def kill_agent(self, node: str) -> float:
        """SIGKILL the node's agent (its nftables table and routes stay, as after a crash)."""
        moment = time.time()
        proc = self.agents.pop(node)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(5)
        return moment

    def wipe_dataplane(self, node: str) -> None:
        """What a reboot leaves: no vipcast table, no local VIP route."""
        ns = self.topo[node]
        ns.run(["nft", "delete", "table", "inet", "vipcast"], check=False)
        ns.ip("route", "flush", "table", "local", "proto", "249", check=False)

    # ---- observing

    def status(self, node: str) -> dict[str, object]:
        """The agent's /status document (fetched inside its namespace)."""
        out = self.topo[node].run(
            [PYTHON, "-c",
             "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
             f"'http://127.0.0.1:{STATUS_PORT}/status', timeout=3).read().decode())"],
            check=False, timeout=20,
        )
        if out.returncode != 0:
            return {}
        document: dict[str, object] = json.loads(out.stdout)
        return document

    def answering(self, node: str) -> bool | None:
        """Whether ``node`` answers ARP for the VIP now, in its agent's own words."""
        l2 = self.status(node).get("l2")
        if not isinstance(l2, dict):
            return None
        for vip in l2.get("vips", []):
            if vip["ip"] == VIP:
                return bool(vip["answering_here"])
        return False

    def wait_sole_owner(self, node: str, timeout: float = 60.0) -> None:
        def silent(other: str) -> bool:
            agent = self.agents.get(other)
            if agent is None or not agent.alive():
                return True
            return self.answering(other) is False

        def settled() -> bool:
            return self.answering(node) is True and all(
                silent(n) for n in self.nodes if n != node
            )

        wait_until(settled, timeout=timeout, interval=0.2, what=f"{node} sole L2 owner",
                   on_timeout=self.topo.logs)

    def get(self) -> str | None:
        """One HTTP GET of the VIP from the client: the node whose backend answered. Who
        answers, not how fast: 10 s to connect and again to be answered (the probe series
        keep their 0.3 s), since a loaded machine can hold a niced backend off the CPU for
        longer than 0.3 s."""
        attempts = self.probe(period=0.05, duration=0.01, timeout=10.0)
        return attempts[0].node if attempts else None

    def probe(self, period: float, duration: float, timeout: float = 0.3) -> list[Attempt]:
        run = self.client.run([PYTHON, "-c", PROBE, VIP, str(period), str(duration),
                               str(timeout)], timeout=duration + 2 * timeout + 30)
        return parse_attempts(run.stdout)

    def start_probe(self, period: float, duration: float, timeout: float = 0.3) -> Process:
        """The probe series in the background: an attempt every ``period`` for ``duration``,
        each bounded by ``timeout`` to connect and again to be answered."""
        return self.client.spawn([PYTHON, "-c", PROBE, VIP, str(period), str(duration),
                                  str(timeout)], name=f"probe-{time.monotonic_ns()}")

    def start_capture(self) -> tuple[Capture, Path]:
        """ARP on the bridge, known to be captured from now on (see l2_lan.Capture)."""
        capture = Capture.start(self.lan, self.topo.workdir / f"capture-{time.monotonic_ns()}.pcap",
                                "arp")
        return capture, capture.path
