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
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from vipcast.core.desired import NodePlan
from vipcast.core.drain import DRAIN_STATE_ANNOTATION
from vipcast.sources.kube.admission import NODE_NAME_EXTRA, review
from vipcast.sources.kube.announcements import report_body
from vipcast.sources.kube.drain_report import DrainReporter
from vipcast.sources.kube.reporter import AnnouncementReporter
from vipcast.sources.kube.webhook import WebhookServer

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, client, eventually, pool, webhook_released

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
            # it matched every pool write: stopped only once the API server no longer calls it
            await webhook_released(admin, lambda: server.reviews,
                                   pool(f"probe-{namespace}", ["198.18.3.0/29"], namespace))
            await server.stop()
            await speaker_a.close()
            await admin.close()

    run(go(), 120)


def _node_request(name: str, user: dict[str, Any], old: dict[str, Any], new: dict[str, Any],
                  operation: str = "UPDATE") -> dict[str, Any]:
    return {"request": {"uid": "u", "kind": {"kind": "Node"}, "operation": operation,
                        "name": name, "userInfo": user, "oldObject": old, "object": new}}


def test_a_speaker_changes_only_its_own_nodes_drain_state() -> None:
    own = {"username": SPEAKER, "extra": {NODE_NAME_EXTRA: ["node-a"]}}
    old = {"metadata": {"name": "node-a", "resourceVersion": "1", "labels": {"x": "1"}},
           "spec": {}}
    noted = {"metadata": {"name": "node-a", "resourceVersion": "2", "labels": {"x": "1"},
                          "annotations": {DRAIN_STATE_ANNOTATION: "draining"}}, "spec": {}}
    assert review(_node_request("node-a", own, old, noted), {}, [SPEAKER])["response"]["allowed"]
    tainted = {**noted, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    out = review(_node_request("node-a", own, old, tainted), {}, [SPEAKER])["response"]
    assert not out["allowed"] and "not spec.taints" in out["status"]["message"]
    other = review(_node_request("node-b", own, old, noted), {}, [SPEAKER])["response"]
    assert "node node-a may not write Node node-b" in other["status"]["message"]
    deleted = review(_node_request("node-a", own, old, {}, "DELETE"), {}, [SPEAKER])
    assert not deleted["response"]["allowed"]
    assert not review(_node_request("node-a", {"username": SPEAKER}, old, noted), {},
                      [SPEAKER])["response"]["allowed"]
    admin = review(_node_request("node-b", {"username": "admin"}, old, tainted), {}, [SPEAKER])
    assert admin["response"]["allowed"]


@pytest.mark.slow
def test_a_speaker_patches_only_its_own_nodes_drain_state(vipcast_crds: Cluster, namespace: str,
                                                          tmp_path: Path) -> None:
    """The chart grants the speakers ``patch`` on Nodes for the drain state; against the real
    API server, through the webhook as the chart registers it (the harness serves Nodes in
    the stand-in group core.kube.test): node A's speaker token may set the annotation on A
    (DrainReporter, the speaker's own write path), not on B, and no label on A."""
    ca = _ca(tmp_path)
    served = (tmp_path / "tls.crt", tmp_path / "tls.key")
    _install(_leaf(tmp_path, ca, 1), served)
    node_a, node_b = f"{namespace}-na", f"{namespace}-nb"

    async def go() -> None:
        admin = client(vipcast_crds.kubeconfig, namespace)
        speaker_a = client(vipcast_crds.kubeconfig_for(f"sa:vipcast-system:vipcast-speaker:"
                                                       f"{node_a}"), namespace)
        server = WebhookServer(admin, *served, host="127.0.0.1", port=0, speakers=[SPEAKER])
        _, port = await server.start(30)
        name = f"vipcast-nodes-{namespace}"
        try:
            for node in (node_a, node_b):
                await admin.create(Node.from_dict({"metadata": {"name": node,
                                                                "labels": {"zone": "z1"}}}))
            await admin.create(VWC.from_dict({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name},
                "webhooks": [{
                    "name": "nodes.vipcast.io",
                    "clientConfig": {"url": f"https://127.0.0.1:{port}/validate",
                                     "caBundle": base64.b64encode(ca[0].read_bytes()).decode()},
                    "rules": [{"apiGroups": ["", "core.kube.test"], "apiVersions": ["v1"],
                               "operations": ["CREATE", "UPDATE", "DELETE"],
                               "resources": ["nodes", "nodes/status"]}],
                    "matchConditions": [{
                        "name": "speakers-only",
                        "expression": f"request.userInfo.username == '{SPEAKER}'"}],
                    "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "failurePolicy": "Fail", "timeoutSeconds": 5}]}))

            def note(value: str) -> dict[str, Any]:
                return {"metadata": {"annotations": {DRAIN_STATE_ANNOTATION: value}}}

            async def patch_refused(node: str, body: dict[str, Any]) -> str | None:
                try:
                    await speaker_a.patch(Node, node, body, patch_type=PatchType.MERGE)
                except ApiError as exc:
                    return str(exc.status.message)
                return None

            # the webhook is live once node A's speaker cannot write node B
            message = await eventually(lambda: patch_refused(node_b, note("drained")), 30,
                                       every=0.5, what="another node's patch refused")
            assert f"node {node_a} may not write Node {node_b}" in message
            # a label (scheduling) on its own node: refused, the Node unchanged
            label = await patch_refused(node_a, {"metadata": {"labels": {"zone": "evil"}}})
            assert label is not None and "metadata.labels.zone" in label
            taint = await patch_refused(node_a, {"spec": {"taints": [
                {"key": "evict-others", "effect": "NoSchedule"}]}})
            assert taint is not None and "spec.taints" in taint
            # the annotation on its own node: through the speaker's own write path
            reporter = DrainReporter(speaker_a, node_a)
            reporter.offer("draining")
            await reporter.stop()
            assert reporter.written == "draining"
            a = await admin.get(Node, node_a)
            b = await admin.get(Node, node_b)
            assert a.metadata.annotations[DRAIN_STATE_ANNOTATION] == "draining"
            assert a.metadata.labels == {"zone": "z1"} and not (a.spec and a.spec.taints)
            assert DRAIN_STATE_ANNOTATION not in (b.metadata.annotations or {})
            # back to serving: the annotation removed, also allowed
            reporter.offer("serving")
            await reporter.stop()
            a = await admin.get(Node, node_a)
            assert DRAIN_STATE_ANNOTATION not in (a.metadata.annotations or {})
            # an administrator's Node writes never reach the webhook (matchConditions)
            before = server.reviews
            await admin.patch(Node, node_b, {"metadata": {"labels": {"zone": "z2"}}},
                              patch_type=PatchType.MERGE)
            assert server.reviews == before
        finally:
            with contextlib.suppress(ApiError):
                await admin.delete(VWC, name)
            for node in (node_a, node_b):
                with contextlib.suppress(ApiError):
                    await admin.delete(Node, node)
            await server.stop()
            await speaker_a.close()
            await admin.close()

    run(go(), 120)
