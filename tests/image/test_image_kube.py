"""The image's roles against the test API server (``tests/kube/harness``): the controller and
the webhook containers as the chart runs them (non-root, read-only root, no capabilities), and
speaker containers in the lab's node namespaces carrying a VIP from the client to a backend.

Networking: the controller and webhook containers use ``--network host`` (the API server and
its webhook call are on the root namespace's loopback; host networking changes nothing there,
unlike podman's default bridge, which is never used). Each speaker container joins a lab
node's namespace (``--network ns:/run/netns/<node>``) with NET_ADMIN and NET_RAW only, and
reaches the API server through the same unix-socket relays as ``tests/kube/test_e2e_lab.py``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kube.e2e_objects import (
    API_PORT,
    NODES,
    RELAY,
    KubeLab,
    kube_lab_topology,
    lab_objects,
    lb_ingress,
    post,
)
from kube.harness.cluster import Cluster
from vipcast.app.demo import send
from vipcast.app.lab import node_v4
from vipcast.lab.netns import wait_until

from .conftest import Image

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the containers' non-root user (65532) can read (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="vc-img-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _kubeconfig(cluster: Cluster, out: Path, server: str | None = None) -> Path:
    config = json.loads(cluster.kubeconfig.read_text())
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    out.write_text(json.dumps(config))
    out.chmod(0o644)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _name(role: str) -> str:
    return f"vc-{os.getpid()}-img-{role}"


def _controller(image: Image, kubeconfig: Path, ns: str) -> str:
    return image.start(_name("controller"), [
        "controller", "--kubeconfig", "/kube/config", "--namespace", ns,
        "--identity", "image-test", "--lease-duration", "2"],
        "--network", "host", "-v", f"{kubeconfig}:/kube/config:ro")


def test_controller_and_webhook_containers_against_the_api_server(
    image: Image, vipcast_crds: Cluster, namespace: str, shared_dir: Path
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed (the webhook's certificate)")
    cluster, ns = vipcast_crds, namespace
    kubeconfig = _kubeconfig(cluster, shared_dir / "kubeconfig")
    cert, key = shared_dir / "tls.crt", shared_dir / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    key.chmod(0o644)  # read by the container's user 65532
    port = _free_port()
    api = "/apis/vipcast.io/v1beta1"
    vwc = f"vipcast-image-{ns}"
    started: list[str] = []
    try:
        started.append(_controller(image, kubeconfig, ns))
        started.append(image.start(_name("webhook"), [
            "kube", "webhook", "--kubeconfig", "/kube/config", "--tls-cert", "/certs/tls.crt",
            "--tls-key", "/certs/tls.key", "--listen", f"127.0.0.1:{port}"],
            "--network", "host", "-v", f"{kubeconfig}:/kube/config:ro",
            "-v", f"{shared_dir}:/certs:ro"))

        def report() -> str:
            return "\n".join(f"----- {n}\n{image.logs(n)}" for n in started)

        # the controller: an address from the pool into the Service's status
        post(cluster, f"{api}/ipaddresspools", {
            "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": f"{ns}-a"},
            "spec": {"addresses": ["198.18.7.0/28"], "serviceAllocation": {"namespaces": [ns]}}})
        post(cluster, f"/api/v1/namespaces/{ns}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}})
        vip = wait_until(lambda: lb_ingress(cluster, ns, "web"), timeout=60,
                         what="the controller container's address in Service status",
                         on_timeout=report)
        assert vip.startswith("198.18.7."), vip

        # the webhook: the API server calls it and an overlapping pool is denied
        post(cluster, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration", "metadata": {"name": vwc},
            "webhooks": [{
                "name": "validate.vipcast.io",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/validate",
                                 "caBundle": base64.b64encode(cert.read_bytes()).decode()},
                "rules": [{"apiGroups": ["vipcast.io"], "apiVersions": ["v1beta1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["*"]}],
                "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail", "timeoutSeconds": 5}]})
        overlapping = {
            "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": f"{ns}-b"},
            "spec": {"addresses": ["198.18.7.8/29"]}}

        def denied() -> str | None:
            code, body = cluster.request("POST", f"{api}/ipaddresspools", overlapping)
            if code == 201:  # the API server has not picked up the webhook yet
                cluster.request("DELETE", f"{api}/ipaddresspools/{ns}-b")
                return None
            message = str(body.get("message")) if isinstance(body, dict) else str(body)
            if "failed calling webhook" in message:  # the container is not listening yet
                return None
            return message

        message = wait_until(denied, timeout=60, interval=0.5,
                             what="the webhook container's denial", on_timeout=report)
        assert "overlap" in message, (message, report())
    finally:
        for name in started:
            image.stop(name)
        cluster.request("DELETE",
                        f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{vwc}")
        for pool in ("a", "b"):
            cluster.request("DELETE", f"{api}/ipaddresspools/{ns}-{pool}")


@pytest.fixture
def kube_lab(image: Image, kube_cluster: Cluster) -> Iterator[KubeLab]:
    if shutil.which("vtysh") is None and not Path("/usr/lib/frr/bgpd").exists():
        pytest.skip("FRR not installed (scripts/setup.sh installs it)")
    with kube_lab_topology("img") as lab:
        yield lab


def test_speaker_containers_carry_a_vip_from_the_client_to_a_backend(
    image: Image, vipcast_crds: Cluster, namespace: str, kube_lab: KubeLab, shared_dir: Path
) -> None:
    """The e2e of tests/kube/test_e2e_lab.py with every vipcast process from the image."""
    cluster, lab, ns = vipcast_crds, kube_lab, namespace
    names = lab_objects(cluster, ns)
    host_port = cluster.url.split("://", 1)[1]
    sock = shared_dir / "api.sock"
    kubeconfig = _kubeconfig(cluster, shared_dir / "kubeconfig")
    node_kubeconfig = _kubeconfig(cluster, shared_dir / "node-kubeconfig",
                                  f"http://127.0.0.1:{API_PORT}")
    relay_log = shared_dir / "relay.log"
    started: list[str] = []
    relay: subprocess.Popen[bytes] | None = None
    try:
        with relay_log.open("ab") as log:
            relay = subprocess.Popen(
                [sys.executable, str(RELAY), "--listen", f"unix:{sock}",
                 "--connect", f"tcp:{host_port}"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        started.append(_controller(image, kubeconfig, ns))
        wait_until(lambda: sock.exists() or None, timeout=10, what=str(sock))
        for i in range(1, NODES + 1):
            node = lab.node(i)
            node.spawn([sys.executable, str(RELAY), "--listen", f"tcp:127.0.0.1:{API_PORT}",
                        "--connect", f"unix:{sock}"], name="api-relay")
            state = shared_dir / f"state-n{i}"
            state.mkdir()
            # as the chart's speaker: user 0, NET_ADMIN and NET_RAW only, read-only root
            started.append(image.start(_name(f"speaker-n{i}"), [
                "speaker", "--node", names[i - 1], "--kubeconfig", "/kube/config",
                "--metrics", "127.0.0.1:9470", "--state-dir", "/state"],
                "--network", f"ns:/run/netns/{node.name}", "--user", "0",
                "--cap-add", "NET_ADMIN,NET_RAW",
                "-v", f"{node_kubeconfig}:/kube/config:ro", "-v", f"{state}:/state"))

        def report() -> str:
            text = lab.topo.logs()
            for name in started:
                text += f"\n----- {name}\n{image.logs(name)}"
            return text + f"\n----- relay\n{relay_log.read_text()[-2000:]}"

        vip = wait_until(lambda: lb_ingress(cluster, ns), timeout=60,
                         what="the controller container's address in Service status",
                         on_timeout=report)
        lab.frr.wait_established(node_v4(1), node_v4(2), timeout=60)

        def gateways() -> tuple[str, ...] | None:
            route = lab.topo["router"].route(f"{vip}/32")
            return route.gateways if route and len(route.gateways) == NODES else None

        hops = wait_until(gateways, timeout=60, what=f"{NODES} next hops for {vip}",
                          on_timeout=report)
        assert set(hops) == {node_v4(i) for i in range(1, NODES + 1)}
        samples = send(lab.topo["client"], f"http://{vip}/", 60)
        ok = [s for s in samples if s.ok]
        assert len(ok) >= 55, (len(ok), [s.error for s in samples if not s.ok][:5], report())
        assert {s.node for s in ok} <= {"n1", "n2"}

        # the speakers' nftables rules are in the node namespaces, not the root one
        rules = lab.node(1).run(["nft", "list", "ruleset"]).stdout
        assert vip in rules, rules

        code, _ = cluster.request("DELETE", f"/api/v1/namespaces/{ns}/services/web")
        assert code in (200, 202)
        lab.topo["router"].wait_no_route(f"{vip}/32", timeout=60)
    finally:
        for name in started:
            image.stop(name)
        if relay is not None and relay.poll() is None:
            os.kill(relay.pid, signal.SIGTERM)
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(5)
        api = "/apis/vipcast.io/v1beta1"
        for path in (f"{api}/bgppeers/{ns}-router", f"{api}/bgpadvertisements/{ns}-to-router",
                     f"{api}/ipaddresspools/{ns}-lab", *(f"/api/v1/nodes/{n}" for n in names)):
            cluster.request("DELETE", path)
