"""Ingresses of vipcast's classes on Kubernetes (issue 12): the controller allocates the Ingress
Gateway an address from the pool its IngressClass names, commits it to every served
Ingress's ``status.loadBalancer.ingress`` -- by ``spec.ingressClassName``, by the legacy
annotation, and without a class while vipcast's IngressClass is the default --, leaves another
controller's Ingress alone, takes the address back from an Ingress whose class changed away,
and a new leader moves nothing."""

from __future__ import annotations

from typing import Any

from .harness.cluster import Cluster
from .harness.gateway_controller import run_gateway_controller
from .kubetools import post
from .test_gateway_addresses import _status
from .test_gateway_tls import _chart, _rules_for
from .test_manifests import _allowed

NET = "/apis/networking.k8s.io/v1"
POOL = "198.18.24.0/29"


def _ingress(ns: str, name: str, *, cls: str | None = None, legacy: str | None = None
             ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if legacy:
        meta["annotations"] = {"kubernetes.io/ingress.class": legacy}
    spec: dict[str, Any] = {"rules": [{"host": f"{name}.example", "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    if cls:
        spec["ingressClassName"] = cls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": spec}


def _update(cluster: Cluster, path: str, change: Any) -> None:
    """GET, change, PUT (the test client sends JSON only: no merge patch)."""
    code, obj = cluster.request("GET", path)
    assert code == 200, obj
    change(obj)
    code, body = cluster.request("PUT", path, obj)
    assert code == 200, body


def _ips(cluster: Cluster, ns: str, name: str) -> list[str]:
    lb = _status(cluster, f"{NET}/namespaces/{ns}/ingresses/{name}").get("loadBalancer") or {}
    return [i["ip"] for i in lb.get("ingress") or ()]


def test_ingresses_of_our_classes_get_the_ingress_gateway_address(
        gateway_api: Cluster, namespace: str) -> None:
    cluster, ns = gateway_api, namespace
    cls = f"vipcast-{ns}"
    ings = f"{NET}/namespaces/{ns}/ingresses"
    post(cluster, "/apis/vipcast.io/v1beta1/ipaddresspools", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": f"ing-{ns}"},
        "spec": {"addresses": [POOL], "autoAssign": False}})
    post(cluster, f"{NET}/ingressclasses", {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": cls, "annotations": {
            "ingressclass.kubernetes.io/is-default-class": "true",
            "vipcast.io/address-pool": f"ing-{ns}"}},
        "spec": {"controller": "vipcast.io/ingress-controller"}})
    # nginx's (already written by it): never touched
    post(cluster, ings, _ingress(ns, "nginx", cls="nginx"))
    _update(cluster, f"{ings}/nginx/status", lambda o: o.update(
        status={"loadBalancer": {"ingress": [{"ip": "192.0.2.200"}]}}))
    for ing in (_ingress(ns, "field", cls=cls), _ingress(ns, "legacy", legacy=cls),
                _ingress(ns, "classless")):
        post(cluster, ings, ing)
    try:
        def told(vip: str) -> bool:
            """The IPAllocated Event on the class-less Ingress (written after its status)."""
            _, events = cluster.request("GET", f"/api/v1/namespaces/{ns}/events")
            return any(e["involvedObject"].get("name") == "classless"
                       and e["reason"] == "IPAllocated" and vip in e["message"]
                       for e in events.get("items") or ())

        def all_three() -> str | None:
            got = {n: _ips(cluster, ns, n) for n in ("field", "legacy", "classless")}
            first = got["field"]
            return first[0] if (first and all(v == first for v in got.values())
                                and told(first[0])) else None

        vip = run_gateway_controller(cluster, ns, "ing-a", all_three,
                                     kubeconfig=cluster.kubeconfig_for(f"ing-{ns}"),
                                     failure="not all three Ingresses, or no Event")
        assert vip.startswith("198.18.24.")
        assert _ips(cluster, ns, "nginx") == ["192.0.2.200"]
        assert told(vip)

        # the field's Ingress changes class: it loses the address; a new leader keeps the
        # others' (the commitment is their status)
        _update(cluster, f"{ings}/field", lambda o: o["spec"].update(ingressClassName="nginx"))
        run_gateway_controller(cluster, ns, "ing-b", lambda: not _ips(cluster, ns, "field"),
                               kubeconfig=cluster.kubeconfig_for(f"ing-{ns}"))
        assert _ips(cluster, ns, "legacy") == [vip]
        assert _ips(cluster, ns, "classless") == [vip]

        # vipcast's class is no longer the default: the class-less Ingress loses it too
        _update(cluster, f"{NET}/ingressclasses/{cls}", lambda o: o["metadata"]["annotations"]
                .update({"ingressclass.kubernetes.io/is-default-class": "false"}))
        run_gateway_controller(cluster, ns, "ing-c", lambda: not _ips(cluster, ns, "classless"),
                               kubeconfig=cluster.kubeconfig_for(f"ing-{ns}"))
        assert _ips(cluster, ns, "legacy") == [vip]
        assert _ips(cluster, ns, "nginx") == ["192.0.2.200"]
        # the chart (gateway.enabled) grants every call the controller made: the Ingresses'
        # status (never their spec), the IngressClasses read
        calls = [c for c in cluster.audit() if c.get("user") == f"ing-{ns}"]
        assert any(c["resource"] == "ingresses" and c["subresource"] == "status"
                   for c in calls)
        assert not any(c["resource"] == "ingresses" and not c["subresource"]
                       and c["verb"] not in ("get", "list", "watch") for c in calls)
        rules = _rules_for("vipcast-controller", _chart("--set", "gateway.enabled=true"))
        missing = sorted({f"{c['verb']} {c['group'] or 'core'}/{c['resource']}"
                          f"{'/' + c['subresource'] if c['subresource'] else ''}"
                          for c in calls if not _allowed(rules, c)})
        assert not missing, "vipcast-controller lacks:\n" + "\n".join(missing)
    finally:
        # cluster-scoped: a default IngressClass would take every later test's Ingresses
        cluster.request("DELETE", f"{NET}/ingressclasses/{cls}")
        for name in ("field", "legacy", "classless", "nginx"):
            cluster.request("DELETE", f"{ings}/{name}")
        cluster.request("DELETE", f"/apis/vipcast.io/v1beta1/ipaddresspools/ing-{ns}")

