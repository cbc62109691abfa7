"""End to end, the L7 gateway on Kubernetes objects (issue 12): a Gateway and an HTTPRoute in
the API server; ``vipcast controller --gateway-api`` allocates the Gateway's address from the
pool (beside a Service's) and commits it; ``vipcast speaker --gateway-workdir`` on two lab
nodes runs Envoy, feeds it over xDS and announces the Gateway VIP to FRR only once its Envoy
serves; a client's requests through the router reach the pods through Envoy, the real client
in ``X-Forwarded-For``. A route Envoy refuses (NACK): both speakers report it, the Gateway's
``Programmed`` turns False (``Invalid``, naming both nodes and Envoy's error) with a Warning
Event while the last good routes serve; fixed, it is True again. An Ingress without a class
under vipcast's default IngressClass gets an address in its status, both speakers announce it,
the client reaches the pods through it; its class changed away, the status is cleared and the
VIP withdrawn. The Gateway deleted: both speakers withdraw its VIP.

The lab of ``test_e2e_lab.py`` (namespaces ``vc-<pid>-k8g-*``, the API server relayed into
each node namespace); real apiextensions-apiserver with the upstream Gateway API CRDs, real
FRR, real Envoy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from lab_fixtures import require_envoy
from vipcast.app.lab.gateway import gateway_state
from vipcast.app.lab.topology import backend_ips, node_v4
from vipcast.lab.netns import wait_until

from .e2e_objects import (
    API_PORT,
    NODES,
    RELAY,
    KubeLab,
    delete_lab_objects,
    gateway_objects,
    gateway_vip,
    kube_lab_topology,
    lab_objects,
    lb_ingress,
)
from .e2e_run import vipcast_argv
from .harness.cluster import Cluster
from .kubetools import GW, post

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.slow]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)

NET = "/apis/networking.k8s.io/v1"
STATUS_PORT = 9470
HOST = "app.lab"


@pytest.fixture
def kube_lab(gateway_api: Cluster) -> Any:
    require_envoy()
    with kube_lab_topology("k8g") as lab:
        yield lab


def test_gateway_vip_through_envoy_on_speakers(gateway_api: Cluster, namespace: str,
                                               kube_lab: KubeLab) -> None:
    cluster, lab, work, ns = gateway_api, kube_lab, kube_lab.workdir, namespace
    names = lab_objects(cluster, ns)  # nodes, pool, peer, advertisement, Service web + slices
    gateway_objects(cluster, ns, f"e2e-{ns}", HOST)

    host_port = cluster.url.split("://", 1)[1]
    sock = work / "api.sock"
    node_kubeconfig = work / "node-kubeconfig"
    config = json.loads(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{API_PORT}"
    node_kubeconfig.write_text(json.dumps(config))
    root: list[subprocess.Popen[bytes]] = []
    logs = {name: work / f"{name}.log" for name in ("relay", "controller")}

    def report() -> str:
        text = lab.topo.logs()
        for path in logs.values():
            text += f"\n----- {path.name}\n{path.read_text()[-3000:]}"
        for i in range(1, NODES + 1):
            text += f"\n----- n{i} gateway\n{gateway_state(lab.node(i), STATUS_PORT)}"
            envoy_log = work / f"gw-n{i}" / "envoy.log"
            if envoy_log.exists():
                text += f"\n----- n{i} envoy.log\n{envoy_log.read_text()[-2000:]}"
        return text

    try:
        with logs["relay"].open("ab") as log:
            root.append(subprocess.Popen(
                [sys.executable, str(RELAY), "--listen", f"unix:{sock}",
                 "--connect", f"tcp:{host_port}"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL))
        with logs["controller"].open("ab") as log:
            root.append(subprocess.Popen(
                [*vipcast_argv(), "controller", "--kubeconfig", str(cluster.kubeconfig),
                 "--namespace", ns, "--identity", "e2e-gw", "--lease-duration", "2",
                 "--gateway-api"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        wait_until(lambda: sock.exists() or None, timeout=60, what=str(sock))
        for i in range(1, NODES + 1):
            node = lab.node(i)
            node.spawn([sys.executable, str(RELAY), "--listen", f"tcp:127.0.0.1:{API_PORT}",
                        "--connect", f"unix:{sock}"], name="api-relay")
            node.spawn([*vipcast_argv(), "speaker", "--node", names[i - 1],
                        "--kubeconfig", str(node_kubeconfig),
                        "--metrics", f"127.0.0.1:{STATUS_PORT}",
                        "--state-dir", str(work / f"state-n{i}"),
                        "--gateway-workdir", str(work / f"gw-n{i}")], name="speaker")

        # one allocation for the Service and the Gateway: two different pool addresses
        vip = wait_until(lambda: gateway_vip(cluster, ns), timeout=90,
                         what="the Gateway's address committed and Programmed",
                         on_timeout=report)
        svc_ip = wait_until(lambda: lb_ingress(cluster, ns), timeout=60,
                            what="the Service's address", on_timeout=report)
        assert vip.startswith("192.0.2.") and vip != svc_ip

        def hops() -> tuple[str, ...] | None:
            route = lab.topo["router"].route(f"{vip}/32")
            return route.gateways if route and len(route.gateways) == NODES else None

        got = wait_until(hops, timeout=90, what=f"{NODES} next hops for the Gateway VIP {vip}",
                         on_timeout=report)
        assert set(got) == {node_v4(i) for i in range(1, NODES + 1)}
        # every speaker's Envoy serves (the VIP is announced only then). gateway_state gives {}
        # when /status does not answer within its 2 s (a speaker at nice 15 on a loaded
        # machine): ask again until it answers, then that answer must say serving
        for i in range(1, NODES + 1):
            state = wait_until(lambda i=i: gateway_state(lab.node(i), STATUS_PORT) or None,
                               timeout=60, what=f"n{i}'s /status", on_timeout=report)
            assert state["envoy"]["serving"], (i, state)

        seen: list[dict[str, Any]] = []
        for _ in range(20):
            out = lab.topo["client"].run(
                ["curl", "-sf", "--max-time", "5", "-H", f"Host: {HOST}", f"http://{vip}/x"],
                check=False, timeout=15)
            assert out.returncode == 0, (out.stderr, report())
            seen.append(json.loads(out.stdout))
        # through Envoy (the backend's peer is a node, not the client) to the pod addresses,
        # the real client in X-Forwarded-For
        assert {s["forwarded"] for s in seen} == {"203.0.113.10"}
        pods = {ip4 for i in range(1, NODES + 1) for ip4, _ in backend_ips(i)}
        assert {s["pod"] for s in seen} <= pods and len({s["pod"] for s in seen}) > 1
        assert all(s["client"] != "203.0.113.10" for s in seen)
        # a host no route names: Envoy answers 404 itself
        out = lab.topo["client"].run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
             "-H", "Host: other.lab", f"http://{vip}/"], check=False, timeout=15)
        assert out.stdout.strip() == "404"

        # Envoy refuses a route (\Z passes Python's re, and so vipcast's checks, but RE2 has
        # no \Z): both speakers report the NACK in their NodeAnnouncement, the controller
        # says so on the Gateway (Programmed False, Invalid, naming the nodes and Envoy's
        # error) with a Warning Event; the last good routes keep serving; fixed, it is True
        route_path = f"{GW}/namespaces/{ns}/httproutes/app"
        code, route = cluster.request("GET", route_path)
        assert code == 200, route
        good_rules = route["spec"]["rules"]
        route["spec"]["rules"] = [{"matches": [{"path": {"type": "RegularExpression",
                                                         "value": "/x\\Z"}}],
                                   "backendRefs": [{"name": "web", "port": 80}]}, *good_rules]
        code, body = cluster.request("PUT", route_path, route)
        assert code == 200, body

        def programmed() -> tuple[str, str, str] | None:
            code, gw = cluster.request("GET", f"{GW}/namespaces/{ns}/gateways/gw")
            conds = (gw.get("status") or {}).get("conditions") or () if code == 200 else ()
            found = [c for c in conds if c["type"] == "Programmed"]
            return (found[0]["status"], found[0]["reason"], found[0].get("message", "")) \
                if found else None

        every = f"Envoy on nodes {', '.join(sorted(names[:NODES]))} refused the configuration"
        refused = wait_until(lambda: (p := programmed()) and every in p[2] and p, timeout=60,
                             what="both nodes' NACK on the Gateway's status",
                             on_timeout=report)
        assert refused[:2] == ("False", "Invalid"), refused
        assert "RouteConfiguration: invalid escape sequence" in refused[2], refused
        out = lab.topo["client"].run(
            ["curl", "-sf", "--max-time", "5", "-H", f"Host: {HOST}", f"http://{vip}/x"],
            check=False, timeout=15)
        assert out.returncode == 0, (out.stderr, report())  # the last good routes serve
        # the controller (another process) writes the status, THEN the Event: wait for it

        def warned() -> bool:
            _, events = cluster.request("GET", f"/api/v1/namespaces/{ns}/events")
            return any(e["involvedObject"].get("name") == "gw" and e["type"] == "Warning"
                       and e["reason"] == "Invalid" for e in events.get("items") or ())

        wait_until(warned, timeout=30, what="the Warning Event Invalid on the Gateway",
                   on_timeout=report)
        code, route = cluster.request("GET", route_path)
        route["spec"]["rules"] = good_rules
        code, body = cluster.request("PUT", route_path, route)
        assert code == 200, body
        wait_until(lambda: (p := programmed()) and p[0] == "True", timeout=60,
                   what="Programmed again once Envoy accepted", on_timeout=report)

        # Ingresses: vipcast's IngressClass is the default, so a class-less Ingress is ours;
        # the Ingress Gateway (in vipcast-system for the pools' namespace rules) gets an
        # address, committed to the Ingress's status, announced by both speakers
        pool_path = f"/apis/vipcast.io/v1beta1/ipaddresspools/{ns}-lab"
        code, pool = cluster.request("GET", pool_path)
        assert code == 200, pool
        pool["spec"]["serviceAllocation"]["namespaces"].append("vipcast-system")
        code, body = cluster.request("PUT", pool_path, pool)
        assert code == 200, body
        post(cluster, f"{NET}/ingressclasses", {
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": f"e2e-{ns}", "annotations": {
                "ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "vipcast.io/ingress-controller"}})
        post(cluster, f"{NET}/namespaces/{ns}/ingresses", {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": ns},
            "spec": {"rules": [{"host": "shop.lab", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})

        def ingress_vip() -> str | None:
            code, ing = cluster.request("GET", f"{NET}/namespaces/{ns}/ingresses/shop")
            found = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") \
                if code == 200 else None
            return found[0]["ip"] if found else None

        ing_vip = wait_until(ingress_vip, timeout=60, what="the Ingress's address",
                             on_timeout=report)
        assert ing_vip.startswith("192.0.2.") and ing_vip not in (vip, svc_ip)

        def ing_hops() -> tuple[str, ...] | None:
            route = lab.topo["router"].route(f"{ing_vip}/32")
            return route.gateways if route and len(route.gateways) == NODES else None

        wait_until(ing_hops, timeout=90, what=f"{NODES} next hops for the Ingress VIP",
                   on_timeout=report)
        out = lab.topo["client"].run(
            ["curl", "-sf", "--max-time", "5", "-H", "Host: shop.lab", f"http://{ing_vip}/x"],
            check=False, timeout=15)
        assert out.returncode == 0, (out.stderr, report())
        assert json.loads(out.stdout)["forwarded"] == "203.0.113.10"

        # the Ingress changes class away: its status is cleared and the VIP withdrawn
        code, ing = cluster.request("GET", f"{NET}/namespaces/{ns}/ingresses/shop")
        ing["spec"]["ingressClassName"] = "nginx"
        code, body = cluster.request("PUT", f"{NET}/namespaces/{ns}/ingresses/shop", ing)
        assert code == 200, body
        wait_until(lambda: ingress_vip() is None or None, timeout=60,
                   what="the Ingress's status cleared", on_timeout=report)
        lab.topo["router"].wait_no_route(f"{ing_vip}/32", timeout=60)

        # the Gateway goes away: both speakers withdraw its VIP; the Service's stays
        code, _ = cluster.request("DELETE", f"{GW}/namespaces/{ns}/gateways/gw")
        assert code == 200
        lab.topo["router"].wait_no_route(f"{vip}/32", timeout=60)
        assert lab.topo["router"].route(f"{svc_ip}/32") is not None
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
        # the lab's objects (a BGPAdvertisement left naming a deleted pool would freeze the
        # config of every later test's controller in the shared session cluster)
        delete_lab_objects(cluster, ns, names)
        cluster.request("DELETE", f"{GW}/gatewayclasses/e2e-{ns}")
        cluster.request("DELETE", f"{NET}/ingressclasses/e2e-{ns}")
        cluster.request("DELETE", f"{NET}/namespaces/{ns}/ingresses/shop")
