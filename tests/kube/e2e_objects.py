"""Set-up shared by the end-to-end tests that run speakers against the harness's API server."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vipcast.app.lab import LAN_V4, LabOptions, backend_ips, node_v4, router_config
from vipcast.lab.frr import start_frr
from vipcast.lab.netns import Netns, Topology, leftovers

from .harness.cluster import Cluster


def vipcast_argv() -> list[str]:
    return [sys.executable, "-m", "vipcast.cli.main"]


def post(cluster: Cluster, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST an object; it must be created."""
    code, out = cluster.request("POST", path, body)
    assert code == 201, (path, out)
    assert isinstance(out, dict)
    return out


def ready_nodes(cluster: Cluster, ns: str, count: int) -> list[str]:
    """``count`` Ready Nodes ``<ns>-n<i>`` with the lab's InternalIPs; their names."""
    names = [f"{ns}-n{i}" for i in range(1, count + 1)]
    for i, name in enumerate(names, start=1):
        node = post(cluster, "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
        node["status"] = {"conditions": [{"type": "Ready", "status": "True"}],
                          "addresses": [{"type": "InternalIP", "address": node_v4(i)}]}
        code, out = cluster.request("PUT", f"/api/v1/nodes/{name}/status", node)
        assert code == 200, out
    return names


RELAY = Path(__file__).with_name("relay.py")
NODES = 2
POOL = "192.0.2.64/28"
API_PORT = 6443  # inside each node namespace




def lab_objects(cluster: Cluster, ns: str) -> list[str]:
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


def lb_ingress(cluster: Cluster, ns: str, name: str = "web") -> str | None:
    """The first address in the Service's ``status.loadBalancer.ingress``, if any."""
    code, svc = cluster.request("GET", f"/api/v1/namespaces/{ns}/services/{name}")
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


@contextlib.contextmanager
def kube_lab_topology(tag: str) -> Iterator[KubeLab]:
    """The lab of the Kubernetes end-to-end tests in namespaces ``vc-<pid>-<tag>-*``."""
    # not pytest's tmp_path: FRR drops to the frr user, which must reach its directory
    workdir = Path(tempfile.mkdtemp(prefix=f"vc-{tag}-"))
    workdir.chmod(0o755)
    prefix = f"vc-{os.getpid()}-{tag}"
    topo = Topology(prefix, workdir=workdir, keep_workdir=True)
    try:
        lab = KubeLab(topo, workdir)
        lab.build()
        yield lab
    finally:
        topo.close()
        shutil.rmtree(workdir, ignore_errors=True)
        assert not leftovers(prefix)
