"""The image's controller and webhook containers against the test API server
(``tests/kube/harness``), as the chart runs them (non-root, read-only root, no capabilities).
The speaker containers carrying a VIP from the lab's client to a backend are the Kubernetes
end-to-end tests themselves (``tests/kube/test_e2e_lab.py`` and ``test_e2e_l2.py`` run the
image: ``tests/kube/e2e_run.py``).

Networking: both containers use ``--network host`` (the API server and its webhook call are
on the root namespace's loopback; host networking changes nothing there, unlike podman's
default bridge, which is never used).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kube.e2e_objects import lb_ingress
from kube.e2e_run import Runner
from kube.harness.cluster import Cluster, free_loopback_port
from kube.kubetools import post
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


def _name(role: str) -> str:
    return f"vc-{os.getpid()}-img-{role}"


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
    # the webhook container binds it seconds later: a port below the ephemeral range, which no
    # other process's bind(0) or connect() is handed meanwhile (kube/harness/cluster.py)
    port = free_loopback_port()
    api = "/apis/vipcast.io/v1beta1"
    vwc = f"vipcast-image-{ns}"
    runner = Runner(image, shared_dir)
    started: list[str] = []
    try:
        runner.controller(kubeconfig, ns, "image-test")
        started.append(image.start(_name("webhook"), [
            "kube", "webhook", "--kubeconfig", "/kube/config", "--tls-cert", "/certs/tls.crt",
            "--tls-key", "/certs/tls.key", "--listen", f"127.0.0.1:{port}"],
            "--network", "host", "-v", f"{kubeconfig}:/kube/config:ro",
            "-v", f"{shared_dir}:/certs:ro"))

        def report() -> str:
            return runner.report() + "".join(f"\n----- {n}\n{image.logs(n)}" for n in started)

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
        runner.close()
        for name in started:
            image.stop(name)
        cluster.request("DELETE",
                        f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{vwc}")
        for pool in ("a", "b"):
            cluster.request("DELETE", f"{api}/ipaddresspools/{ns}-{pool}")
