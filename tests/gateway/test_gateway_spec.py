"""Gateway API objects and Ingress in the YAML file set: good ones load, bad ones are refused
with file, kind/name and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vipcast.sources.files import load_paths
from vipcast.spec import SpecError, load_documents
from vipcast.spec.gateway import regex_problem

EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway"


def _load(text: str, source: str = "f.yaml") -> object:
    return load_documents([(source, d) for d in yaml.safe_load_all(text)])


def _issues(text: str) -> set[tuple[str, str, str]]:
    with pytest.raises(SpecError) as err:
        _load(text)
    return {(i.obj, i.field, i.message) for i in err.value.issues}


def test_example_loads_every_kind() -> None:
    spec = load_paths([EXAMPLE])
    assert [g.name for g in spec.gateway_classes] == ["vipcast"]
    assert [g.key for g in spec.gateways] == ["default/web"]
    assert [r.key for r in spec.http_routes] == ["default/shop"]
    assert [g.key for g in spec.reference_grants] == ["shop/from-default"]
    assert [i.key for i in spec.ingresses] == ["default/blog"]
    route = spec.http_routes[0]
    assert route.spec.rules[0].backend_refs[0].weight == 90
    # defaults of the upstream schema
    assert route.spec.rules[2].matches[0].path.type == "PathPrefix"
    assert route.spec.rules[2].matches[0].path.value == "/"
    assert route.spec.parent_refs[0].kind == "Gateway"
    assert spec.gateways[0].spec.listeners[0].allowed_routes.namespaces.from_ == "Same"


def test_objects_as_the_api_server_returns_them_load() -> None:
    """Server metadata and status are accepted (and not read)."""
    spec = _load("""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: default
  creationTimestamp: "2026-12-06T01:02:03Z"
  generation: 3
  uid: 0e0b1c3a
  resourceVersion: "12"
  managedFields: [{manager: kubectl}]
spec:
  parentRefs: [{name: web}]
status:
  parents: [{parentRef: {name: web}, controllerName: vipcast.io/gateway, conditions: []}]
""")
    route = spec.http_routes[0]  # type: ignore[attr-defined]
    assert route.metadata.creation_timestamp == "2026-12-06T01:02:03Z"
    assert route.metadata.generation == 3


def test_unknown_field_is_refused_with_its_path() -> None:
    issues = _issues("""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  rules: [{matches: [{path: {type: Prefix, value: /}}], backendRef: []}]
""")
    fields = {f for _o, f, _m in issues}
    assert "spec.rules[0].backendRef" in fields
    assert "spec.rules[0].matches[0].path.type" in fields


def test_bad_route_issues_name_kind_name_and_field() -> None:
    issues = _issues("""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  hostnames: ["Bad_Host", "192.0.2.1"]
  rules:
  - matches:
    - {path: {type: RegularExpression, value: "/(a"}}
    - headers: [{name: x-v, type: RegularExpression, value: "(a)\\\\1"}]
      queryParams: [{name: q, type: RegularExpression, value: "a(?!b)"}]
    filters:
    - {type: Rewrite}
    - {type: RequestMirror, requestMirror: {backendRef: {name: m, port: 80}}}
    - {type: RequestHeaderModifier}
    backendRefs: [{name: s}]
  - matches: [{path: {type: Exact, value: /x}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /y}}
    backendRefs: [{name: s, port: 80}]
""")
    by_field = {f: m for o, f, m in issues if o == "HTTPRoute/apps/r"}
    assert "is not a hostname" in by_field["spec.hostnames[0]"]
    assert "is an IP address" in by_field["spec.hostnames[1]"]
    assert by_field["spec.rules[0].matches[0].path.value"].startswith("invalid regular expression")
    assert "backreferences" in by_field["spec.rules[0].matches[1].headers[0].value"]
    assert "lookaround" in by_field["spec.rules[0].matches[1].queryParams[0].value"]
    assert by_field["spec.rules[0].filters[0].type"].startswith("unknown filter 'Rewrite'")
    assert "not supported by vipcast" in by_field["spec.rules[0].filters[1].type"]
    assert "needs its requestHeaderModifier" in by_field[
        "spec.rules[0].filters[2].requestHeaderModifier"]
    assert "needs a port" in by_field["spec.rules[0].backendRefs[0].port"]
    assert "no backendRefs" in by_field["spec.rules[1].backendRefs"]
    assert "PathPrefix" in by_field["spec.rules[1].filters[0]"]


def test_conflicting_listeners_are_refused() -> None:
    issues = _issues("""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g}
spec:
  gatewayClassName: vipcast
  addresses: [{value: not-an-ip}]
  listeners:
  - {name: a, port: 80, protocol: HTTP, hostname: a.example.com}
  - {name: b, port: 80, protocol: HTTP, hostname: b.example.com}
  - {name: c, port: 80, protocol: HTTPS, tls: {certificateRefs: [{name: x}]}}
  - {name: d, port: 80, protocol: HTTP, hostname: a.example.com}
  - {name: a, port: 443, protocol: HTTPS}
  - {name: u, port: 53, protocol: UDP}
""")
    by_field = {f: m for o, f, m in issues if o == "Gateway/default/g"}
    assert "port 80 is HTTP on listener 'a'" in by_field["spec.listeners[2]"]
    assert "is also listener 'a'" in by_field["spec.listeners[3]"]
    assert "spec.listeners[1]" not in by_field  # another hostname on the same port is fine
    assert "duplicate listener name" in by_field["spec.listeners[4].name"]
    assert "certificateRef" in by_field["spec.listeners[4].tls.certificateRefs"]
    assert "not served" in by_field["spec.listeners[5].protocol"]
    assert "not an IP address" in by_field["spec.addresses[0].value"]


def test_ingress_checks() -> None:
    issues = _issues("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: i, namespace: default}
spec:
  ingressClassName: vipcast
  rules:
  - host: ok.example.com
    http:
      paths:
      - {path: nope, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
      - {path: /r, pathType: Exact, backend: {resource: {kind: Bucket, name: b}}}
      - {path: /p, pathType: Exact, backend: {service: {name: s, port: {}}}}
""")
    fields = {f for o, f, _m in issues if o == "Ingress/default/i"}
    assert fields == {
        "spec.rules[0].http.paths[0].path",
        "spec.rules[0].http.paths[1].backend",
        "spec.rules[0].http.paths[2].backend.service.port",
    }


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [("^/api/v[0-9]+$", True), ("(?i)abc", True), ("a{2,3}", True), ("(a", False),
     ("(?<=a)b", False), ("(x)\\1", False), ("a++", False), ("(?>a)", False)],
)
def test_regex_problem(pattern: str, ok: bool) -> None:
    assert (regex_problem(pattern) is None) == ok
