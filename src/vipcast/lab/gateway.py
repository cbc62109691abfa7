"""A gateway lab in network namespaces: client -> gateway node (vipcast gateway + Envoy) ->
pods (HTTP echo backends, one address each). Used by the gateway tests, the bench and
``vipcast lab up --gateway``.

::

    client 203.0.113.10 --- 203.0.113.1 gateway 10.0.0.1 --- pods 10.0.0.11, .12, ...

The objects live in one YAML file the gateway polls; :meth:`GatewayLab.apply` rewrites it and
waits until Envoy ACKed the result (or :meth:`GatewayLab.apply_nowait` for a config Envoy
will refuse). Everything is in the topology's namespaces and work directory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from vipcast.lab.netns import Netns, Process, Topology, wait_until

CLIENT_IP = "203.0.113.10"
GATEWAY_IP = "203.0.113.1"
POD_NET = "10.0.0"
ADMIN_PORT = 19000
Doc = dict[str, Any]


def pod_ip(n: int) -> str:
    return f"{POD_NET}.{10 + n}"


class GatewayLab:
    def __init__(self, topo: Topology, *, python: str = sys.executable) -> None:
        self.topo = topo
        self.python = python
        self.client: Netns = topo.add_netns("gcl")
        self.gw: Netns = topo.add_netns("ggw", router=True)
        self.pods_ns: Netns = topo.add_netns("gpod")
        topo.veth(self.client, "eth0", self.gw, "eth0")
        topo.veth(self.gw, "eth1", self.pods_ns, "eth0")
        self.client.add_address("eth0", f"{CLIENT_IP}/24")
        self.gw.add_address("eth0", f"{GATEWAY_IP}/24")
        self.gw.add_address("eth1", f"{POD_NET}.1/24")
        self.pods_ns.add_address("eth0", f"{POD_NET}.2/24")
        self.config_dir = topo.workdir / "gateway-config"
        self.config_dir.mkdir(exist_ok=True)
        self.workdir = topo.workdir / "gateway-run"
        self.status_file = topo.workdir / "gateway-status.json"
        self.pods: dict[str, tuple[str, Process]] = {}
        self.gateway_proc: Process | None = None
        self._pod_addresses: set[str] = set()
        self._starts = 0

    # ---------------------------------------------------------------- processes

    def start_pod(self, name: str, n: int, port: int = 8080) -> str:
        ip = pod_ip(n)
        if ip not in self._pod_addresses:
            self.pods_ns.add_address("eth0", f"{ip}/24")
            self._pod_addresses.add(ip)
        self._starts += 1  # a log of its own: "ready" must be this process's
        proc = self.pods_ns.spawn([self.python, "-m", "vipcast.lab.http_echo", "--id", name,
                                   "--bind", ip, "--port", str(port)],
                                  name=f"pod-{name}-{self._starts}")
        wait_until(lambda: "ready" in proc.log_text(), timeout=30,
                   what=f"echo backend {name} started")
        self.pods[name] = (ip, proc)
        return ip

    def stop_pod(self, name: str) -> None:
        _ip, proc = self.pods.pop(name)
        proc.stop()

    def start_gateway(self, *extra: str) -> Process:
        self.gateway_proc = self.gw.spawn([
            self.python, "-m", "vipcast.cli.main", "gateway", "-c", str(self.config_dir),
            "--node", "gw", "--workdir", str(self.workdir), "--admin-port", str(ADMIN_PORT),
            "--status-file", str(self.status_file), "--poll-interval", "0.1",
            "--log-level", "INFO", *extra,
        ], name="gateway")
        self.wait(lambda s: bool(s.get("envoy", {}).get("ready")) and bool(s.get("in_sync")),
                  what="gateway ready")
        return self.gateway_proc

    # ---------------------------------------------------------------- config

    def _write(self, docs: Sequence[Doc]) -> None:
        path = self.config_dir / "objects.yaml"
        tmp = self.topo.workdir / ".objects.yaml.tmp"  # beside, not in, the watched folder
        tmp.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
        os.replace(tmp, path)

    def status(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}
        return doc

    def wait(self, pred: Callable[[dict[str, Any]], bool], *, what: str,
             timeout: float = 60.0) -> dict[str, Any]:
        got: dict[str, Any] = {}

        def check() -> bool:
            nonlocal got
            got = self.status()
            return bool(got) and pred(got)

        wait_until(check, timeout=timeout, interval=0.05, what=what,
                   on_timeout=lambda: f"last status {json.dumps(got)[:3000]}")
        return got

    def apply_nowait(self, docs: Sequence[Doc]) -> int:
        """Write the objects; returns the reload count they will be loaded as."""
        before = int(self.status().get("reloads", 0))
        self._write(docs)
        return before + 1

    def apply(self, docs: Sequence[Doc], timeout: float = 60.0) -> dict[str, Any]:
        """Write the objects and wait until Envoy ACKed every type at its new version, and no
        refusal is outstanding. (Back to a version Envoy ACKed before a NACK, the status is
        ``in_sync`` at once; the NACK's record goes when Envoy ACKs the version sent again.)"""
        want = self.apply_nowait(docs)
        if self.gateway_proc is None:
            return {}

        def synced(s: dict[str, Any]) -> bool:
            acked = s.get("acked", {})
            return (s.get("reloads", 0) >= want and bool(s.get("in_sync"))
                    and all(s["versions"].get(t) == v for t, v in acked.items())
                    and not s.get("nacked"))

        return self.wait(synced, what="config applied and ACKed", timeout=timeout)

    # ---------------------------------------------------------------- requests

    def curl(self, url: str, *args: str, timeout: float = 10.0) -> tuple[int, dict[str, str], str]:
        """curl in the client namespace: (status, response headers, body)."""
        out = self.client.run(["curl", "-sS", "-D", "-", "--max-time", str(timeout), *args, url],
                              check=False, timeout=timeout + 5)
        text = out.stdout
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        if not lines:
            raise AssertionError(f"curl {url} failed: {out.stderr}")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, body

    def get_json(self, path: str, host: str = "app.example.com", *args: str) -> Doc:
        status, _h, body = self.curl(f"http://{GATEWAY_IP}{path}", "-H", f"Host: {host}", *args)
        assert status == 200, (status, body)
        doc: Doc = json.loads(body)
        return doc


# ---------------------------------------------------------------- objects


def base_objects(listeners: Sequence[Doc] | None = None) -> list[Doc]:
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": "vipcast"}, "spec": {"controllerName": "vipcast.io/gateway"}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": "web", "namespace": "default"},
         "spec": {"gatewayClassName": "vipcast",
                  "addresses": [{"type": "IPAddress", "value": GATEWAY_IP}],
                  "listeners": list(listeners or [{"name": "http", "port": 80,
                                                   "protocol": "HTTP"}])}},
    ]


def service_objects(name: str, endpoints: Mapping[str, str], port: int = 80,
                    target: int = 8080) -> list[Doc]:
    """A Service and its EndpointSlice: endpoints maps pod address -> "ready"|"terminating"."""
    conditions = {
        "ready": {"ready": True, "serving": True, "terminating": False},
        "terminating": {"ready": False, "serving": True, "terminating": True},
    }
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": port, "targetPort": target}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": target, "protocol": "TCP"}],
         "endpoints": [{"addresses": [ip], "conditions": conditions[state], "nodeName": "gw"}
                       for ip, state in sorted(endpoints.items())]},
    ]


def http_route(name: str, rules: Sequence[Doc], hostnames: Sequence[str] = ()) -> Doc:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"parentRefs": [{"name": "web"}], "hostnames": list(hostnames),
                     "rules": list(rules)}}

