"""End to end on Kubernetes objects: the controller allocates from the API server, ``vipcast
speaker`` on two lab nodes (in network namespaces) announces the VIP to FRR, and a client's
requests through the router reach the backends. The speakers' node liveness takes its members
from the API's Node objects, and a speaker whose node loses power is declared dead by the other.

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
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vipcast.app.demo import send
from vipcast.app.lab import (
    node_v4,
)
from vipcast.lab.netns import wait_until

from .e2e_objects import (
    API_PORT,
    NODES,
    RELAY,
    KubeLab,
    kube_lab_topology,
    lab_objects,
    lb_ingress,
    vipcast_argv,
)
from .harness.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.slow]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)

@pytest.fixture
def kube_lab(kube_cluster: Cluster) -> Iterator[KubeLab]:
    with kube_lab_topology("k8e") as lab:
        yield lab


_STATUS = ("import urllib.request; print(urllib.request.urlopen("
           "'http://127.0.0.1:9470/status', timeout=5).read().decode())")


def _wait_file(path: Path, timeout: float = 10) -> None:
    wait_until(lambda: path.exists() or None, timeout=timeout, what=f"{path}")


def test_speaker_fed_by_api_announces_to_frr_and_traffic_flows(
    vipcast_crds: Cluster, namespace: str, kube_lab: KubeLab
) -> None:
    cluster, lab, work = vipcast_crds, kube_lab, kube_lab.workdir
    names = lab_objects(cluster, namespace)
    server = json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    host_port = server.split("://", 1)[1]
    sock = work / "api.sock"
    node_kubeconfig = work / "node-kubeconfig"
    config = json.loads(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{API_PORT}"
    node_kubeconfig.write_text(json.dumps(config))
    root: list[subprocess.Popen[bytes]] = []
    speakers = []
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
            speakers.append(node.spawn(
                [*vipcast_argv(), "speaker", "--node", names[i - 1],
                 "--kubeconfig", str(node_kubeconfig), "--metrics", "127.0.0.1:9470",
                 "--state-dir", str(work / f"state-n{i}")], name="speaker",
                env={**os.environ, "VIPCAST_MEMBERSHIP_KEY": "e2e-membership-key"}))

        def report() -> str:
            text = lab.topo.logs()
            for path in logs.values():
                text += f"\n----- {path.name}\n{path.read_text()[-3000:]}"
            return text

        vip = wait_until(lambda: lb_ingress(cluster, namespace), timeout=60,
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

        # node liveness: the members are the API's Nodes (the speakers got no list); n2 loses
        # power (cable pulled, speaker SIGKILLed) and n1's speaker declares it dead
        def liveness(i: int) -> dict[str, object]:
            out = lab.node(i).run([sys.executable, "-c", _STATUS]).stdout
            section: dict[str, object] = json.loads(out).get("liveness", {})
            return section

        wait_until(lambda: set(liveness(1).get("alive", ())) == set(names[:NODES]) or None,
                   timeout=60, what="n1's speaker sees both nodes alive", on_timeout=report)
        lab.topo["lan"].set_link("p2", False)
        os.killpg(speakers[1].pid, signal.SIGKILL)
        wait_until(lambda: liveness(1).get("dead") == [names[1]] or None, timeout=30,
                   what=f"n1's speaker declares {names[1]} dead", on_timeout=report)
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
