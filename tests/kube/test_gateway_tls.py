"""TLS Secrets of the L7 gateway on Kubernetes (issue 12): the controller and the speaker read
exactly the Secrets that Gateway listeners (``certificateRefs``) name and may name -- one
watch per Secret, never a list of every Secret, never an unpermitted one --; a missing or
broken Secret is ``ResolvedRefs`` False / ``InvalidCertificateRef`` on that listener only, a
cross-namespace one without a ReferenceGrant ``RefNotPermitted``; nothing crashes, and a
Secret created later is picked up."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import tempfile
from typing import Any

import yaml
from tests.gateway.certs import self_signed

from vipcast.app.agent import AgentOptions
from vipcast.app.controller import Controller, ControllerConfig
from vipcast.app.speaker import KubeAgent
from vipcast.sources.kube.leader import ElectionConfig
from vipcast.sources.kube.resources import CONTROLLER_KINDS, GATEWAY_KINDS, NODES, SPEAKER_KINDS

from .conftest import run
from .harness.cluster import Cluster, missing_tool
from .helm_chart import CHART, HELM
from .kubetools import GW, client, post
from .test_manifests import _allowed


def _chart(*extra: str) -> list[dict[str, Any]]:
    """The chart rendered (helm template) with ``extra`` values."""
    missing_tool("chart tests", os.access(HELM, os.X_OK),
                 f"no helm at {HELM} (run scripts/install-helm.sh)")
    with tempfile.TemporaryDirectory(prefix="vc-helm-") as scratch:
        out = subprocess.run(
            [str(HELM), "template", "vipcast", str(CHART), "--namespace", "vipcast-system",
             *extra], env={**os.environ, "HOME": scratch, "HELM_CACHE_HOME": f"{scratch}/c",
                           "HELM_CONFIG_HOME": f"{scratch}/f", "HELM_DATA_HOME": f"{scratch}/d"},
            capture_output=True, text=True, timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _rules_for(account: str, docs: list[dict[str, Any]]) -> list[tuple[str | None, Any]]:
    """(namespace or None, rule) the rendered chart grants the ServiceAccount ``account``."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out: list[tuple[str | None, Any]] = []
    for b in docs:
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(
                s["name"] == account for s in b["subjects"]):
            ref = b["roleRef"]
            ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
            out.extend((ns, r) for r in roles[(ref["kind"], ns, ref["name"])]["rules"])
    return out



def _tls_secret(ns: str, name: str, cert: str, key: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": ns},
            "data": {"tls.crt": base64.b64encode(cert.encode()).decode(),
                     "tls.key": base64.b64encode(key.encode()).decode()}}


def _https(name: str, secret: str, ns: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret}
    if ns:
        ref["namespace"] = ns
    return {"name": name, "port": 443, "protocol": "HTTPS", "hostname": f"{name}.example.com",
            "tls": {"mode": "Terminate", "certificateRefs": [ref]}}


def _listener_refs(cluster: Cluster, ns: str) -> dict[str, tuple[str, str]] | None:
    code, gw = cluster.request("GET", f"{GW}/namespaces/{ns}/gateways/tls")
    listeners = (gw.get("status") or {}).get("listeners") if code == 200 else None
    if not listeners:
        return None
    out = {}
    for lis in listeners:
        cond = next(c for c in lis["conditions"] if c["type"] == "ResolvedRefs")
        out[lis["name"]] = (cond["status"], cond["reason"])
    return out


def test_listener_certificates_from_named_secrets(gateway_api: Cluster, namespace: str) -> None:
    cluster, ns = gateway_api, namespace
    other = f"{ns}-certs"
    post(cluster, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": other}})
    cert, key = self_signed("good.example.com", "granted.example.com", "late.example.com")
    post(cluster, f"/api/v1/namespaces/{ns}/secrets", _tls_secret(ns, "good", cert, key))
    post(cluster, f"/api/v1/namespaces/{ns}/secrets",
          _tls_secret(ns, "broken", "not a certificate", "nor a key"))
    post(cluster, f"/api/v1/namespaces/{other}/secrets", _tls_secret(other, "shared", cert, key))
    post(cluster, f"/api/v1/namespaces/{other}/secrets", _tls_secret(other, "private", cert, key))
    post(cluster, f"{GW.replace('/v1', '/v1beta1')}/namespaces/{other}/referencegrants", {
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "gateways-of-ns", "namespace": other},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                           "namespace": ns}],
                 "to": [{"group": "", "kind": "Secret", "name": "shared"}]}})
    post(cluster, "/apis/vipcast.io/v1beta1/ipaddresspools", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": f"tls-{ns}"},
        "spec": {"addresses": ["198.18.23.0/29"], "serviceAllocation": {"namespaces": [ns]}}})
    post(cluster, f"{GW}/gatewayclasses", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": f"tls-{ns}"}, "spec": {"controllerName": "vipcast.io/gateway"}})
    post(cluster, f"{GW}/namespaces/{ns}/gateways", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "tls", "namespace": ns},
        "spec": {"gatewayClassName": f"tls-{ns}", "listeners": [
            _https("good", "good"), _https("missing", "late"), _https("broken", "broken"),
            _https("granted", "shared", other), _https("refused", "private", other)]}})
    ctl_user, spk_user = f"tls-ctl-{ns}", f"tls-spk-{ns}"

    async def go() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]],
                            list[str], list[str]]:
        ctl_client = client(cluster.kubeconfig_for(ctl_user), ns)
        spk_client = client(cluster.kubeconfig_for(spk_user), ns)
        ctl = Controller(ctl_client, ControllerConfig(
            identity="tls", gateway_api=True, resync=2, debounce=0.02,
            election=ElectionConfig(name=f"lease-{ns}", namespace="vipcast-system",
                                    lease_duration=2, renew_deadline=1.5, retry_period=0.2)),
            kinds=(*CONTROLLER_KINDS, NODES, *GATEWAY_KINDS))
        agent = KubeAgent(spk_client, AgentOptions(config_paths=(), node="n1", poll_interval=0.1),
                          kinds=(*SPEAKER_KINDS, *GATEWAY_KINDS), report=False)
        tasks = [asyncio.create_task(ctl.run()),
                 asyncio.create_task(agent.serve(install_signals=False, sync_timeout=30))]

        def chains() -> list[str]:
            """The speaker's HTTPS filter chains of this test (the certificates it holds)."""
            plan = agent.current.plan if agent.current else None
            proxy = plan.proxy if plan is not None else None
            if proxy is None:
                return []
            return sorted(name for lis in proxy.listeners if lis.name.startswith(f"{ns}/")
                          for c in lis.filter_chains for name in c.certificates)

        async def until(probe: Any, what: str) -> Any:
            for _ in range(400):
                got = probe()
                if got:
                    return got
                await asyncio.sleep(0.1)
            raise AssertionError(f"timed out: {what}")

        try:
            before = await until(lambda: (r := _listener_refs(cluster, ns)) and len(r) == 5
                                 and r, "listener status")
            early = await until(lambda: (c := chains()) and len(c) == 2 and c,
                                "the speaker's certificates")
            # the missing Secret is created: both pick it up
            post(cluster, f"/api/v1/namespaces/{ns}/secrets", _tls_secret(ns, "late", cert, key))
            after = await until(lambda: (r := _listener_refs(cluster, ns))
                                and r["missing"][0] == "True" and r, "the late Secret resolved")
            late = await until(lambda: (c := chains()) and len(c) == 3 and c,
                               "the speaker's late certificate")
            return before, after, early, late
        finally:
            agent.request_stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await ctl_client.close()
            await spk_client.close()

    before, after, early, late = run(go(), timeout=120)
    assert before == {"good": ("True", "ResolvedRefs"),
                      "missing": ("False", "InvalidCertificateRef"),
                      "broken": ("False", "InvalidCertificateRef"),
                      "granted": ("True", "ResolvedRefs"),
                      "refused": ("False", "RefNotPermitted")}
    assert after["missing"] == ("True", "ResolvedRefs")
    assert after["broken"] == ("False", "InvalidCertificateRef")
    assert early == sorted([f"{ns}/good", f"{other}/shared"])
    assert late == sorted([f"{ns}/good", f"{ns}/late", f"{other}/shared"])
    # exactly the named, permitted Secrets were read: one at a time, never a whole list,
    # never the one no ReferenceGrant allows
    for user in (ctl_user, spk_user):
        calls = [c for c in cluster.audit() if c.get("user") == user
                 and c["resource"] == "secrets"]
        assert calls, user
        read = {(c["namespace"], c["name"]) for c in calls}
        assert read == {(ns, "good"), (ns, "late"), (ns, "broken"), (other, "shared")}, user
        assert {c["verb"] for c in calls} <= {"get", "list", "watch"}
    # and the chart with gateway.enabled grants every call they made (RBAC coverage)
    docs = _chart("--set", "gateway.enabled=true")
    for user, account in ((ctl_user, "vipcast-controller"), (spk_user, "vipcast-speaker")):
        rules = _rules_for(account, docs)
        missing = sorted({f"{c['verb']} {c['group'] or 'core'}/{c['resource']}"
                          f"{'/' + c['subresource'] if c['subresource'] else ''} "
                          f"ns={c['namespace'] or '-'}"
                          for c in cluster.audit() if c.get("user") == user
                          and not _allowed(rules, c)})
        assert not missing, f"{account} lacks:\n" + "\n".join(missing)
    for path in (f"{GW}/gatewayclasses/tls-{ns}",
                 f"/apis/vipcast.io/v1beta1/ipaddresspools/tls-{ns}"):
        cluster.request("DELETE", path)
