"""A LAN for L2 tests and benchmarks: a bridge namespace, node namespaces running
``vipcast.app.l2_standalone`` and a UDP echo server on the VIP, and a client namespace.

Imported by tests/l2/conftest.py and by bench/l2_failover.py (which adds this folder to
sys.path). Everything lives in namespaces carrying the topology's run prefix.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from vipcast.lab.netns import Netns, Process, Topology, wait_until
from vipcast.lab.pcap import NeighborAnswer as Answer
from vipcast.lab.pcap import neighbor_answers
from vipcast.proto.l2 import ArpOp, ArpPacket, EthernetFrame
from vipcast.proto.l2.ethernet import ZERO_MAC, EtherType

PYTHON = sys.executable
VIP4 = "192.0.2.50"
VIP6 = "2001:db8::50"
ECHO_PORT = 9000
KEY = "l2-test-key-0123456789"

ECHO_SERVER = r"""
import selectors, socket, sys
name, vip4, vip6, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sel = selectors.DefaultSelector()
for family, vip, level, opt in ((socket.AF_INET, vip4, 0, 15), (socket.AF_INET6, vip6, 41, 78)):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(level, opt, 1)
    s.bind((vip, port))
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        data, addr = key.fileobj.recvfrom(512)
        key.fileobj.sendto(name.encode() + b" " + data, addr)
"""

PROBE_CLIENT = r"""
import json, select, socket, sys, time
vip, port, period, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in vip else socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent, seq = {}, 0
start = time.time()
end, next_send = start + duration, start
print(json.dumps({"start": start}), flush=True)
while time.time() < end:
    now = time.time()
    if now >= next_send:
        seq += 1
        sent[seq] = now
        try:
            s.sendto(str(seq).encode(), (vip, port))
        except OSError:
            pass
        next_send += period
    ready, _, _ = select.select([s], [], [], max(0.0, min(next_send, end) - time.time()))
    while ready:
        try:
            data, _ = s.recvfrom(512)
        except BlockingIOError:
            break
        node, number = data.decode().split()
        print(json.dumps({"seq": int(number), "sent": sent[int(number)], "recv": time.time(),
                          "node": node}), flush=True)
print(json.dumps({"sent_total": seq}), flush=True)
"""


@dataclass
class Reply:
    seq: int
    sent: float
    recv: float
    node: str


@dataclass
class ProbeResult:
    start: float
    sent_total: int
    replies: list[Reply]

    def first_from(self, node: str, after: float) -> Reply | None:
        return next((r for r in self.replies if r.node == node and r.sent >= after), None)

    def lost(self) -> list[int]:
        answered = {r.seq for r in self.replies}
        return [s for s in range(1, self.sent_total + 1) if s not in answered]


def bridged_lan(topo: Topology, names: Iterable[str]) -> Netns:
    """Namespace ``lan`` with bridge ``br0`` (multicast snooping off) and one namespace per
    name on it by ``eth0`` (port ``p-<name>``), IPv6 duplicate address detection off."""
    lan = topo.add_netns("lan")
    lan.add_bridge("br0")
    lan.ip("link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
    for name in names:
        ns = topo.add_netns(name)
        ns.sysctl("net.ipv6.conf.all.accept_dad", 0)
        ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        topo.attach_to_bridge(lan, "br0", f"p-{name}"[:15], ns, "eth0")
    return lan


@dataclass
class L2Lan:
    topo: Topology
    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    agent_args: tuple[str, ...] = ()
    agents: dict[str, Process] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    #: the agents' environment (None: this process's); bench/l2_false_death.py runs a
    #: reference tree's agents with their own PYTHONPATH
    agent_env: Mapping[str, str] | None = None

    @property
    def lan(self) -> Netns:
        return self.topo["lan"]

    @property
    def client(self) -> Netns:
        return self.topo["client"]

    def address(self, node: str, v6: bool = False) -> str:
        index = self.nodes.index(node) + 1
        return f"2001:db8::{index}" if v6 else f"192.0.2.{index}"

    def build(self) -> L2Lan:
        bridged_lan(self.topo, (*self.nodes, "client"))
        client = self.topo["client"]
        client.add_address("eth0", "192.0.2.100/24")
        client.add_address("eth0", "2001:db8::100/64")
        for name in self.nodes:
            ns = self.topo[name]
            ns.add_address("eth0", f"{self.address(name)}/24")
            ns.add_address("eth0", f"{self.address(name, v6=True)}/64")
            # the VIP is accepted through a local route, never an interface address; the kernel
            # must then not answer ARP for it itself
            ns.sysctl("net.ipv4.conf.all.arp_ignore", 1)
            ns.sysctl("net.ipv4.conf.eth0.arp_ignore", 1)
            ns.add_route(f"{VIP4}/32", dev="lo", kind="local")
            ns.add_route(f"{VIP6}/128", dev="lo", kind="local")
            link = ns.ip_json("link", "show", "dev", "eth0")[0]
            self.macs[name] = link["address"]
            server = ns.spawn(
                [PYTHON, "-c", ECHO_SERVER, name, VIP4, VIP6, str(ECHO_PORT)], name="echo"
            )
            wait_until(server.log_text, timeout=20, what="echo server ready")
        key_file = self.topo.workdir / "l2.key"
        key_file.write_text(KEY)
        return self

    def start_agent(self, node: str, *extra: str) -> Process:
        args = [
            PYTHON,
            "-m",
            "vipcast.app.l2_standalone",
            "--node",
            node,
            "--interface",
            "eth0",
            "--vip",
            VIP4,
            "--vip",
            VIP6,
            "--candidates",
            ",".join(self.nodes),
            "--key-file",
            str(self.topo.workdir / "l2.key"),
            "--bind",
            f"{self.address(node)}:7946",
        ]
        for peer in self.nodes:
            if peer != node:
                args += ["--peer", f"{peer}={self.address(peer)}"]
        proc = self.topo[node].spawn(
            [*args, *self.agent_args, *extra], name=f"agent{len(self.topo.processes)}",
            env=self.agent_env,
        )
        self.agents[node] = proc
        return proc

    def start_all(self) -> None:
        for node in self.nodes:
            self.start_agent(node)
        self.wait_owner(self.nodes[0])
        self.wait_converged()

    def wait_converged(self, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Wait until every running agent is past its start-up wait and agrees (see
        :func:`converged`); return their statuses."""
        running = [n for n in self.nodes if n in self.agents and self.agents[n].alive()]
        statuses: dict[str, dict[str, Any]] = wait_until(
            lambda: (st := {n: self.status(n) for n in running}) and converged(st) and st,
            timeout=timeout, interval=0.2, what="agents settled and agreeing",
            on_timeout=self.topo.logs,
        )
        return statuses

    # ---- observing agents

    def owned(self, node: str) -> list[str] | None:
        """The VIPs the agent last reported owning (None before its first report)."""
        last = None
        for line in self.agents[node].log_text().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "owned":
                    last = event["ips"]
        return last

    def wait_owner(self, node: str, timeout: float = 15.0) -> None:
        others = [n for n in self.nodes if n != node and self.agents.get(n) is not None]

        def settled() -> bool:
            if sorted(self.owned(node) or []) != sorted([VIP4, VIP6]):
                return False
            return all(not self.agents[n].alive() or not (self.owned(n) or []) for n in others)

        wait_until(
            settled,
            timeout=timeout,
            interval=0.05,
            what=f"{node} sole owner",
            on_timeout=self.topo.logs,
        )

    def status(self, node: str) -> dict[str, Any]:
        """The agent's status (it prints it as a JSON line on SIGUSR1)."""
        proc = self.agents[node]
        # SIGUSR1's default action ends the process: signal only once the handler is installed
        wait_until(lambda: '"event": "started"' in proc.log_text(), timeout=60, interval=0.1,
                   what=f"{node} started")
        count = proc.log_text().count('"event": "status"')
        os.killpg(proc.pid, signal.SIGUSR1)
        wait_until(lambda: proc.log_text().count('"event": "status"') > count, timeout=30,
                   interval=0.05, what=f"{node} status")
        lines = [ln for ln in proc.log_text().splitlines() if '"event": "status"' in ln]
        status: dict[str, Any] = json.loads(lines[-1])["status"]
        return status

    # ---- failures

    def kill(self, node: str) -> float:
        moment = time.time()
        os.killpg(self.agents[node].pid, signal.SIGKILL)
        self.agents[node].popen.wait(5)
        return moment

    def terminate(self, node: str) -> float:
        moment = time.time()
        os.killpg(self.agents[node].pid, signal.SIGTERM)
        self.agents[node].popen.wait(5)
        return moment

    def cable(self, node: str, up: bool) -> float:
        moment = time.time()
        self.lan.set_link(f"p-{node}"[:15], up)
        return moment

    # ---- the client's view

    def resolve(self, vip: str) -> str | None:
        """Flush the client's neighbor cache, ping the VIP, return the MAC it resolved to."""
        v6 = ":" in vip
        self.client.ip("-6" if v6 else "-4", "neigh", "flush", "dev", "eth0")
        self.client.run(["ping", "-6" if v6 else "-4", "-c", "1", "-W", "2", vip], check=False)
        for entry in self.client.ip_json("-6" if v6 else "-4", "neigh", "show", "to", vip):
            if entry.get("lladdr"):
                return str(entry["lladdr"])
        return None

    def request(self, vip: str = VIP4, count: int = 1, timeout: float = 2.0) -> list[str]:
        """Answers (node names) to ``count`` UDP requests sent 10 ms apart."""
        result = self.probe(vip, period=0.01, duration=max(timeout, count * 0.01 + 0.5))
        return [r.node for r in result.replies]

    def probe(self, vip: str, period: float, duration: float) -> ProbeResult:
        run = self.client.run(
            [PYTHON, "-c", PROBE_CLIENT, vip, str(ECHO_PORT), str(period), str(duration)],
            timeout=duration + 30,
        )
        return parse_probe(run.stdout)

    def start_probe(self, vip: str, period: float, duration: float) -> Process:
        return self.client.spawn(
            [PYTHON, "-c", PROBE_CLIENT, vip, str(ECHO_PORT), str(period), str(duration)],
            name=f"probe{len(self.topo.processes)}",
        )

    def start_capture(self) -> tuple[Capture, Path]:
        path = self.topo.workdir / f"capture{len(self.topo.processes)}.pcap"
        capture = Capture.start(self.lan, path, "arp or icmp6")
        return capture, capture.path


#: run in the LAN's namespace: send one Ethernet frame (hex) out of the bridge
_SEND_FRAME = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
    "s.bind(('br0', 0))\n"
    "s.send(bytes.fromhex(sys.argv[1]))\n"
)
#: a capture marker's addresses: locally administered MACs no port has, and an ARP probe (sender
#: 0.0.0.0) for an address of 198.18.0.0/15 (benchmarking, unused in the labs): no node answers
#: it (its destination is nobody's MAC) and no test's reading of a capture counts it
_MARK_SRC = bytes.fromhex("027663000001")
_MARK_DST = bytes.fromhex("027663000002")


@dataclass
class Capture:
    """tcpdump on the LAN's bridge ``br0`` writing ``path``, known to capture.

    ``tcpdump``'s "listening on" line says its socket exists, not that a frame crossing the
    bridge now will reach the file: so :meth:`start` returns only once a marker frame sent
    onto the bridge is in the file. And a SIGTERMed tcpdump drops what it has not yet read from
    its ring (a loaded machine: seconds behind): so :meth:`stop` first sends a marker and
    waits until the file holds it -- every frame the bridge carried before is in the file --
    and only then ends tcpdump. ``--immediate-mode``: each frame is handed over as it comes,
    not in blocks after a timeout; its ring has one slot per snap length, so ``-s 512`` (an
    ARP or NDP frame is < 100 bytes) and ``-B 4096`` (KiB): with the default 256 KiB snap
    length the 2 MiB ring held 8 frames, and a burst met a starved tcpdump with drops
    (seen: 2 of 40 frames of a 20-datagram burst)."""

    process: Process
    path: Path
    lan: Netns
    marks: int = 0

    @classmethod
    def start(cls, lan: Netns, path: Path, expression: str) -> Capture:
        process = lan.spawn(
            ["tcpdump", "-i", "br0", "-U", "--immediate-mode", "-s", "512", "-B", "4096", "-n",
             "-w", str(path), f"arp or ({expression})"],
            name=f"tcpdump-{path.stem}",
        )
        capture = cls(process, path, lan)
        wait_until(lambda: "listening on" in process.log_text(), timeout=30, what="tcpdump")
        capture.mark()
        return capture

    @property
    def pid(self) -> int:
        return self.process.pid

    def mark(self, timeout: float = 60.0) -> None:
        """A marker frame onto the bridge, again every second, until the file holds it."""
        self.marks += 1
        target = IPv4Address("198.18.0.0") + self.marks
        arp = ArpPacket(ArpOp.REQUEST, _MARK_SRC, IPv4Address(0), ZERO_MAC, target).encode()
        frame = EthernetFrame(_MARK_DST, _MARK_SRC, EtherType.ARP, arp).encode()
        end = time.monotonic() + timeout
        while True:
            if not self.process.alive():
                raise AssertionError(f"tcpdump exited: {self.process.log_text()[-2000:]}")
            self.lan.run([PYTHON, "-c", _SEND_FRAME, frame.hex()])
            again = min(time.monotonic() + 1.0, end)
            while time.monotonic() < again:
                if self.path.exists() and arp in self.path.read_bytes():
                    return
                time.sleep(0.02)
            if time.monotonic() >= end:
                raise TimeoutError(f"capture marker {target} not in {self.path} within "
                                   f"{timeout} s: {self.process.log_text()[-2000:]}")

    def stop(self) -> None:
        """Drained (see the class), then tcpdump ended."""
        if self.process.alive():
            self.mark()
        self.process.stop()


def converged(statuses: Mapping[str, Mapping[str, Any]]) -> bool:
    """The agents' L2 status documents (node -> ``status``) show a settled cluster: each is past
    its start-up wait with a quorum, sees exactly these nodes alive, and all name the same owner
    for every VIP. Shared by :class:`L2Lan` and ``agent_lan.AgentLan``: a test that cuts, kills or
    partitions right after start must not race the slowest agent's start-up wait."""
    owners = set()
    for status in statuses.values():
        membership = status["membership"]
        if not (membership["settled"] and membership["quorum"]):
            return False
        if sorted(membership["alive"]) != sorted(statuses):
            return False
        owners.add(tuple(sorted((v["ip"], v["owner"]) for v in status["vips"])))
    return len(owners) == 1


def parse_probe(text: str) -> ProbeResult:
    start, total, replies = 0.0, 0, []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        if "start" in item:
            start = item["start"]
        elif "sent_total" in item:
            total = item["sent_total"]
        else:
            replies.append(Reply(item["seq"], item["sent"], item["recv"], item["node"]))
    return ProbeResult(start, total, replies)


def answers(pcap: Path, vips: tuple[str, ...] = (VIP4, VIP6)) -> list[Answer]:
    """ARP replies/announcements and Neighbor Advertisements for ``vips`` in a capture."""
    return neighbor_answers(pcap.read_bytes(), vips)
