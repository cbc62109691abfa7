"""The chart with and without ``gateway.enabled`` (docs/gateway.md): the Gateway API kinds and
Ingresses in every role's reads and the webhook, the IngressClass, Envoy in the speakers and the
listeners' TLS Secrets."""

from __future__ import annotations

from typing import Any

from .helm_chart import RENDERED, template


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
    default = template(helm_env)
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

    enabled = template(helm_env, "--set", "gateway.enabled=true")
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
    made_default = template(
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

    default = template(helm_env)
    assert not any(a.startswith("--gateway") for a in speaker(default)["args"])
    assert "NET_BIND_SERVICE" not in speaker(default)["securityContext"]["capabilities"]["add"]
    assert secret_rules(default) == {}

    on = template(helm_env, "--set", "gateway.enabled=true")
    sp = speaker(on)
    assert "--gateway-workdir=/run/vipcast/gateway" in sp["args"]
    assert "--gateway-admin-port=19000" in sp["args"]
    # Envoy's workers: one per CPU the speaker may use unless gateway.concurrency says
    assert not any(a.startswith("--gateway-concurrency") for a in sp["args"])
    four = template(helm_env, "--set", "gateway.enabled=true", "--set", "gateway.concurrency=4")
    assert "--gateway-concurrency=4" in speaker(four)["args"]
    assert {"name": "state", "mountPath": "/run/vipcast"} in sp["volumeMounts"]
    assert sp["securityContext"]["capabilities"] == {
        "drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]}
    assert sp["securityContext"]["readOnlyRootFilesystem"] is True
    assert sp["resources"]["limits"]["memory"] == "512Mi"
    read = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]
    assert secret_rules(on) == {("ClusterRole", None): read}
    assert bound(on, "ClusterRoleBinding") == {"vipcast-controller", "vipcast-speaker"}

    narrow = template(helm_env, "--set", "gateway.enabled=true",
                      "--set", "gateway.tlsSecretNamespaces={shop,certs}")
    assert secret_rules(narrow) == {("Role", "shop"): read, ("Role", "certs"): read}
    assert bound(narrow, "RoleBinding") == {"vipcast-controller", "vipcast-speaker"}
    # no other role of the chart reads Secrets beyond the BGP passwords' names
    for d in narrow:
        if d["kind"] in ("Role", "ClusterRole") and d["metadata"]["name"] != "vipcast-gateway-tls":
            for r in d["rules"]:
                if "secrets" in r["resources"]:
                    assert r.get("resourceNames"), (d["metadata"]["name"], r)
