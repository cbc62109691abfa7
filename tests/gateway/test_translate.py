"""Translation cases: the proxy model and the Gateway/HTTPRoute status values."""

from __future__ import annotations

import random

from gwobjects import (
    backend,
    endpoint_slice,
    gateway,
    gateway_class,
    grant,
    ready,
    route,
    service,
    spec_of,
    terminating,
    tls_secret,
)

from vipcast.core.gateway import condition, model_bytes, translate
from vipcast.core.gateway.model import INVALID_BACKEND, Endpoint, Translation, WeightedCluster

PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def _t(*docs: dict[str, object]) -> Translation:
    return translate(spec_of([gateway_class(), *docs]), "n1")


def _parent(t: Translation, key: str, kind: str) -> tuple[str, str]:
    st = t.route(key)
    assert st is not None, key
    cond = condition(st.parents[0].conditions, kind)
    assert cond is not None
    return cond.status, cond.reason


def test_a_simple_route_forwards_to_ready_pod_endpoints() -> None:
    t = _t(gateway(), service("api"),
           endpoint_slice("api", endpoints=[ready("10.1.0.2"), ready("10.1.0.1"),
                                            terminating("10.1.0.3"),
                                            terminating("10.1.0.4", serving=False)]),
           route("r", rules=[{"backendRefs": [backend("api")]}]))
    assert _parent(t, "default/r", "Accepted") == ("True", "Accepted")
    assert _parent(t, "default/r", "ResolvedRefs") == ("True", "ResolvedRefs")
    [lis] = t.model.listeners
    assert (lis.address, lis.port, lis.protocol) == ("192.0.2.80", 80, "HTTP")
    [cfg] = t.model.route_configs
    [vh] = cfg.virtual_hosts
    assert vh.domains == ("*",)
    assert vh.routes[0].backends == (WeightedCluster("default/api:80", 1),)
    [cluster] = t.model.clusters
    # ready pods by address, the serving-terminating one drained, the non-serving one gone
    assert cluster.endpoints == (
        Endpoint("10.1.0.1", 8080, False, "n1"), Endpoint("10.1.0.2", 8080, False, "n1"),
        Endpoint("10.1.0.3", 8080, True, "n1"),
    )
    gw = t.gateway("default/web")
    assert gw is not None and gw.addresses == ("192.0.2.80",)
    assert condition(gw.conditions, "Programmed").status == "True"  # type: ignore[union-attr]
    assert gw.listeners[0].attached_routes == 1


def test_only_terminating_endpoints_are_used_rather_than_none() -> None:
    t = _t(gateway(), service("api"),
           endpoint_slice("api", endpoints=[terminating("10.1.0.3")]),
           route("r", rules=[{"backendRefs": [backend("api")]}]))
    assert t.model.clusters[0].endpoints == (Endpoint("10.1.0.3", 8080, False, "n1"),)


def test_missing_service_is_backend_not_found_and_answered_500() -> None:
    t = _t(gateway(), route("r", rules=[{"backendRefs": [backend("nope")]}]))
    assert _parent(t, "default/r", "Accepted") == ("True", "Accepted")
    assert _parent(t, "default/r", "ResolvedRefs") == ("False", "BackendNotFound")
    r = t.model.route_configs[0].virtual_hosts[0].routes[0]
    assert r.direct_status == 500 and r.backends == ()
    assert t.model.clusters == ()


def test_missing_port_on_service_is_backend_not_found() -> None:
    t = _t(gateway(), service("api", ports=(80,)),
           route("r", rules=[{"backendRefs": [backend("api", port=81)]}]))
    assert _parent(t, "default/r", "ResolvedRefs") == ("False", "BackendNotFound")


def test_cross_namespace_backend_needs_a_reference_grant() -> None:
    docs = [gateway(), service("store", ns="shop"),
            route("r", rules=[{"backendRefs": [backend("store", namespace="shop")]}])]
    t = _t(*docs)
    assert _parent(t, "default/r", "ResolvedRefs") == ("False", "RefNotPermitted")
    wrong = grant("shop", "other")
    assert _parent(_t(*docs, wrong), "default/r", "ResolvedRefs") == ("False", "RefNotPermitted")
    t = _t(*docs, grant("shop", "default"))
    assert _parent(t, "default/r", "ResolvedRefs") == ("True", "ResolvedRefs")
    assert t.model.clusters[0].name == "shop/store:80"


def test_invalid_kind() -> None:
    t = _t(gateway(), route("r", rules=[{"backendRefs": [
        backend("bucket", group="example.com", kind="Bucket")]}]))
    assert _parent(t, "default/r", "ResolvedRefs") == ("False", "InvalidKind")


def test_weights_and_an_invalid_share() -> None:
    t = _t(gateway(), service("v1"), service("v2"),
           route("r", rules=[{"backendRefs": [backend("v1", weight=90), backend("v2", weight=10),
                                               backend("gone", weight=5),
                                               backend("v2", weight=0)]}]))
    r = t.model.route_configs[0].virtual_hosts[0].routes[0]
    assert r.backends == (WeightedCluster("default/v1:80", 90),
                          WeightedCluster("default/v2:80", 10),
                          WeightedCluster(INVALID_BACKEND, 5))
    # the invalid share has no cluster: Envoy answers it 500 (dataplane/envoy/routes.py)
    assert [c.name for c in t.model.clusters] == ["default/v1:80", "default/v2:80"]


def test_listener_hostname_must_intersect() -> None:
    gw = gateway(listeners=[{"name": "a", "port": 80, "protocol": "HTTP",
                             "hostname": "*.example.com"}])
    t = _t(gw, service("s"),
           route("ok", hostnames=["shop.example.com", "other.org"],
                 rules=[{"backendRefs": [backend("s")]}]),
           route("no", hostnames=["other.org"], rules=[{"backendRefs": [backend("s")]}]))
    assert _parent(t, "default/no", "Accepted") == ("False", "NoMatchingListenerHostname")
    assert _parent(t, "default/ok", "Accepted") == ("True", "Accepted")
    domains = [vh.domains for vh in t.model.route_configs[0].virtual_hosts]
    assert domains == [("shop.example.com",)]
    assert t.gateway("default/web").listeners[0].attached_routes == 1  # type: ignore[union-attr]


def test_allowed_routes_namespaces() -> None:
    same = gateway()
    t = _t(same, service("s", ns="apps"),
           {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "apps", "labels": {"gateway": "yes"}}},
           route("r", ns="apps", parents=[{"name": "web", "namespace": "default"}],
                 rules=[{"backendRefs": [backend("s")]}]))
    assert _parent(t, "apps/r", "Accepted") == ("False", "NotAllowedByListeners")
    sel = gateway(listeners=[{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {
        "namespaces": {"from": "Selector", "selector": {"matchLabels": {"gateway": "yes"}}}}}])
    t = _t(sel, service("s", ns="apps"),
           {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "apps", "labels": {"gateway": "yes"}}},
           route("r", ns="apps", parents=[{"name": "web", "namespace": "default"}],
                 rules=[{"backendRefs": [backend("s")]}]))
    assert _parent(t, "apps/r", "Accepted") == ("True", "Accepted")


def test_section_name_that_no_listener_has() -> None:
    t = _t(gateway(), route("r", parents=[{"name": "web", "sectionName": "nope"}],
                            rules=[{"backendRefs": [backend("s")]}]))
    assert _parent(t, "default/r", "Accepted") == ("False", "NoMatchingParent")


def test_gateways_of_other_controllers_and_their_routes_are_left_alone() -> None:
    t = _t(gateway_class("other", "example.com/gw"), gateway("g2", cls="other"),
           route("r", parents=[{"name": "g2"}], rules=[{"backendRefs": [backend("s")]}]))
    assert t.gateways == () and t.routes == () and t.model.listeners == ()
    assert [c.name for c in t.gateway_classes] == ["vipcast"]


def test_two_gateways_asking_for_one_address() -> None:
    t = _t(gateway("old", created="2026-01-01T00:00:00Z"),
           gateway("new", created="2026-02-01T00:00:00Z"))
    new, old = t.gateway("default/new"), t.gateway("default/old")
    assert old is not None and new is not None
    assert condition(old.conditions, "Programmed").status == "True"  # type: ignore[union-attr]
    prog = condition(new.conditions, "Programmed")
    assert prog is not None and (prog.status, prog.reason) == ("False", "AddressNotUsable")
    assert "default/old" in prog.message
    assert [lis.name for lis in t.model.listeners] == ["default/old/192.0.2.80/80"]


def test_gateway_without_address_is_not_programmed() -> None:
    t = _t(gateway(addresses=()))
    gw = t.gateway("default/web")
    prog = condition(gw.conditions, "Programmed")  # type: ignore[union-attr]
    assert prog is not None and prog.reason == "AddressNotAssigned"
    assert t.model.listeners == ()
    # an allocated address programs it
    t = translate(spec_of([gateway_class(), gateway(addresses=())]), "n1",
                  {"default/web": ("198.51.100.7",)})
    assert [lis.address for lis in t.model.listeners] == ["198.51.100.7"]


def test_https_listeners_certificates_and_sni() -> None:
    listeners = [
        {"name": "a", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
         "tls": {"certificateRefs": [{"name": "a-cert"}]}},
        {"name": "b", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com",
         "tls": {"certificateRefs": [{"name": "b-cert", "namespace": "certs"}]}},
        {"name": "c", "port": 8443, "protocol": "HTTPS", "hostname": "c.example.com",
         "tls": {"certificateRefs": [{"name": "missing"}]}},
    ]
    docs = [gateway(listeners=listeners), tls_secret("a-cert", "default", PEM_CERT, PEM_KEY),
            tls_secret("b-cert", "certs", PEM_CERT, PEM_KEY)]
    t = _t(*docs)
    gw = t.gateway("default/web")
    assert gw is not None
    reasons = {ls.name: condition(ls.conditions, "ResolvedRefs").reason  # type: ignore[union-attr]
               for ls in gw.listeners}
    assert reasons == {"a": "ResolvedRefs", "b": "RefNotPermitted", "c": "InvalidCertificateRef"}
    accepted = condition(gw.conditions, "Accepted")
    assert accepted is not None and (accepted.status, accepted.reason) == ("True",
                                                                            "ListenersNotValid")
    t = _t(*docs, grant("certs", "default", to_kind="Secret", from_kind="Gateway"))
    [lis] = t.model.listeners
    assert lis.port == 443
    assert [(c.server_names, c.certificates) for c in lis.filter_chains] == [
        (("a.example.com",), ("default/a-cert",)), (("b.example.com",), ("certs/b-cert",))]
    assert [c.name for c in t.model.certificates] == ["certs/b-cert", "default/a-cert"]


def test_conflicted_listener_is_reported_not_programmed() -> None:
    """From the API server a conflict can arrive (the file loader refuses it)."""
    from vipcast.spec.gateway.objects import Gateway
    from vipcast.spec.load import Spec

    gw = Gateway.model_validate(gateway(listeners=[
        {"name": "a", "port": 80, "protocol": "HTTP"},
        {"name": "b", "port": 80, "protocol": "HTTP"}]))
    cls = spec_of([gateway_class()]).gateway_classes
    t = translate(Spec(gateway_classes=cls, gateways=(gw,)), "n1")
    st = t.gateway("default/web")
    assert st is not None
    b = condition(st.listeners[1].conditions, "Conflicted")
    assert b is not None and (b.status, b.reason) == ("True", "HostnameConflict")
    prog = condition(st.listeners[1].conditions, "Programmed")
    assert prog is not None and prog.status == "False"


def test_filters_in_the_model() -> None:
    t = _t(gateway(), service("s"), route("r", rules=[
        {"matches": [{"path": {"type": "Exact", "value": "/old"}}],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {
             "scheme": "https", "hostname": "new.example.com", "statusCode": 301,
             "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
         "filters": [
             {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                 "set": [{"name": "X-Set", "value": "1"}], "add": [{"name": "X-Add",
                                                                     "value": "2"}],
                 "remove": ["X-Gone"]}},
             {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                 "add": [{"name": "X-Resp", "value": "3"}]}},
             {"type": "URLRewrite", "urlRewrite": {"hostname": "internal", "path": {
                 "type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}],
         "backendRefs": [backend("s")], "timeouts": {"request": "5s"}}]))
    routes = {r.match.path: r for r in t.model.route_configs[0].virtual_hosts[0].routes}
    red = routes["/old"].redirect
    assert red is not None and (red.scheme, red.hostname, red.status_code) == (
        "https", "new.example.com", 301)
    assert red.path is not None and (red.path.kind, red.path.value) == ("ReplaceFullPath", "/new")
    api = routes["/api"]
    assert api.request_headers.set == (("X-Set", "1"),)
    assert api.request_headers.remove == ("X-Gone",)
    assert api.response_headers.add == (("X-Resp", "3"),)
    assert api.rewrite is not None and api.rewrite.hostname == "internal"
    assert api.timeout == 5.0


def test_same_input_in_any_order_gives_the_same_bytes() -> None:
    docs = [gateway_class(), gateway(), service("a"), service("b"),
            endpoint_slice("a", endpoints=[ready(f"10.1.0.{i}") for i in range(5)]),
            endpoint_slice("b", endpoints=[ready(f"10.2.0.{i}") for i in range(3)]),
            route("r1", hostnames=["x.example.com"], rules=[{"backendRefs": [backend("a")]}]),
            route("r2", rules=[{"matches": [{"path": {"type": "Exact", "value": "/b"}}],
                                "backendRefs": [backend("b", weight=3), backend("a")]}])]
    want = model_bytes(translate(spec_of(docs), "n1"))
    rng = random.Random(7)
    for _ in range(10):
        rng.shuffle(docs)
        assert model_bytes(translate(spec_of(docs), "n1")) == want


def test_explain_route_says_where_it_ranks_or_why_not() -> None:
    from vipcast.core.gateway.explain import explain_route

    gw = gateway(listeners=[{"name": "a", "port": 80, "protocol": "HTTP",
                             "hostname": "a.example.com"}])
    t = _t(gw, service("s"),
           route("in", rules=[{"matches": [{"path": {"type": "Exact", "value": "/x"}}],
                               "backendRefs": [backend("s")]},
                              {"backendRefs": [backend("s")]}]),
           route("out", hostnames=["b.example.com"], rules=[{"backendRefs": [backend("s")]}]))
    story = explain_route(t, "default/in")
    assert story is not None
    assert [(p.entry, p.route_config, p.domains, p.position, p.of) for p in story.placements] == [
        ("default/in/rule/0/match/0", "default/web/80", ("a.example.com",), 1, 2),
        ("default/in/rule/1/match/0", "default/web/80", ("a.example.com",), 2, 2)]
    out = explain_route(t, "default/out")
    assert out is not None and out.placements == ()
    accepted = condition(out.parents[0].conditions, "Accepted")
    assert accepted is not None and accepted.reason == "NoMatchingListenerHostname"
    assert explain_route(t, "default/nope") is None


def test_a_proxy_refusal_makes_gateways_not_programmed() -> None:
    from vipcast.core.gateway.model import with_refusal

    t = _t(gateway())
    assert with_refusal(t.gateways, {}) == t.gateways
    [gw] = with_refusal(t.gateways, {"RouteConfiguration": "invalid regex"})
    prog = condition(gw.conditions, "Programmed")
    assert prog is not None and (prog.status, prog.reason) == ("False", "Invalid")
    assert "RouteConfiguration refused by the proxy: invalid regex" in prog.message
    assert condition(gw.conditions, "Accepted") == condition(t.gateways[0].conditions,
                                                             "Accepted")
