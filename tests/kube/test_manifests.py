"""deploy/kubernetes: valid built-in objects (kubernetes-validate, strict), and RBAC rules that
cover every API call the controller, webhook and speaker made against the real server."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from lightkube.resources.core_v1 import Node

from vipcast.app.agent import AgentOptions
from vipcast.app.controller import Controller, ControllerConfig
from vipcast.app.speaker import KubeAgent
from vipcast.sources.kube.conditions import ANNOUNCED
from vipcast.sources.kube.leader import ElectionConfig

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, Service, client, eventually, ingress_ips, lb_service, pool

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def _docs() -> list[dict[str, Any]]:
    return [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


def test_builtin_objects_validate_strictly() -> None:
    checked = 0
    for doc in _docs():
        if doc["apiVersion"].startswith("cert-manager.io"):
            continue
        kubernetes_validate.validate(doc, "1.36.0", strict=True)
        checked += 1
    assert checked >= 10


def _rules_for(service_account: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace or None for cluster-wide, rule) granted to a ServiceAccount."""
    docs = _docs()
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out: list[tuple[str | None, dict[str, Any]]] = []
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["name"] == service_account for s in b["subjects"]):
            continue
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], ns, ref["name"])]
        out.extend((ns, rule) for rule in role["rules"])
    return out


def _allowed(rules: list[tuple[str | None, dict[str, Any]]], call: dict[str, str]) -> bool:
    resource = call["resource"] + (f"/{call['subresource']}" if call["subresource"] else "")
    for ns, rule in rules:
        if ns is not None and call["namespace"] != ns:
            continue
        if (call["group"] in rule["apiGroups"] and resource in rule["resources"]
                and call["verb"] in rule["verbs"]):
            return True
    return False


@pytest.mark.slow
def test_rbac_covers_every_call(vipcast_crds: Cluster, namespace: str, tmp_path: Path) -> None:
    from .test_webhook import _cert

    cert, key = _cert(tmp_path)

    async def go() -> None:
        admin = client(vipcast_crds.kubeconfig, namespace)
        ctl_client = client(vipcast_crds.kubeconfig_for("rbac-controller"), namespace)
        spk_client = client(vipcast_crds.kubeconfig_for("rbac-speaker"), namespace)
        hook_client = client(vipcast_crds.kubeconfig_for("rbac-webhook"), namespace)
        await admin.create(pool(f"p-{namespace}", ["198.18.2.0/29"], namespace))
        await admin.create(lb_service("web", namespace))
        # the controller counts only reports of Nodes that exist (and are Ready)
        await admin.create(Node.from_dict({"metadata": {"name": "rbac-node"}}))
        ctl = Controller(ctl_client, ControllerConfig(
            identity="rbac", election=ElectionConfig(name=f"rbac-{namespace}",
                                                     lease_duration=2, retry_period=0.2),
            debounce=0.02))
        agent = KubeAgent(spk_client, AgentOptions(config_paths=(), node="rbac-node",
                                                   poll_interval=0.1))
        from vipcast.sources.kube.webhook import WebhookServer

        hook = WebhookServer(hook_client, cert, key, host="127.0.0.1", port=0)
        tasks = [asyncio.create_task(ctl.run()),
                 asyncio.create_task(agent.serve(install_signals=False, sync_timeout=30))]
        try:
            await hook.start(30)
            await eventually(lambda: ingress_ips(admin, "web", namespace), 30, what="IP")
            await eventually(lambda: asyncio.sleep(0, agent.current), 30, what="speaker plan")
            # the speaker's NodeAnnouncement (create + status), read back by the controller
            assert agent.reporter is not None
            await eventually(lambda: asyncio.sleep(0, agent.reporter.writes if agent.reporter
                                                   else 0), 30, what="speaker's report")

            async def folded() -> bool:
                svc = (await admin.get(Service, "web", namespace=namespace)).to_dict()
                conds = (svc.get("status") or {}).get("conditions") or ()
                return any(c["type"] == ANNOUNCED and "rbac-node" in c["message"]
                           for c in conds)

            await eventually(folded, 30, what="report folded into the Announced condition")
        finally:
            agent.request_stop()
            await hook.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await admin.delete(IPAddressPool, f"p-{namespace}")
            await admin.delete(Node, "rbac-node")
            for c in (admin, ctl_client, spk_client, hook_client):
                await c.close()

    run(go(), 90)
    accounts = {"rbac-controller": "vipcast-controller", "rbac-webhook": "vipcast-webhook",
                "rbac-speaker": "vipcast-speaker"}
    calls = [c for c in vipcast_crds.audit() if c.get("user") in accounts]
    assert {c["user"] for c in calls} == set(accounts)
    # the manifests parsed once per account, not once per audited call (thousands of calls:
    # watches, lease renewals every 0.2 s; re-parsing for each took 30 s of the test quiet
    # and ran past pytest's 300 s under load)
    rules = {user: _rules_for(account) for user, account in accounts.items()}
    missing = sorted({
        f"{accounts[c['user']]}: {c['verb']} {c['group'] or 'core'}/{c['resource']}"
        f"{'/' + c['subresource'] if c['subresource'] else ''} ns={c['namespace'] or '-'}"
        for c in calls if not _allowed(rules[c["user"]], c)})
    assert any(c["subresource"] == "status" and c["verb"] == "patch" for c in calls)
    assert any(c["resource"] == "leases" for c in calls)
    assert any(c["resource"] == "nodeannouncements" and c["subresource"] == "status"
               and c["user"] == "rbac-speaker" for c in calls)
    assert not missing, "RBAC rules in deploy/kubernetes miss:\n" + "\n".join(missing)
