"""End to end on Kubernetes objects: the controller allocates from the API server, ``vipcast
speaker`` on two lab nodes (in network namespaces) announces the VIP to FRR, and a client's
requests through the router reach the backends.

Topology (namespaces ``vc-<pid>-k8e-*``): client ── router (FRR, AS 64512) ── lan bridge ── n1,
n2 (each a speaker + one HTTP backend serving its two pod addresses). The API server (harness)
listens on the root namespace's loopback, which the node namespaces cannot reach: a relay
in the root namespace exposes it on a unix socket, and a relay inside each node namespace
listens on the node's own 127.0.0.1 and forwards to that socket (``relay.py``). Nothing is
added to the root namespace's network.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vipcast.app.demo import send
from vipcast.app.lab import (
    LAN_V4,
    LabOptions,
    backend_ips,
    node_v4,
    router_config,
)
from vipcast.lab.frr import start_frr
from vipcast.lab.netns import Netns, Topology, leftovers, wait_until

from .e2e_objects import post, ready_nodes, vipcast_argv
from .harness.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.slow]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)

RELAY = Path(__file__).with_name("relay.py")
NODES = 2
POOL = "192.0.2.64/28"
API_PORT = 6443  # inside each node namespace




def _objects(cluster: Cluster, ns: str) -> list[str]:
    """Nodes, config and a Service with EndpointSlices; the node names."""
    names = ready_nodes(cluster, ns, NODES)
    api = "/apis/vipcast.io/v1beta1"
    post(cluster, f"{api}/ipaddresspools", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": f"{ns}-lab"},
        "spec": {"addresses": [POOL], "serviceAllocation": {"namespaces": [ns]}}})
    post(cluster, f"{api}/bgppeers", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer",
        "metadata": {"name": f"{ns}-router"},
        "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": f"{LAN_V4}.1",
                 "holdTime": "3s",
                 "nodeSelectors": [{"matchExpressions": [{
                     "key": "kubernetes.io/hostname", "operator": "In", "values": names}]}]}})
    post(cluster, f"{api}/bgpadvertisements", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "BGPAdvertisement",
        "metadata": {"name": f"{ns}-to-router"},
        "spec": {"ipAddressPools": [f"{ns}-lab"]}})
    post(cluster, f"/api/v1/namespaces/{ns}/services", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
                 "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                            "targetPort": 8080}]}})
    post(cluster, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ips[0]], "nodeName": names[i - 1],
                       "conditions": {"ready": True}}
                      for i in range(1, NODES + 1) for ips in backend_ips(i)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    return names


def _ingress(cluster: Cluster, ns: str) -> str | None:
    code, svc = cluster.request("GET", f"/api/v1/namespaces/{ns}/services/web")
    if code != 200:
        return None
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return next((i["ip"] for i in ingress if i.get("ip")), None)


class KubeLab:
    def __init__(self, topo: Topology, workdir: Path) -> None:
        self.topo, self.workdir = topo, workdir
        self.opts = LabOptions(nodes=NODES, bfd=False, hold_time=3, workdir=workdir,
                               prefix=topo.prefix)

    def build(self) -> None:
        topo = self.topo
        router, lan, client = (topo.add_netns("router", router=True), topo.add_netns("lan"),
                               topo.add_netns("client"))
        lan.add_bridge("br0")
        topo.attach_to_bridge(lan, "br0", "p0", router, "eth0")
        router.add_address("eth0", f"{LAN_V4}.1/24")
        topo.veth(router, "cli0", client, "eth0")
        router.add_address("cli0", "203.0.113.1/24")
        client.add_address("eth0", "203.0.113.10/24")
        client.add_default_route("203.0.113.1")
        router.sysctl("net.ipv4.fib_multipath_hash_policy", 1)
        for i in range(1, NODES + 1):
            node = topo.add_netns(f"n{i}", router=True)
            topo.attach_to_bridge(lan, "br0", f"p{i}", node, "eth0")
            node.add_address("eth0", f"{node_v4(i)}/24")
            node.add_default_route(f"{LAN_V4}.1")
            for ip4, _ in backend_ips(i):
                node.add_address("lo", f"{ip4}/32")
            for j in range(1, NODES + 1):
                if j != i:
                    node.add_route(f"10.244.{j}.0/24", via=node_v4(j))
            node.spawn([sys.executable, "-m", "vipcast.lab.workload", "serve", "--host", "",
                        "--port", "8080", "--name", f"n{i}-b", "--node", f"n{i}"],
                       name="backend")
        # FRR's IPv6 neighbors stay idle: this lab is IPv4 only
        self.frr = start_frr(router, router_config(self.opts), self.workdir / "frr")

    def node(self, i: int) -> Netns:
        return self.topo[f"n{i}"]


@pytest.fixture
def kube_lab(kube_cluster: Cluster) -> Iterator[KubeLab]:
    # not pytest's tmp_path: FRR drops to the frr user, which must reach its directory
    workdir = Path(tempfile.mkdtemp(prefix="vc-k8e-"))
    workdir.chmod(0o755)
    prefix = f"vc-{os.getpid()}-k8e"
    topo = Topology(prefix, workdir=workdir, keep_workdir=True)
    try:
        lab = KubeLab(topo, workdir)
        lab.build()
        yield lab
    finally:
        topo.close()
        shutil.rmtree(workdir, ignore_errors=True)
        assert not leftovers(prefix)


def _wait_file(path: Path, timeout: float = 10) -> None:
    wait_until(lambda: path.exists() or None, timeout=timeout, what=f"{path}")


def test_speaker_fed_by_api_announces_to_frr_and_traffic_flows(
    vipcast_crds: Cluster, namespace: str, kube_lab: KubeLab
) -> None:
    cluster, lab, work = vipcast_crds, kube_lab, kube_lab.workdir
    names = _objects(cluster, namespace)
    server = json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    host_port = server.split("://", 1)[1]
    sock = work / "api.sock"
    node_kubeconfig = work / "node-kubeconfig"
    config = json.loads(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{API_PORT}"
    node_kubeconfig.write_text(json.dumps(config))
    root: list[subprocess.Popen[bytes]] = []
    logs = {name: work / f"{name}.log" for name in ("relay", "controller")}
    try:
        with logs["relay"].open("ab") as log:
            root.append(subprocess.Popen(
                [sys.executable, str(RELAY), "--listen", f"unix:{sock}",
                 "--connect", f"tcp:{host_port}"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL))
        with logs["controller"].open("ab") as log:
            root.append(subprocess.Popen(
                [*vipcast_argv(), "controller", "--kubeconfig", str(cluster.kubeconfig),
                 "--namespace", namespace, "--identity", "e2e", "--lease-duration", "2"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        _wait_file(sock)
        for i in range(1, NODES + 1):
            node = lab.node(i)
            node.spawn([sys.executable, str(RELAY), "--listen", f"tcp:127.0.0.1:{API_PORT}",
                        "--connect", f"unix:{sock}"], name="api-relay")
            node.spawn([*vipcast_argv(), "speaker", "--node", names[i - 1],
                        "--kubeconfig", str(node_kubeconfig),
                        "--metrics", "127.0.0.1:9470",
                        "--state-dir", str(work / f"state-n{i}")], name="speaker")

        def report() -> str:
            text = lab.topo.logs()
            for path in logs.values():
                text += f"\n----- {path.name}\n{path.read_text()[-3000:]}"
            return text

        vip = wait_until(lambda: _ingress(cluster, namespace), timeout=60,
                         what="the controller's address in Service status", on_timeout=report)
        assert vip.startswith("192.0.2.")
        lab.frr.wait_established(node_v4(1), node_v4(2), timeout=60)

        def gateways() -> tuple[str, ...] | None:
            route = lab.topo["router"].route(f"{vip}/32")
            return route.gateways if route and len(route.gateways) == NODES else None

        hops = wait_until(gateways, timeout=60, what=f"{NODES} next hops for {vip}",
                          on_timeout=report)
        assert set(hops) == {node_v4(i) for i in range(1, NODES + 1)}
        samples = send(lab.topo["client"], f"http://{vip}/", 60)
        ok = [s for s in samples if s.ok]
        assert len(ok) >= 55, (len(ok), [s.error for s in samples if not s.ok][:5])
        assert {s.node for s in ok} <= {"n1", "n2"}
        assert len({s.backend for s in ok}) >= 1

        # the Service goes away: both speakers withdraw the route
        code, _ = cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/services/web")
        assert code in (200, 202)
        lab.topo["router"].wait_no_route(f"{vip}/32", timeout=60)  # fails after 60 s
    finally:
        for proc in root:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in root:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        api = "/apis/vipcast.io/v1beta1"
        for path in (f"{api}/bgppeers/{namespace}-router",
                     f"{api}/bgpadvertisements/{namespace}-to-router",
                     f"{api}/ipaddresspools/{namespace}-lab",
                     *(f"/api/v1/nodes/{n}" for n in names)):
            cluster.request("DELETE", path)
