"""Set-up shared by the end-to-end tests that run speakers against the harness's API server:
the Kubernetes objects, the relays to the API server, the BGP lab (how vipcast itself runs:
``e2e_run.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vipcast.app.lab.topology import LAN_V4, LabOptions, backend_ips, node_v4, router_config
from vipcast.lab.frr import start_frr
from vipcast.lab.netns import Netns, Topology, leftovers, wait_until

from .harness.cluster import Cluster
from .kubetools import GW, post


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
API = "/apis/vipcast.io/v1beta1"


def lab_objects(cluster: Cluster, ns: str, *, mode: str = "bgp", nodes: int = NODES,
                pool: str = POOL, per_node: int = 2,
                annotations: dict[str, str] | None = None) -> list[str]:
    """Ready Nodes, a pool ``<ns>-lab`` for ``ns``, its advertisement (``mode`` "bgp": a
    BGPPeer to the lab's router and a BGPAdvertisement; "l2": an L2Advertisement on eth0) and
    Service ``web`` (80 -> 8080) with EndpointSlice ``web-1`` listing ``per_node`` pod
    addresses of each node's backend; the node names. :func:`delete_lab_objects` undoes it."""
    names = ready_nodes(cluster, ns, nodes)
    selectors = [{"matchExpressions": [{
        "key": "kubernetes.io/hostname", "operator": "In", "values": names}]}]
    post(cluster, f"{API}/ipaddresspools", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": f"{ns}-lab"},
        "spec": {"addresses": [pool], "serviceAllocation": {"namespaces": [ns]}}})
    if mode == "bgp":
        post(cluster, f"{API}/bgppeers", {
            "apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer",
            "metadata": {"name": f"{ns}-router"},
            "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": f"{LAN_V4}.1",
                     "holdTime": "3s", "nodeSelectors": selectors}})
        post(cluster, f"{API}/bgpadvertisements", {
            "apiVersion": "vipcast.io/v1beta1", "kind": "BGPAdvertisement",
            "metadata": {"name": f"{ns}-lab"}, "spec": {"ipAddressPools": [f"{ns}-lab"]}})
    elif mode == "l2":
        post(cluster, f"{API}/l2advertisements", {
            "apiVersion": "vipcast.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": f"{ns}-lab"},
            "spec": {"ipAddressPools": [f"{ns}-lab"], "interfaces": ["eth0"],
                     "nodeSelectors": selectors}})
    else:
        raise ValueError(f"mode: {mode!r}")
    post(cluster, f"/api/v1/namespaces/{ns}/services", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": ns, "annotations": annotations or {}},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
                 "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                            "targetPort": 8080}]}})
    post(cluster, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip4], "nodeName": names[i - 1],
                       "conditions": {"ready": True}}
                      for i in range(1, nodes + 1) for ip4, _ in backend_ips(i)[:per_node]],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    return names


def delete_lab_objects(cluster: Cluster, ns: str, names: list[str]) -> None:
    """What :func:`lab_objects` made, and the speakers' NodeAnnouncements (stop them first)."""
    for path in (f"/api/v1/namespaces/{ns}/services/web",
                 f"{API}/bgppeers/{ns}-router", f"{API}/bgpadvertisements/{ns}-lab",
                 f"{API}/l2advertisements/{ns}-lab", f"{API}/ipaddresspools/{ns}-lab",
                 *(f"/api/v1/nodes/{n}" for n in names),
                 *(f"{API}/nodeannouncements/{n}" for n in names)):
        cluster.request("DELETE", path)


class ApiRelay:
    """The API server for processes in lab namespaces. It listens on the root namespace's
    loopback, which node namespaces cannot reach: a relay in the root namespace exposes it on
    a unix socket in ``workdir``, and :meth:`into` starts a relay inside a node namespace that
    listens on the node's own 127.0.0.1:``API_PORT`` and forwards to that socket. Nothing is
    added to the root namespace's network. ``kubeconfig`` (the API server as it is) and
    ``node_kubeconfig`` (through the node's relay) are readable by the image's user."""

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.sock = workdir / "api.sock"
        self.log = workdir / "relay.log"
        config = json.loads(cluster.kubeconfig.read_text())
        host_port = config["clusters"][0]["cluster"]["server"].split("://", 1)[1]
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(json.dumps(config))
        config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{API_PORT}"
        self.node_kubeconfig = workdir / "node-kubeconfig"
        self.node_kubeconfig.write_text(json.dumps(config))
        for path in (self.kubeconfig, self.node_kubeconfig):
            path.chmod(0o644)
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, str(RELAY), "--listen", f"unix:{self.sock}",
                 "--connect", f"tcp:{host_port}"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        wait_until(lambda: self.sock.exists() or None, timeout=60, what=str(self.sock),
                   on_timeout=lambda: self.log.read_text()[-2000:])

    def into(self, node: Netns) -> None:
        node.spawn([sys.executable, str(RELAY), "--listen", f"tcp:127.0.0.1:{API_PORT}",
                    "--connect", f"unix:{self.sock}"], name="api-relay")

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def gateway_objects(cluster: Cluster, ns: str, gateway_class: str, host: str) -> None:
    """GatewayClass ``gateway_class`` (vipcast's controller), Gateway ``gw`` with one HTTP
    listener on port 80, and HTTPRoute ``app`` sending ``host`` to Service ``web`` port 80."""
    post(cluster, f"{GW}/gatewayclasses", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": gateway_class}, "spec": {"controllerName": "vipcast.io/gateway"}})
    post(cluster, f"{GW}/namespaces/{ns}/gateways", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": ns},
        "spec": {"gatewayClassName": gateway_class,
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    post(cluster, f"{GW}/namespaces/{ns}/httproutes", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "app", "namespace": ns},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}})


def gateway_vip(cluster: Cluster, ns: str) -> str | None:
    """Gateway ``gw``'s first address once the Gateway is Programmed; None before."""
    code, gw = cluster.request("GET", f"{GW}/namespaces/{ns}/gateways/gw")
    if code != 200:
        return None
    status = gw.get("status") or {}
    programmed = [c for c in status.get("conditions") or () if c["type"] == "Programmed"]
    addrs = [a["value"] for a in status.get("addresses") or ()]
    return addrs[0] if addrs and programmed and programmed[0]["status"] == "True" else None


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
