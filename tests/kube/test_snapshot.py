"""build_spec: bad core objects are left out, a bad config keeps the last good one."""

from __future__ import annotations

from typing import Any

from vipcast.sources.kube.snapshot import build_spec, to_document


def _pool(name: str, addresses: list[str]) -> dict[str, Any]:
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "managedFields": [{"manager": "x"}]},
            "spec": {"addresses": addresses}, "status": {"used": 1}}


def _svc(name: str, ip: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    if ip:
        spec["loadBalancerIP"] = ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def test_to_document_strips_status_of_our_kinds_and_managed_fields() -> None:
    doc = to_document("IPAddressPool", _pool("a", ["192.0.2.0/28"]))
    assert "status" not in doc
    assert "managedFields" not in doc["metadata"]


def test_good_objects_make_a_spec() -> None:
    out = build_spec({"IPAddressPool": [_pool("a", ["192.0.2.0/28"])],
                      "Service": [_svc("web")]})
    assert out.spec is not None
    assert [p.name for p in out.spec.pools] == ["a"]
    assert out.issues == () and not out.config_stale
    assert out.config[0][0] == "IPAddressPool/a"


def test_bad_service_is_dropped_others_go_on() -> None:
    out = build_spec({"IPAddressPool": [_pool("a", ["192.0.2.0/28"])],
                      "Service": [_svc("web"), _svc("bad", ip="not-an-ip")]})
    assert out.spec is not None
    assert [s.metadata.name for s in out.spec.services] == ["web"]
    assert out.dropped == ("Service/default/bad",)
    assert out.issues


def test_bad_pool_keeps_last_good_config() -> None:
    good = build_spec({"IPAddressPool": [_pool("a", ["192.0.2.0/28"])]})
    broken = build_spec(
        {"IPAddressPool": [_pool("a", ["192.0.2.0/28"]), _pool("b", ["192.0.2.8/29"])],
         "Service": [_svc("web")]},
        last_good=good.config)
    assert broken.spec is not None and broken.config_stale
    assert [p.name for p in broken.spec.pools] == ["a"]
    assert [s.metadata.name for s in broken.spec.services] == ["web"]


def test_bad_config_without_a_good_one_gives_nothing() -> None:
    out = build_spec({"IPAddressPool": [_pool("a", ["nonsense"])], "Service": [_svc("web")]})
    assert out.spec is None and out.config_stale and out.issues
