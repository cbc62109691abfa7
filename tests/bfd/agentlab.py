"""Full ``vipcast agent`` processes on the BFD ECMP lab (see :mod:`bfdecmp`).

The FRR router ``r`` and nodes ``n1``/``n2`` hang off bridge ``br0`` in ``sw``. Each node runs
the real agent (``--no-dataplane``) on one object file: a BGPPeer to the router with BFDProfile
``fast`` (the benches' 100 ms x 3; the tests pass bfdecmp's 300 ms x 5), the BGP VIP
:data:`bfdecmp.VIP` on both nodes (ECMP at the router), an L2 VIP :data:`L2_VIP` on ``eth0``
with the two nodes as members of the L2 membership, and optionally ``load`` more services
from a /18 (the "10,000 routes" load of the BFD benchmark).

Shared by ``tests/bfd/test_agent_bfd.py`` and ``bench/bfd_failover.py``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from bfdecmp import NODE_ASN, NODES, ROUTER, ROUTER_ASN, VIP

from vipcast.lab.netns import Netns, Process, Topology, wait_until

PYTHON = sys.executable
STATUS = "127.0.0.1:9473"
L2_VIP = "192.0.2.64"
LOAD_POOL = "198.18.0.0/18"
KEY = "bfd-agent-lab-membership-key-0123"
API = "vipcast.io/v1beta1"


def _service(name: str, pool: str, ip: str) -> list[dict[str, Any]]:
    """A LoadBalancer Service pinned to ``ip`` of ``pool`` and its one ready endpoint on n1."""
    meta = {"name": name, "namespace": "default",
            "annotations": {"vipcast.io/address-pool": pool, "vipcast.io/loadBalancerIPs": ip}}
    port = {"name": "http", "port": 80, "protocol": "TCP"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [port]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [port],
         "endpoints": [{"addresses": ["10.244.1.10"], "nodeName": "n1",
                        "conditions": {"ready": True}}]},
    ]  # fmt: skip


def objects(load: int = 0, extra: int = 0, bfd_interval_ms: int = 100,
            bfd_multiplier: int = 3) -> list[dict[str, Any]]:
    """The agents' objects; ``load`` services from :data:`LOAD_POOL`, ``extra`` BGP services
    more (a reload that changes something); BFDProfile ``fast`` at ``bfd_interval_ms`` x
    ``bfd_multiplier`` (the benches' 100 ms x 3 unless told)."""
    docs: list[dict[str, Any]] = [
        {"apiVersion": API, "kind": "BFDProfile", "metadata": {"name": "fast"},
         "spec": {"receiveInterval": bfd_interval_ms, "transmitInterval": bfd_interval_ms,
                  "detectMultiplier": bfd_multiplier}},
        {"apiVersion": API, "kind": "BGPPeer", "metadata": {"name": "r"},
         "spec": {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": ROUTER,
                  "holdTime": "9s", "connectTime": "1s", "bfdProfile": "fast"}},
        {"apiVersion": API, "kind": "IPAddressPool", "metadata": {"name": "bgp"},
         "spec": {"addresses": [VIP.replace("/32", "") + "/31"], "autoAssign": False}},
        {"apiVersion": API, "kind": "IPAddressPool", "metadata": {"name": "load"},
         "spec": {"addresses": [LOAD_POOL], "autoAssign": False}},
        {"apiVersion": API, "kind": "IPAddressPool", "metadata": {"name": "lan"},
         "spec": {"addresses": [f"{L2_VIP}/32"], "autoAssign": False}},
        {"apiVersion": API, "kind": "BGPAdvertisement", "metadata": {"name": "to-router"},
         "spec": {"ipAddressPools": ["bgp", "load"]}},
        {"apiVersion": API, "kind": "L2Advertisement", "metadata": {"name": "lan"},
         "spec": {"ipAddressPools": ["lan"], "interfaces": ["eth0"]}},
    ]  # fmt: skip
    for name, address in NODES.items():
        docs.append(
            {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
             "status": {"conditions": [{"type": "Ready", "status": "True"}],
                        "addresses": [{"type": "InternalIP", "address": address}]}}
        )  # fmt: skip
    docs += _service("web", "bgp", VIP.split("/")[0])
    docs += _service("lan-web", "lan", L2_VIP)
    if extra:
        second = str(IPv4Network(VIP.replace("/32", "/31"), strict=False)[1])
        docs += _service("web-2", "bgp", second)
    hosts = IPv4Network(LOAD_POOL)
    for i in range(load):
        docs += _service(f"load-{i}", "load", str(hosts[i + 1]))
    return docs


def write_config(path: Path, load: int = 0, extra: int = 0, bfd_interval_ms: int = 100,
                 bfd_multiplier: int = 3) -> None:
    """One multi-document file (JSON flow documents are YAML), replaced atomically."""
    docs = objects(load, extra, bfd_interval_ms, bfd_multiplier)
    text = "\n---\n".join(json.dumps(doc) for doc in docs) + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@dataclass
class AgentNode:
    """One ``vipcast agent`` process in a node namespace."""

    name: str
    ns: Netns
    proc: Process

    @classmethod
    def start(cls, topo: Topology, ns: Netns, name: str, config: Path,
              env: dict[str, str] | None = None) -> AgentNode:
        """Start the agent; ``env`` replaces the environment (a bench runs another tree's
        sources with its own PYTHONPATH)."""
        key = topo.workdir / "membership.key"
        if not key.exists():
            key.write_text(KEY)
        proc = topo.spawn(
            ns,
            [PYTHON, "-m", "vipcast.cli.main", "agent", "--config", str(config),
             "--node", name, "--metrics-address", STATUS, "--no-dataplane",
             "--membership-key-file", str(key), "--poll-interval", "0.3",
             "--state-dir", str(topo.workdir / f"state-{name}")],
            name=f"agent-{name}", env=env,
        )  # fmt: skip
        return cls(name, ns, proc)

    def get(self, path: str, timeout: float = 10.0) -> str:
        """GET ``path`` of the agent's endpoint, from inside its namespace."""
        code = (
            "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
            f"'http://{STATUS}{path}', timeout={timeout}).read().decode())"
        )
        return self.ns.run([PYTHON, "-c", code], timeout=timeout + 20).stdout

    def status(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.get("/status"))
        return document

    def try_status(self) -> dict[str, Any]:
        try:
            return self.status()
        except Exception:  # not listening yet, or mid-restart
            return {}

    def cli(self, *args: str) -> str:
        """``vipcast ARGS`` in the node's namespace (wide terminal, no colour codes)."""
        run = self.ns.run(
            [PYTHON, "-m", "vipcast.cli.main", *args],
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
            timeout=60,
        )
        return run.stdout

    def bfd(self) -> dict[str, Any]:
        section: dict[str, Any] = self.try_status().get("bfd") or {}
        return section.get("r") or {}

    def bgp_state(self) -> str:
        peers = self.try_status().get("peers") or []
        return str(peers[0]["state"]) if peers else ""


def fetch(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body


def wait_agents_up(nodes: list[AgentNode], timeout: float = 120.0) -> None:
    """Every agent's BGP session Established and its BFD session Up."""

    def up() -> bool:
        for node in nodes:
            if not node.proc.alive():
                raise RuntimeError(f"agent {node.name} exited:\n{node.proc.log_text()[-3000:]}")
            if node.bgp_state() != "Established" or node.bfd().get("state") != "UP":
                return False
        return True

    wait_until(up, timeout=timeout, interval=0.3, what="agents Established with BFD Up")
