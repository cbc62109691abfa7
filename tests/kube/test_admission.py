"""Admission review (pure): model errors and added cross-object problems are denied,
dangling references only warned, old problems not held against a change."""

from __future__ import annotations

from typing import Any

from vipcast.sources.kube.admission import review


def _pool(name: str, addresses: list[str]) -> dict[str, Any]:
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name}, "spec": {"addresses": addresses}}


def _req(obj: dict[str, Any], op: str = "CREATE", old: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "kind": {"group": "vipcast.io", "version": "v1beta1",
                                               "kind": obj["kind"]},
                        "operation": op, "name": obj["metadata"]["name"], "object": obj,
                        "oldObject": old}}


def test_valid_pool_allowed() -> None:
    out = review(_req(_pool("a", ["192.0.2.0/28"])), {})
    assert out["response"] == {"uid": "u1", "allowed": True}


def test_model_error_denied_with_field() -> None:
    out = review(_req(_pool("a", ["not-a-range"])), {})
    resp = out["response"]
    assert resp["allowed"] is False and resp["status"]["code"] == 422
    assert "spec.addresses" in resp["status"]["message"]


def test_overlap_with_existing_pool_denied() -> None:
    out = review(_req(_pool("b", ["192.0.2.8/29"])),
                 {"IPAddressPool": [_pool("a", ["192.0.2.0/28"])]})
    assert out["response"]["allowed"] is False
    assert "overlap" in out["response"]["status"]["message"]


def test_update_of_same_object_is_not_an_overlap_with_itself() -> None:
    old = _pool("a", ["192.0.2.0/28"])
    out = review(_req(_pool("a", ["192.0.2.0/27"]), "UPDATE", old), {"IPAddressPool": [old]})
    assert out["response"]["allowed"] is True


def test_dangling_reference_warns() -> None:
    adv = {"apiVersion": "vipcast.io/v1beta1", "kind": "L2Advertisement",
           "metadata": {"name": "l2"}, "spec": {"ipAddressPools": ["later"]}}
    out = review(_req(adv), {})
    assert out["response"]["allowed"] is True
    assert any("later" in w for w in out["response"]["warnings"])


def test_other_kinds_and_deletes_allowed() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}
    assert review(_req(svc), {})["response"]["allowed"] is True
    assert review(_req(_pool("a", ["junk"]), "DELETE"), {})["response"]["allowed"] is True


def _ingress(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "shop", "namespace": "default"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {**spec, "rules": [{"host": "shop.example", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"resource": {"apiGroup": "x.io", "kind": "Bucket",
                                         "name": "b"}}}]}}]}}


def test_an_ingress_sent_to_the_webhook_is_judged_as_vipcasts_whatever_its_class_name() -> None:
    """The webhook is asked only for Ingresses of vipcast's class (matchConditions: the
    chart's IngressClass name, or no class while it is the default), and it does not watch
    IngressClasses: such an Ingress is judged as vipcast's, a resource backend refused."""
    for ing in (_ingress({"ingressClassName": "edge"}),
                _ingress({}, {"kubernetes.io/ingress.class": "edge"}),
                _ingress({})):
        response = review(_req(ing), {})["response"]
        assert response["allowed"] is False, ing
        assert "only service backends are served" in response["status"]["message"]
