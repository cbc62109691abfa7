"""What the chart lets each pod do and reach (issue 16 and the drain's Node write): Secrets by
name, namespaces from the downward API, metrics off the host network unless asked, the webhook
in its own read-only Deployment with a CA issuer and a NetworkPolicy, a generated L2 membership
key, hardened, probed and spread pods, and the speaker's one Node write."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import yaml

from .helm_chart import (
    CHART,
    EXAMPLE_VALUES,
    HELM,
    RENDERED,
    group_by_kind,
    pod_spec,
    template,
)


def test_secrets_by_name_and_namespaces_from_the_downward_api(helm_env: dict[str, str]
                                                              ) -> None:
    """Issue 16: the Secret namespace was hard-coded (403s when installed elsewhere) and every
    speaker could read every Secret of the release namespace."""
    docs = template(helm_env, "--namespace", "lb", "--set",
                    "peers[0].name=tor,peers[0].spec.myASN=1,peers[0].spec.peerASN=2,"
                    "peers[0].spec.peerAddress=198.18.0.1,"
                    "peers[0].spec.passwordSecret.name=tor-pw",
                    "--set", "bgpPasswordSecrets[0]=extra-pw")
    for kind, component in (("DaemonSet", "speaker"), ("Deployment", "controller")):
        container = pod_spec(docs, kind, component)["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath":
                                                                  "metadata.namespace"}}
        assert env["VIPCAST_PASSWORD_SECRETS"]["value"] == "extra-pw,tor-pw"
        assert not any(a.startswith("--namespace") for a in container["args"])
    secret_rules = [(d["kind"], d["metadata"]["name"], r) for d in docs
                    if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]
                    if "secrets" in r["resources"]]
    assert {(k, n) for k, n, _ in secret_rules} == {("Role", "vipcast-speaker"),
                                                    ("Role", "vipcast-controller")}
    for _, _, rule in secret_rules:
        assert rule["resourceNames"] == ["extra-pw", "tor-pw"]
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
    # no peer names a Secret: no Secret may be read at all
    docs = template(helm_env)
    assert not any("secrets" in r["resources"] for d in docs
                   if d["kind"] in ("Role", "ClusterRole") for r in d["rules"])


def test_speaker_metrics_on_loopback_unless_asked(helm_env: dict[str, str]) -> None:
    """Issue 16: /status and /metrics were served on 0.0.0.0 of the host network."""
    speaker = pod_spec(template(helm_env), "DaemonSet", "speaker")["containers"][0]
    assert "--metrics=127.0.0.1:7472" in speaker["args"]
    assert "ports" not in speaker
    speaker = pod_spec(template(helm_env, "--set", "metrics.address=hostIP"), "DaemonSet",
                       "speaker")["containers"][0]
    assert "--metrics=$(HOST_IP):7472" in speaker["args"]
    env = {e["name"]: e for e in speaker["env"]}
    assert env["HOST_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    rendered = RENDERED.read_text()
    assert "0.0.0.0:7472" not in rendered


def test_speaker_metrics_on_the_pod_ip(helm_env: dict[str, str]) -> None:
    """Issue 16's documented way to expose metrics without a proxy: a port on the pod's IP
    (the node's address: the speaker is on the host network), declared, probed there."""
    speaker = pod_spec(template(helm_env, "--set", "metrics.address=podIP", "--set",
                                "metrics.port=9472"), "DaemonSet", "speaker")["containers"][0]
    assert "--metrics=$(POD_IP):9472" in speaker["args"]
    env = {e["name"]: e for e in speaker["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert speaker["ports"] == [{"name": "metrics", "containerPort": 9472, "protocol": "TCP"}]
    # the kubelet probes the pod's IP (no host): where the endpoint listens
    assert speaker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 9472}
    assert speaker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9472}
    # on the loopback (the default), the probes name it
    speaker = pod_spec(template(helm_env), "DaemonSet", "speaker")["containers"][0]
    assert speaker["livenessProbe"]["httpGet"]["host"] == "127.0.0.1"
    # anything else is refused at render time, naming the value
    out = subprocess.run([str(HELM), "template", "vipcast", str(CHART), "--set",
                          "metrics.address=0.0.0.0"], capture_output=True, text=True,
                         env=helm_env, timeout=120, check=False)
    assert out.returncode != 0
    assert 'metrics.address "0.0.0.0"' in out.stderr and "podIP" in out.stderr, out.stderr


def test_webhook_own_deployment_read_only_account_ca_issuer_and_policy(
        helm_env: dict[str, str]) -> None:
    """Issue 16: the webhook ran in the controller's pod under its ServiceAccount (which may
    patch any Service's status), its CA bundle was a self-signed leaf (a renewal broke every
    write), there was no NetworkPolicy, and the controller needed cert-manager to start."""
    docs = template(helm_env)
    by_kind = group_by_kind(docs)
    webhook = pod_spec(docs, "Deployment", "webhook")
    controller = pod_spec(docs, "Deployment", "controller")
    assert webhook["serviceAccountName"] == "vipcast-webhook"
    assert [c["name"] for c in controller["containers"]] == ["controller"]
    assert "volumes" not in controller  # no certificate: starts without cert-manager
    assert "--speaker-service-account=vipcast-system:vipcast-speaker" in (
        webhook["containers"][0]["args"])
    roles = {d["metadata"]["name"]: d for d in by_kind["ClusterRole"]}
    assert all(set(r["verbs"]) <= {"get", "list", "watch"}
               for r in roles["vipcast-webhook"]["rules"])
    bindings = [b for b in docs if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
                and any(s["name"] == "vipcast-webhook" for s in b["subjects"])]
    assert [b["roleRef"]["name"] for b in bindings] == ["vipcast-webhook"]
    service = next(s for s in by_kind["Service"] if s["metadata"]["name"] == "vipcast-webhook")
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "webhook"
    # self-signed Issuer -> CA Certificate -> CA Issuer -> leaf; the bundle is the CA's
    issuers = {d["metadata"]["name"]: d["spec"] for d in by_kind["Issuer"]}
    certs = {d["metadata"]["name"]: d["spec"] for d in by_kind["Certificate"]}
    assert issuers["vipcast-selfsigned"] == {"selfSigned": {}}
    assert certs["vipcast-webhook-ca"]["isCA"] is True
    assert certs["vipcast-webhook-ca"]["issuerRef"]["name"] == "vipcast-selfsigned"
    assert issuers["vipcast-webhook-ca"] == {"ca": {"secretName": "vipcast-webhook-ca"}}
    assert certs["vipcast-webhook-cert"]["issuerRef"]["name"] == "vipcast-webhook-ca"
    (vwc,) = by_kind["ValidatingWebhookConfiguration"]
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "vipcast-system/vipcast-webhook-ca")
    reports = next(w for w in vwc["webhooks"] if w["name"] == "reports.vipcast.io")
    assert reports["rules"][0]["resources"] == ["nodeannouncements", "nodeannouncements/status"]
    assert reports["failurePolicy"] == "Fail"
    assert "system:serviceaccount:vipcast-system:vipcast-speaker" in (
        reports["matchConditions"][0]["expression"])
    (policy,) = by_kind["NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "webhook")
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 9443, "protocol": "TCP"}]}]
    # without cert-manager: a caBundle must be given, and no cert-manager object is rendered
    plain = template(helm_env, "--set", "webhook.certManager.enabled=false",
                     "--set", "webhook.caBundle=Q0E=")
    assert not any(d["apiVersion"].startswith("cert-manager.io") for d in plain)


def test_l2_membership_key_from_a_generated_secret(helm_env: dict[str, str]) -> None:
    """Issue 16: no membership key was ever passed to the speaker, so L2 with more than one
    node never worked from the chart."""
    docs = template(helm_env, "--values", str(EXAMPLE_VALUES))
    speaker = pod_spec(docs, "DaemonSet", "speaker")
    container = speaker["containers"][0]
    assert "--membership-key-file=/etc/vipcast/membership/key" in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "membership")
    assert mount["mountPath"] == "/etc/vipcast/membership" and mount["readOnly"] is True
    volume = next(v for v in speaker["volumes"] if v["name"] == "membership")
    assert volume["secret"]["secretName"] == "vipcast-membership"
    secret = next(d for d in docs if d["kind"] == "Secret"
                  and d["metadata"]["name"] == "vipcast-membership")
    key = base64.b64decode(secret["data"]["key"])
    assert len(key) >= 32
    again = next(d for d in template(helm_env) if d["kind"] == "Secret")
    assert again["data"]["key"] != secret["data"]["key"]  # random per install, not a constant
    # the shared rendered manifest never carries a key (every user would share it)
    assert "vipcast-membership" in RENDERED.read_text()
    assert not any(d and d.get("kind") == "Secret" for d in yaml.safe_load_all(
        RENDERED.read_text()))


def test_membership_key_file(tmp_path: Path) -> None:
    from vipcast.cli.kube_cmds import membership_key

    (tmp_path / "key").write_text("s3cret\n")
    assert membership_key(tmp_path / "key", "env") == "s3cret"
    assert membership_key(tmp_path / "missing", "env") == "env"
    assert membership_key(None, "env") == "env"


def test_pods_are_hardened_probed_and_spread(helm_env: dict[str, str]) -> None:
    """Issue 16: no seccomp profile on the speaker, no probes, no PodDisruptionBudget or
    anti-affinity for the controller replicas, no priority class for the speaker."""
    docs = template(helm_env)
    speaker = pod_spec(docs, "DaemonSet", "speaker")
    assert speaker["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert speaker["priorityClassName"] == "system-node-critical"
    container = speaker["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 7472,
                                                     "host": "127.0.0.1"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for component in ("controller", "webhook"):
        pod = pod_spec(docs, "Deployment", component)
        term = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        c = pod["containers"][0]
        assert c["livenessProbe"] and c["readinessProbe"]
    controller = pod_spec(docs, "Deployment", "controller")["containers"][0]
    assert "--health=0.0.0.0:8081" in controller["args"]
    pdbs = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert pdbs["vipcast-controller"]["maxUnavailable"] == 1
    assert pdbs["vipcast-controller"]["selector"]["matchLabels"][
        "app.kubernetes.io/component"] == "controller"
    single = template(helm_env, "--set", "controller.replicas=1")
    assert "vipcast-controller" not in {d["metadata"]["name"] for d in single
                                        if d["kind"] == "PodDisruptionBudget"}


def test_the_speaker_writes_nodes_only_to_patch_its_drain_state(helm_env: dict[str, str]) -> None:
    """The speaker's one write on core objects: ``patch`` on Nodes (the drain state
    annotation); never create, update or delete a Node, never write a Service."""
    docs = template(helm_env)
    role = next(d for d in docs if d and d["kind"] == "ClusterRole"
                and d["metadata"]["name"].endswith("-speaker"))
    core_writes = [r for r in role["rules"] if "" in r["apiGroups"]
                   and set(r["verbs"]) - {"get", "list", "watch"}]
    assert core_writes == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["patch"]}]
    # RBAC cannot narrow that patch to the speaker's own Node and one annotation: the
    # webhook does, asked for the speakers' Node writes only (and refusing while it is down)
    vwc = next(d for d in docs if d["kind"] == "ValidatingWebhookConfiguration")
    hook = next(w for w in vwc["webhooks"] if w["name"] == "nodes.vipcast.io")
    assert hook["rules"][0]["apiGroups"] == [""]
    assert {"nodes", "nodes/status"} <= set(hook["rules"][0]["resources"])
    assert hook["failurePolicy"] == "Fail"
    assert hook["matchConditions"][0]["expression"] == (
        "request.userInfo.username == "
        "'system:serviceaccount:vipcast-system:vipcast-speaker'")
    # without the webhook there is nothing to hold that patch to one node: no Node write
    unguarded = template(helm_env, "--set", "webhook.enabled=false")
    role = next(d for d in unguarded if d["kind"] == "ClusterRole"
                and d["metadata"]["name"].endswith("-speaker"))
    assert not [r for r in role["rules"] if "nodes" in r["resources"]
                and set(r["verbs"]) - {"get", "list", "watch"}]
