"""The chart's external-LB controller (``providers.enabled``, docs/external-lb.md)."""

from __future__ import annotations

from .helm_chart import RENDERED, template


def test_providers_controller_is_off_by_default_and_renders_when_enabled(
    helm_env: dict[str, str],
) -> None:
    """The external-LB controller (docs/external-lb.md): absent from the default manifest;
    with ``providers.enabled`` a Deployment of ``vipcast providers controller`` (two replicas
    electing a leader, a PodDisruptionBudget) and its least-privilege RBAC (its Lease, the
    credential Secrets by name only)."""
    assert "-providers" not in RENDERED.read_text()
    docs = template(helm_env, "--set", "providers.enabled=true",
                    "--set", "providers.credentialSecrets={f5-cred}")
    mine = {d["kind"]: d for d in docs
            if d and str(d["metadata"].get("name", "")).endswith("-providers")}
    deploy = mine["Deployment"]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["providers", "controller"]
    assert "--lease-duration=15" in container["args"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} \
        in container["env"]
    # two replicas, one leader (Lease vipcast-providers), one drained at a time
    assert deploy["spec"]["replicas"] == 2
    assert mine["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert mine["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"][
        "app.kubernetes.io/component"] == "providers"
    assert mine["Role"]["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["f5-cred"],
         "verbs": ["get"]}]
    single = template(helm_env, "--set", "providers.enabled=true",
                      "--set", "providers.replicas=1")
    assert not any(d["kind"] == "PodDisruptionBudget" and
                   d["metadata"]["name"].endswith("-providers") for d in single if d)
    rules = mine["ClusterRole"]["rules"]
    assert not any("secrets" in r["resources"] for r in rules)
    assert {"apiGroups": [""], "resources": ["services"], "verbs": ["patch"]} in rules
