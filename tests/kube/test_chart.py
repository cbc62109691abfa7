"""The Helm chart (deploy/helm/vipcast): ``helm lint`` passes, ``deploy/kubernetes/vipcast.yaml``
is its current rendering, its CRDs are the generated ones, the built-in kinds validate against
Kubernetes' schemas, and the CRDs, vipcast objects and served built-in kinds pass a
server-side apply dry-run on the real API server.

helm comes from ``scripts/install-helm.sh``; without it these tests fail under CI, and skip only
with ``VIPCAST_SKIP_KUBE=1`` or outside CI.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from vipcast.sources.kube.crds import rendered_files
from vipcast.spec import load_documents

from .harness.cluster import DEFAULT_BIN_DIR, Cluster, missing_tool
from .harness.proxy import TOKEN

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "vipcast"
RENDERED = ROOT / "deploy" / "kubernetes" / "vipcast.yaml"
EXAMPLE_VALUES = CHART / "ci" / "example-values.yaml"
HELM = Path(os.environ.get("HELM", DEFAULT_BIN_DIR / "helm"))
K8S_VERSION = "1.36.0"


@pytest.fixture(scope="module")
def helm_env() -> Iterator[dict[str, str]]:
    missing_tool("chart tests", os.access(HELM, os.X_OK),
                 f"no helm at {HELM} (run scripts/install-helm.sh)")
    with tempfile.TemporaryDirectory(prefix="vc-helm-") as scratch:
        yield {**os.environ, "HOME": scratch, "HELM_CACHE_HOME": f"{scratch}/cache",
               "HELM_CONFIG_HOME": f"{scratch}/config", "HELM_DATA_HOME": f"{scratch}/data",
               "HELM": str(HELM)}


def _helm(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([str(HELM), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _template(env: dict[str, str], *extra: str) -> list[dict[str, Any]]:
    out = _helm(env, "template", "vipcast", str(CHART), "--namespace", "vipcast-system",
                "--include-crds", "--set", "namespace.create=true", *extra)
    return [d for d in yaml.safe_load_all(out) if d]


def test_rendered_manifest_is_up_to_date(helm_env: dict[str, str]) -> None:
    proc = subprocess.run(["bash", str(ROOT / "deploy" / "render.sh"), "--stdout"],
                          env=helm_env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == RENDERED.read_text(), (
        "deploy/kubernetes/vipcast.yaml is stale: run deploy/render.sh")


def test_chart_crds_are_the_generated_ones() -> None:
    files = rendered_files()
    chart = {p.name: p.read_text() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert chart == files, "deploy/helm/vipcast/files/crds is stale: run deploy/render.sh"


def test_helm_lint(helm_env: dict[str, str]) -> None:
    _helm(helm_env, "lint", "--strict", str(CHART))
    _helm(helm_env, "lint", "--strict", str(CHART), "--values", str(EXAMPLE_VALUES))


def test_values_drive_the_objects(helm_env: dict[str, str]) -> None:
    docs = _template(helm_env, "--values", str(EXAMPLE_VALUES),
                     "--set", "controller.replicas=3", "--set", "loadBalancerClass=example/lb",
                     "--set", "metrics.enabled=false", "--set", "webhook.enabled=false",
                     "--set", "image.tag=9.9")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deployment = by_kind["Deployment"][0]
    assert deployment["spec"]["replicas"] == 3
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["controller"]
    assert "--load-balancer-class=example/lb" in containers[0]["args"]
    assert containers[0]["image"] == "vipcast:9.9"
    speaker = by_kind["DaemonSet"][0]["spec"]["template"]["spec"]["containers"][0]
    assert not any(a.startswith("--metrics") for a in speaker["args"])
    assert "ValidatingWebhookConfiguration" not in by_kind
    # the vipcast objects from the values are a valid configuration for vipcast itself
    ours = [d for d in docs if d["apiVersion"].startswith("vipcast.io/")]
    assert {d["kind"] for d in ours} == {"IPAddressPool", "BGPPeer", "BGPAdvertisement",
                                         "L2Advertisement", "BFDProfile", "Community"}
    spec = load_documents([("chart", d) for d in ours])
    assert [p.metadata.name for p in spec.pools] == ["default"]


def test_builtin_kinds_validate(helm_env: dict[str, str]) -> None:
    checked = set()
    for d in _template(helm_env, "--values", str(EXAMPLE_VALUES)):
        if d["apiVersion"].split("/")[0] in ("vipcast.io", "cert-manager.io"):
            continue
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        checked.add(d["kind"])
    assert {"CustomResourceDefinition", "Deployment", "DaemonSet", "ClusterRole", "Role",
            "ValidatingWebhookConfiguration", "Namespace", "Service"} <= checked


def _path(doc: dict[str, Any], plural: dict[str, str]) -> str | None:
    """The server path of one object, for the kinds the stand-in serves (None otherwise)."""
    api, kind, meta = doc["apiVersion"], doc["kind"], doc["metadata"]
    resource = plural.get(kind)
    if resource is None:
        return None
    base = "/api/v1" if api == "v1" else f"/apis/{api}"
    ns = meta.get("namespace")
    return f"{base}/{'namespaces/' + ns + '/' if ns else ''}{resource}/{meta['name']}"


def _dry_run_apply(cluster: Cluster, path: str, doc: dict[str, Any]) -> tuple[int, str]:
    """Server-side apply with ``dryRun=All``. Namespaces: the shim maps core paths onto a
    CRD look-alike, where ``/namespaces/NAME`` reads as a namespace prefix, so a Namespace is
    checked with a dry-run create instead (AlreadyExists comes after validation)."""
    if doc["kind"] == "Namespace":
        url = f"{cluster.url}/api/v1/namespaces?dryRun=All"
        method, ctype = "POST", "application/json"
    else:
        url = f"{cluster.url}{path}?dryRun=All&fieldManager=vipcast-chart-test&force=true"
        method, ctype = "PATCH", "application/apply-patch+yaml"
    req = urllib.request.Request(
        url, data=json.dumps(doc).encode(), method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype,
                 "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:500]


def test_server_side_dry_run(helm_env: dict[str, str], vipcast_crds: Cluster) -> None:
    plural = {"CustomResourceDefinition": "customresourcedefinitions",
              "Namespace": "namespaces", "Service": "services", "ServiceAccount": None,
              **{crd["spec"]["names"]["kind"]: crd["spec"]["names"]["plural"]
                 for crd in (yaml.safe_load(t) for t in rendered_files().values())}}
    served = {k: v for k, v in plural.items() if v}
    results: dict[str, int] = {}
    failures = []
    skipped = set()
    for doc in _template(helm_env, "--values", str(EXAMPLE_VALUES)):
        path = _path(doc, served)
        if path is None:
            skipped.add(doc["kind"])
            continue
        code, body = _dry_run_apply(vipcast_crds, path, doc)
        if doc["kind"] == "Namespace" and code == 409 and "AlreadyExists" in body:
            code = 200
        results[f"{doc['kind']}/{doc['metadata']['name']}"] = code
        if code not in (200, 201):
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {code} {body}")
    assert not failures, "\n".join(failures)
    kinds = {k.split("/")[0] for k in results}
    assert {"CustomResourceDefinition", "IPAddressPool", "BGPPeer", "BGPAdvertisement",
            "L2Advertisement", "BFDProfile", "Community", "Namespace", "Service"} <= kinds
    # not served by the generic stand-in (validated by schema only): RBAC, apps, admission
    assert {"Deployment", "DaemonSet", "ClusterRole"} <= skipped


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def _pod(docs: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind
                and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
                )["spec"]["template"]["spec"]


def test_secrets_by_name_and_namespaces_from_the_downward_api(helm_env: dict[str, str]
                                                              ) -> None:
    """Issue 16: the Secret namespace was hard-coded (403s when installed elsewhere) and every
    speaker could read every Secret of the release namespace."""
    docs = _template(helm_env, "--namespace", "lb", "--set",
                     "peers[0].name=tor,peers[0].spec.myASN=1,peers[0].spec.peerASN=2,"
                     "peers[0].spec.peerAddress=198.18.0.1,"
                     "peers[0].spec.passwordSecret.name=tor-pw",
                     "--set", "bgpPasswordSecrets[0]=extra-pw")
    for kind, component in (("DaemonSet", "speaker"), ("Deployment", "controller")):
        container = _pod(docs, kind, component)["containers"][0]
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
    docs = _template(helm_env)
    assert not any("secrets" in r["resources"] for d in docs
                   if d["kind"] in ("Role", "ClusterRole") for r in d["rules"])


def test_class_less_services_only_without_a_configured_class(helm_env: dict[str, str]
                                                             ) -> None:
    speaker = _pod(_template(helm_env), "DaemonSet", "speaker")["containers"][0]
    assert not any(a.startswith("--load-balancer-class") for a in speaker["args"])
    speaker = _pod(_template(helm_env, "--set", "loadBalancerClass=vipcast.io/vipcast"),
                   "DaemonSet", "speaker")["containers"][0]
    assert "--load-balancer-class=vipcast.io/vipcast" in speaker["args"]


def test_controller_write_rate_from_values(helm_env: dict[str, str]) -> None:
    """Issue 19: the status-write limit existed as flags only; the chart never set it."""
    controller = _pod(_template(helm_env), "Deployment", "controller")["containers"][0]
    assert "--kube-api-qps=50" in controller["args"]
    assert "--kube-api-burst=100" in controller["args"]
    controller = _pod(_template(helm_env, "--set", "controller.kubeApiQps=0",
                                "--set", "controller.kubeApiBurst=7"),
                      "Deployment", "controller")["containers"][0]
    assert "--kube-api-qps=0" in controller["args"]
    assert "--kube-api-burst=7" in controller["args"]


def test_speaker_metrics_on_loopback_unless_asked(helm_env: dict[str, str]) -> None:
    """Issue 16: /status and /metrics were served on 0.0.0.0 of the host network."""
    speaker = _pod(_template(helm_env), "DaemonSet", "speaker")["containers"][0]
    assert "--metrics=127.0.0.1:7472" in speaker["args"]
    assert "ports" not in speaker
    speaker = _pod(_template(helm_env, "--set", "metrics.address=hostIP"), "DaemonSet",
                   "speaker")["containers"][0]
    assert "--metrics=$(HOST_IP):7472" in speaker["args"]
    env = {e["name"]: e for e in speaker["env"]}
    assert env["HOST_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    rendered = RENDERED.read_text()
    assert "0.0.0.0:7472" not in rendered


def test_speaker_metrics_on_the_pod_ip(helm_env: dict[str, str]) -> None:
    """Issue 16's documented way to expose metrics without a proxy: a port on the pod's IP
    (the node's address: the speaker is on the host network), declared, probed there."""
    speaker = _pod(_template(helm_env, "--set", "metrics.address=podIP", "--set",
                             "metrics.port=9472"), "DaemonSet", "speaker")["containers"][0]
    assert "--metrics=$(POD_IP):9472" in speaker["args"]
    env = {e["name"]: e for e in speaker["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert speaker["ports"] == [{"name": "metrics", "containerPort": 9472, "protocol": "TCP"}]
    # the kubelet probes the pod's IP (no host): where the endpoint listens
    assert speaker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 9472}
    assert speaker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9472}
    # on the loopback (the default), the probes name it
    speaker = _pod(_template(helm_env), "DaemonSet", "speaker")["containers"][0]
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
    docs = _template(helm_env)
    by_kind = _by_kind(docs)
    webhook = _pod(docs, "Deployment", "webhook")
    controller = _pod(docs, "Deployment", "controller")
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
    plain = _template(helm_env, "--set", "webhook.certManager.enabled=false",
                      "--set", "webhook.caBundle=Q0E=")
    assert not any(d["apiVersion"].startswith("cert-manager.io") for d in plain)


def test_l2_membership_key_from_a_generated_secret(helm_env: dict[str, str]) -> None:
    """Issue 16: no membership key was ever passed to the speaker, so L2 with more than one
    node never worked from the chart."""
    docs = _template(helm_env, "--values", str(EXAMPLE_VALUES))
    speaker = _pod(docs, "DaemonSet", "speaker")
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
    again = next(d for d in _template(helm_env) if d["kind"] == "Secret")
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


def test_crds_are_upgraded_by_helm(helm_env: dict[str, str]) -> None:
    """Issue 16: the CRDs were in crds/, which Helm installs once and never upgrades. They are
    templates now (rendered without --include-crds), kept on uninstall."""
    out = _helm(helm_env, "template", "vipcast", str(CHART), "--namespace", "vipcast-system")
    crds = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out)
            if d and d["kind"] == "CustomResourceDefinition"}
    generated = {(c := yaml.safe_load(t))["metadata"]["name"]: c
                 for t in rendered_files().values()}
    assert set(crds) == set(generated)
    for name, crd in crds.items():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert crd["spec"] == generated[name]["spec"], name
    assert not (CHART / "crds").exists()
    out = _helm(helm_env, "template", "vipcast", str(CHART), "--set", "crds.install=false")
    assert "CustomResourceDefinition" not in out


def test_pods_are_hardened_probed_and_spread(helm_env: dict[str, str]) -> None:
    """Issue 16: no seccomp profile on the speaker, no probes, no PodDisruptionBudget or
    anti-affinity for the controller replicas, no priority class for the speaker."""
    docs = _template(helm_env)
    speaker = _pod(docs, "DaemonSet", "speaker")
    assert speaker["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert speaker["priorityClassName"] == "system-node-critical"
    container = speaker["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 7472,
                                                     "host": "127.0.0.1"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for component in ("controller", "webhook"):
        pod = _pod(docs, "Deployment", component)
        term = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        c = pod["containers"][0]
        assert c["livenessProbe"] and c["readinessProbe"]
    controller = _pod(docs, "Deployment", "controller")["containers"][0]
    assert "--health=0.0.0.0:8081" in controller["args"]
    pdbs = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert pdbs["vipcast-controller"]["maxUnavailable"] == 1
    assert pdbs["vipcast-controller"]["selector"]["matchLabels"][
        "app.kubernetes.io/component"] == "controller"
    single = _template(helm_env, "--set", "controller.replicas=1")
    assert "vipcast-controller" not in {d["metadata"]["name"] for d in single
                                        if d["kind"] == "PodDisruptionBudget"}


def test_providers_controller_is_off_by_default_and_renders_when_enabled(
    helm_env: dict[str, str],
) -> None:
    """The external-LB controller (docs/external-lb.md): absent from the default manifest;
    with ``providers.enabled`` a Deployment of ``vipcast providers controller`` (two replicas
    electing a leader, a PodDisruptionBudget) and its least-privilege RBAC (its Lease, the
    credential Secrets by name only)."""
    assert "-providers" not in RENDERED.read_text()
    docs = _template(helm_env, "--set", "providers.enabled=true",
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
    single = _template(helm_env, "--set", "providers.enabled=true",
                       "--set", "providers.replicas=1")
    assert not any(d["kind"] == "PodDisruptionBudget" and
                   d["metadata"]["name"].endswith("-providers") for d in single if d)
    rules = mine["ClusterRole"]["rules"]
    assert not any("secrets" in r["resources"] for r in rules)
    assert {"apiGroups": [""], "resources": ["services"], "verbs": ["patch"]} in rules


def test_gateway_kinds_in_rbac_and_the_webhook_when_enabled(helm_env: dict[str, str]) -> None:
    """The L7 gateway (docs/gateway.md): every role reads the Gateway API kinds and Ingresses,
    the controller writes only their status; with ``gateway.enabled`` the controller runs
    ``--gateway-api`` and the ValidatingWebhookConfiguration also judges the gateway kinds and
    Ingresses of class vipcast (off by default: another implementation's routes are not
    vipcast's to judge)."""
    def roles(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "ClusterRole"}

    def webhooks(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        conf = next(d for d in docs if d["kind"] == "ValidatingWebhookConfiguration")
        return {w["name"]: w for w in conf["webhooks"]}

    def controller_args(docs: list[dict[str, Any]]) -> list[str]:
        dep = next(d for d in docs if d["kind"] == "Deployment"
                   and d["metadata"]["name"] == "vipcast-controller")
        args: list[str] = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    read = {"apiGroups": ["gateway.networking.k8s.io"],
            "resources": ["gatewayclasses", "gateways", "httproutes", "referencegrants"],
            "verbs": ["get", "list", "watch"]}
    ingress = {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
               "verbs": ["get", "list", "watch"]}
    status = {"apiGroups": ["gateway.networking.k8s.io"],
              "resources": ["gateways/status", "httproutes/status"],
              "verbs": ["get", "patch", "update"]}
    default = _template(helm_env)
    for name in ("vipcast-controller", "vipcast-speaker", "vipcast-webhook"):
        assert read in roles(default)[name] and ingress in roles(default)[name], name
    assert status in roles(default)["vipcast-controller"]
    # the Ingress Gateway's address goes to the Ingresses' status, never their spec
    ingress_status = {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"],
                      "verbs": ["get", "patch", "update"]}
    assert ingress_status in roles(default)["vipcast-controller"]
    for name in ("vipcast-speaker", "vipcast-webhook"):
        assert not any("ingresses/status" in r["resources"] for r in roles(default)[name])
    assert not any(d["kind"] == "IngressClass" for d in default)
    # nobody may write a Gateway's or HTTPRoute's spec
    for name, rules in roles(default).items():
        for r in rules:
            if "gateway.networking.k8s.io" in r["apiGroups"]:
                assert set(r["verbs"]) <= {"get", "list", "watch"} or all(
                    res.endswith("/status") for res in r["resources"]), (name, r)
    assert set(webhooks(default)) == {"validate.vipcast.io", "reports.vipcast.io",
                                      "nodes.vipcast.io"}
    assert "--gateway-api" not in controller_args(default)
    assert "gateway.vipcast.io" not in RENDERED.read_text()

    enabled = _template(helm_env, "--set", "gateway.enabled=true")
    hooks = webhooks(enabled)
    gw = hooks["gateway.vipcast.io"]["rules"][0]
    assert gw["apiGroups"] == ["gateway.networking.k8s.io"]
    assert set(gw["resources"]) == {"gatewayclasses", "gateways", "httproutes",
                                    "referencegrants"}
    assert gw["operations"] == ["CREATE", "UPDATE"]
    ing = hooks["ingress.vipcast.io"]
    assert ing["rules"][0]["resources"] == ["ingresses"]
    expression = ing["matchConditions"][0]["expression"]
    assert "'vipcast'" in expression
    # the legacy class annotation too, when spec.ingressClassName is not set
    assert "has(object.spec.ingressClassName) ?" in expression
    assert "object.metadata.annotations['kubernetes.io/ingress.class'] == 'vipcast'" in expression
    assert expression.endswith(": false")  # a class-less Ingress is not vipcast's to judge
    assert "--gateway-api" in controller_args(enabled)
    # the IngressClass of vipcast's controller, not the default unless asked
    (cls,) = [d for d in enabled if d["kind"] == "IngressClass"]
    assert cls["metadata"]["name"] == "vipcast"
    assert cls["spec"] == {"controller": "vipcast.io/ingress-controller"}
    assert cls["metadata"]["annotations"] == {
        "ingressclass.kubernetes.io/is-default-class": "false"}
    made_default = _template(
        helm_env, "--set", "gateway.enabled=true", "--set", "gateway.ingressClass.default=true",
        "--set", "gateway.ingressClass.name=edge",
        "--set", "gateway.ingressClass.addressPool=ingress")
    (cls,) = [d for d in made_default if d["kind"] == "IngressClass"]
    assert cls["metadata"]["name"] == "edge"
    assert cls["metadata"]["annotations"] == {
        "ingressclass.kubernetes.io/is-default-class": "true",
        "vipcast.io/address-pool": "ingress"}
    expression = webhooks(made_default)["ingress.vipcast.io"]["matchConditions"][0]["expression"]
    assert "'edge'" in expression and "'vipcast'" not in expression
    assert expression.endswith(": true")  # class-less Ingresses are the default class's


def test_gateway_runs_envoy_in_the_speakers_and_reads_only_tls_secrets(
        helm_env: dict[str, str]) -> None:
    """``gateway.enabled``: the speaker runs Envoy (``--gateway-workdir`` in its state volume,
    NET_BIND_SERVICE for ports 80/443, the gateway's resources); the controller and the
    speakers may read Secrets for the listeners' certificates -- anywhere (a ClusterRole) or
    only in ``gateway.tlsSecretNamespaces`` (Roles there) -- and nothing of that without it."""
    def speaker(docs: list[dict[str, Any]]) -> dict[str, Any]:
        ds = next(d for d in docs if d["kind"] == "DaemonSet")
        container: dict[str, Any] = ds["spec"]["template"]["spec"]["containers"][0]
        return container

    def secret_rules(docs: list[dict[str, Any]]) -> dict[tuple[str, str | None], Any]:
        return {(d["kind"], d["metadata"].get("namespace")): d["rules"] for d in docs
                if d["kind"] in ("Role", "ClusterRole")
                and d["metadata"]["name"] == "vipcast-gateway-tls"}

    def bound(docs: list[dict[str, Any]], kind: str) -> set[str]:
        return {s["name"] for d in docs if d["kind"] == kind
                and d["metadata"]["name"] == "vipcast-gateway-tls" for s in d["subjects"]}

    default = _template(helm_env)
    assert not any(a.startswith("--gateway") for a in speaker(default)["args"])
    assert "NET_BIND_SERVICE" not in speaker(default)["securityContext"]["capabilities"]["add"]
    assert secret_rules(default) == {}

    on = _template(helm_env, "--set", "gateway.enabled=true")
    sp = speaker(on)
    assert "--gateway-workdir=/run/vipcast/gateway" in sp["args"]
    assert "--gateway-admin-port=19000" in sp["args"]
    # Envoy's workers: one per CPU the speaker may use unless gateway.concurrency says
    assert not any(a.startswith("--gateway-concurrency") for a in sp["args"])
    four = _template(helm_env, "--set", "gateway.enabled=true", "--set", "gateway.concurrency=4")
    assert "--gateway-concurrency=4" in speaker(four)["args"]
    assert {"name": "state", "mountPath": "/run/vipcast"} in sp["volumeMounts"]
    assert sp["securityContext"]["capabilities"] == {
        "drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]}
    assert sp["securityContext"]["readOnlyRootFilesystem"] is True
    assert sp["resources"]["limits"]["memory"] == "512Mi"
    read = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]
    assert secret_rules(on) == {("ClusterRole", None): read}
    assert bound(on, "ClusterRoleBinding") == {"vipcast-controller", "vipcast-speaker"}

    narrow = _template(helm_env, "--set", "gateway.enabled=true",
                       "--set", "gateway.tlsSecretNamespaces={shop,certs}")
    assert secret_rules(narrow) == {("Role", "shop"): read, ("Role", "certs"): read}
    assert bound(narrow, "RoleBinding") == {"vipcast-controller", "vipcast-speaker"}
    # no other role of the chart reads Secrets beyond the BGP passwords' names
    for d in narrow:
        if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"] != "vipcast-gateway-tls":
            for r in d["rules"]:
                if "secrets" in r["resources"]:
                    assert r.get("resourceNames"), (d["metadata"]["name"], r)


def test_the_speaker_writes_nodes_only_to_patch_its_drain_state(helm_env: dict[str, str]) -> None:
    """The speaker's one write on core objects: ``patch`` on Nodes (the drain state
    annotation); never create, update or delete a Node, never write a Service."""
    docs = _template(helm_env)
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
    unguarded = _template(helm_env, "--set", "webhook.enabled=false")
    role = next(d for d in unguarded if d["kind"] == "ClusterRole"
                and d["metadata"]["name"].endswith("-speaker"))
    assert not [r for r in role["rules"] if "nodes" in r["resources"]
                and set(r["verbs"]) - {"get", "list", "watch"}]


def test_speaker_suspicion_floor_from_values(helm_env: dict[str, str]) -> None:
    """``speaker.suspicionMin`` becomes the speaker's ``--suspicion-min`` (docs/membership.md,
    "The suspicion floor"); unset, no flag (the speaker's default)."""
    speaker = _pod(_template(helm_env), "DaemonSet", "speaker")["containers"][0]
    assert not [a for a in speaker["args"] if a.startswith("--suspicion-min")]
    speaker = _pod(_template(helm_env, "--set", "speaker.suspicionMin=0.45"), "DaemonSet",
                   "speaker")["containers"][0]
    assert "--suspicion-min=0.45" in speaker["args"]
