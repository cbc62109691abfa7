"""The webhook as a security boundary, against the real API server (issue 16).

* Per-node reports: RBAC grants the speakers' one ServiceAccount NodeAnnouncement writes
  cluster-wide, so before this any node's speaker could forge another node's report. The
  webhook now lets a speaker write only the report named after the node its bound token names.
  The harness authenticates ``sa:<ns>:<name>:<node>`` tokens as that ServiceAccount with the
  ``authentication.kubernetes.io/node-name`` extra, as kube-apiserver does for pod tokens.
* Certificates: read once before, so a renewal (cert-manager rewrites the mounted Secret) was
  never served. Now the files are watched and the new pair used for later handshakes; with a
  CA issuer the API server's caBundle (the CA) stays valid across renewals.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError
from lightkube.generic_resource import create_global_resource

from vipcast.core.desired import NodePlan
from vipcast.sources.kube.admission import NODE_NAME_EXTRA, review
from vipcast.sources.kube.announcements import report_body
from vipcast.sources.kube.reporter import AnnouncementReporter
from vipcast.sources.kube.webhook import WebhookServer

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, client, eventually, pool

VWC = create_global_resource("admissionregistration.k8s.io", "v1",
                             "ValidatingWebhookConfiguration",
                             "validatingwebhookconfigurations")
NodeAnnouncement = create_global_resource("vipcast.io", "v1beta1", "NodeAnnouncement",
                                          "nodeannouncements")
SPEAKER = "system:serviceaccount:vipcast-system:vipcast-speaker"


def _report_request(name: str, user: dict[str, Any], sub: str = "") -> dict[str, Any]:
    return {"request": {"uid": "u", "kind": {"kind": "NodeAnnouncement"}, "operation": "UPDATE",
                        "name": name, "subResource": sub, "userInfo": user,
                        "object": {"metadata": {"name": name}}}}


def test_a_speaker_writes_only_its_own_nodes_report() -> None:
    own = {"username": SPEAKER, "extra": {NODE_NAME_EXTRA: ["node-a"]}}
    assert review(_report_request("node-a", own), {}, [SPEAKER])["response"]["allowed"]
    out = review(_report_request("node-b", own, "status"), {}, [SPEAKER])["response"]
    assert not out["allowed"] and out["status"]["code"] == 403
    assert "node-a may not write NodeAnnouncement node-b" in out["status"]["message"]
    no_node = review(_report_request("node-a", {"username": SPEAKER}), {}, [SPEAKER])
    assert not no_node["response"]["allowed"]
    admin = review(_report_request("node-b", {"username": "admin"}), {}, [SPEAKER])
    assert admin["response"]["allowed"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _ca(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp / "ca.crt", tmp / "ca.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=vipcast-webhook-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(key), "-out", str(cert))
    return cert, key


def _leaf(tmp: Path, ca: tuple[Path, Path], serial: int) -> tuple[Path, Path]:
    """A leaf for 127.0.0.1 signed by ``ca`` (what cert-manager's CA Issuer renews)."""
    key, csr, cert = tmp / f"leaf{serial}.key", tmp / f"leaf{serial}.csr", tmp / f"leaf{serial}.crt"
    ext = tmp / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", str(serial), "-days", "1", "-extfile", str(ext), "-out", str(cert))
    return cert, key


def _install(pair: tuple[Path, Path], into: tuple[Path, Path]) -> None:
    """Replace the served files at once, as the kubelet swaps a Secret volume."""
    for src, dst in zip(pair, into, strict=True):
        tmp = dst.with_suffix(".new")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)


async def _served_serial(port: int) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True, timeout=30)
    return int(out.stdout.decode().strip().split("=")[1], 16)


@pytest.mark.slow
def test_renewed_certificate_served_and_reports_per_node(vipcast_crds: Cluster, namespace: str,
                                                         tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    served = (tmp_path / "tls.crt", tmp_path / "tls.key")
    _install(_leaf(tmp_path, ca, 1), served)
    node_a, node_b = f"{namespace}-a", f"{namespace}-b"

    async def go() -> None:
        admin = client(vipcast_crds.kubeconfig, namespace)
        speaker_a = client(vipcast_crds.kubeconfig_for(f"sa:vipcast-system:vipcast-speaker:"
                                                       f"{node_a}"), namespace)
        server = WebhookServer(admin, *served, host="127.0.0.1", port=0, speakers=[SPEAKER],
                               cert_check_every=0.2)
        _, port = await server.start(30)
        name = f"vipcast-sec-{namespace}"
        try:
            await admin.create(VWC.from_dict({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name},
                "webhooks": [{
                    "name": "reports.vipcast.io",
                    "clientConfig": {"url": f"https://127.0.0.1:{port}/validate",
                                     "caBundle": base64.b64encode(ca[0].read_bytes()).decode()},
                    "rules": [{"apiGroups": ["vipcast.io"], "apiVersions": ["v1beta1"],
                               "operations": ["CREATE", "UPDATE"],
                               "resources": ["nodeannouncements", "nodeannouncements/status",
                                             "ipaddresspools"]}],
                    "matchConditions": [{
                        "name": "speakers-and-config",
                        "expression": f"request.resource.resource != 'nodeannouncements' || "
                                      f"request.userInfo.username == '{SPEAKER}'"}],
                    "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "failurePolicy": "Fail", "timeoutSeconds": 5}]}))
            # the webhook is live once a forged report is refused
            forged = AnnouncementReporter(speaker_a, node_b)

            async def refused() -> str | None:
                try:
                    await speaker_a.create(NodeAnnouncement.from_dict(report_body(node_b)))
                except ApiError as exc:
                    return str(exc.status.message)
                await admin.delete(NodeAnnouncement, node_b)
                return None

            message = await eventually(refused, 30, every=0.5, what="a forged report refused")
            assert f"node {node_a} may not write NodeAnnouncement {node_b}" in message
            # the speaker's own write path: its node's report goes through, another's does not
            own = AnnouncementReporter(speaker_a, node_a)
            tasks = [asyncio.create_task(own.run()), asyncio.create_task(forged.run())]
            await asyncio.sleep(0.1)
            own.offer(NodePlan(node=node_a), {})
            forged.offer(NodePlan(node=node_b), {})
            await eventually(lambda: asyncio.sleep(0, own.writes), 20, what="own report")
            await asyncio.sleep(1)
            assert forged.writes == 0
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # an administrator is not held to it (matchConditions: the webhook is not asked)
            await admin.create(NodeAnnouncement.from_dict(report_body(node_b)))

            # renewal: a new leaf from the same CA is served without a restart, and the API
            # server (caBundle = the CA) keeps calling the webhook
            assert await _served_serial(port) == 1
            _install(_leaf(tmp_path, ca, 2), served)
            await eventually(lambda: asyncio.sleep(0, server.reloads), 20, what="reload")
            assert await _served_serial(port) == 2
            before = server.reviews
            await admin.create(pool(f"sec-{namespace}", ["198.18.3.0/29"], namespace))
            assert server.reviews > before
            # a half-written pair is not loaded: the current one stays
            served[0].write_text("-----BEGIN CERTIFICATE-----\ntruncated")
            await asyncio.sleep(0.6)
            assert await _served_serial(port) == 2
        finally:
            for res, obj in ((VWC, name), (IPAddressPool, f"sec-{namespace}"),
                             (NodeAnnouncement, node_a), (NodeAnnouncement, node_b)):
                with contextlib.suppress(ApiError):
                    await admin.delete(res, obj)
            await server.stop()
            await speaker_a.close()
            await admin.close()

    run(go(), 120)
