"""The CRDs generated from the spec models: up to date, accepted by a real API server, and the
shipped examples pass server-side validation (dry run, strict field validation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vipcast.sources.kube.crds import KINDS, all_crds, rendered_files

from .harness.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [p for d in ("bgp", "l2", "dualstack") for p in sorted((ROOT / "examples" / d).glob(
    "*.yaml"))]
PLURALS = {info.model.__name__: info.plural for info in KINDS}
CORE = {"Service": "services", "Node": "nodes", "Namespace": "namespaces", "Secret": "secrets"}


def test_deploy_crds_are_generated_output() -> None:
    for name, text in rendered_files().items():
        assert (ROOT / "deploy" / "crds" / name).read_text() == text, (
            f"deploy/crds/{name} is stale: run `vipcast kube crds --out deploy/crds`")


def test_crds_are_structural_and_bounded() -> None:
    for crd in all_crds():
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"][-1]["name"] == "Age"

        def walk(node: dict[str, Any]) -> None:
            assert "$ref" not in node and "anyOf" not in node
            if node.get("type") == "array":
                assert "maxItems" in node
            for sub in node.get("properties", {}).values():
                walk(sub)
            if isinstance(node.get("items"), dict):
                walk(node["items"])

        walk(version["schema"]["openAPIV3Schema"])


def _path(doc: dict[str, Any]) -> str:
    kind = doc["kind"]
    if kind in PLURALS:
        return f"/apis/vipcast.io/v1beta1/{PLURALS[kind]}"
    if kind == "EndpointSlice":
        ns = doc["metadata"].get("namespace", "default")
        return f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
    if kind in ("Service", "Secret"):
        ns = doc["metadata"].get("namespace", "default")
        return f"/api/v1/namespaces/{ns}/{CORE[kind]}"
    return f"/api/v1/{CORE[kind]}"


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_pass_server_dry_run(vipcast_crds: Cluster, example: Path) -> None:
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    assert docs
    for doc in docs:
        code, body = vipcast_crds.request(
            "POST", _path(doc) + "?dryRun=All&fieldValidation=Strict", doc)
        assert code == 201, f"{example.name} {doc['kind']}/{doc['metadata']['name']}: {body}"


@pytest.mark.slow
def test_server_applies_defaults_and_cel_rules(vipcast_crds: Cluster) -> None:
    pool = {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "defaults"}, "spec": {"addresses": ["192.0.2.0/28"]}}
    code, body = vipcast_crds.request(
        "POST", "/apis/vipcast.io/v1beta1/ipaddresspools?dryRun=All", pool)
    assert code == 201, body
    assert body["spec"]["autoAssign"] is True
    peer = {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": "p"},
            "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "192.0.2.1",
                     "holdTime": "90s", "password": "x", "passwordSecret": {"name": "s"}}}
    code, body = vipcast_crds.request("POST", "/apis/vipcast.io/v1beta1/bgppeers?dryRun=All",
                                      peer)
    assert code == 422, body
    assert "not both" in body["message"]
    peer["spec"].pop("password")
    peer["spec"]["myASN"] = 0
    code, body = vipcast_crds.request("POST", "/apis/vipcast.io/v1beta1/bgppeers?dryRun=All",
                                      peer)
    assert code == 422
    assert any(c.get("field") == "spec.myASN" for c in body["details"]["causes"])
