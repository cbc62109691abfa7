"""Ingress (class vipcast) served as the Gateway API objects it stands for.

An Ingress and the Gateway + HTTPRoutes written by hand for it answer every request alike; on
random Ingresses the model answers as a plain reference of the Ingress rules does (a rule of
the request's host, longest path, Exact before Prefix on a tie; then rules without host; then
the default backend; between Ingresses the oldest, then by name).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from gwobjects import backend, gateway, gateway_class, route, service, spec_of
from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.gateway import Request, listener_config, route_for, translate
from vipcast.core.gateway.lookup import path_prefix_matches
from vipcast.core.gateway.model import Route

VIP = "192.0.2.90"
SERVICES = ["s1", "s2", "s3"]


def ingress(name: str, rules: list[dict[str, Any]], default: str | None = None,
            created: str | None = None, cls: str = "vipcast") -> dict[str, Any]:
    spec: dict[str, Any] = {"ingressClassName": cls, "rules": rules}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": spec}


def ipath(path: str, kind: str, svc: str) -> dict[str, Any]:
    return {"path": path, "pathType": kind,
            "backend": {"service": {"name": svc, "port": {"number": 80}}}}


def _cluster(r: Route | None) -> str | None:
    if r is None:
        return None
    assert len(r.backends) == 1
    return r.backends[0].cluster


def test_an_ingress_answers_like_the_httproutes_written_for_it() -> None:
    svcs = [service(s) for s in SERVICES]
    ing = ingress("shop", [
        {"host": "shop.example.com", "http": {"paths": [
            ipath("/api", "Prefix", "s1"), ipath("/api/v2", "Prefix", "s2"),
            ipath("/login", "Exact", "s3")]}},
        {"http": {"paths": [ipath("/", "ImplementationSpecific", "s2")]}},
    ], default="s3")
    by_ingress = translate(spec_of([*svcs, ing]), "n1", ingress_addresses=(VIP,))
    hand = [gateway_class(), *svcs,
            gateway("web", addresses=(VIP,)),
            route("shop", hostnames=["shop.example.com"], rules=[
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "backendRefs": [backend("s1")]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api/v2"}}],
                 "backendRefs": [backend("s2")]},
                {"matches": [{"path": {"type": "Exact", "value": "/login"}}],
                 "backendRefs": [backend("s3")]}]),
            route("any", rules=[
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [backend("s2")]},
                {"backendRefs": [backend("s3")]}])]
    by_hand = translate(spec_of(hand), "n1")
    a = listener_config(by_ingress.model, VIP, 80)
    b = listener_config(by_hand.model, VIP, 80)
    assert a is not None and b is not None
    answers = set()
    for host in ("shop.example.com", "other.example.com"):
        for path in ("/", "/api", "/api/v2/x", "/api/v3", "/login", "/login/x", "/x"):
            req = Request(host, path)
            got = _cluster(route_for(a, req))
            assert got == _cluster(route_for(b, req)), req
            answers.add(got)
    assert answers == {"default/s1:80", "default/s2:80", "default/s3:80"}
    # the Ingress's routes report like any route
    assert all(p.conditions[0].reason == "Accepted" for r in by_ingress.routes for p in r.parents)


def test_ingresses_of_another_class_are_ignored() -> None:
    t = translate(spec_of([service("s1"), ingress("x", [], default="s1", cls="nginx")]), "n1",
                  ingress_addresses=(VIP,))
    assert t.model.listeners == () and t.gateways == ()


def test_tls_hosts_become_https_listeners() -> None:
    from gwobjects import tls_secret
    from test_translate import PEM_CERT, PEM_KEY

    ing = ingress("shop", [{"host": "shop.example.com",
                            "http": {"paths": [ipath("/", "Prefix", "s1")]}}])
    ing["spec"]["tls"] = [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    t = translate(spec_of([service("s1"), ing, tls_secret("shop-tls", "default", PEM_CERT,
                                                           PEM_KEY)]),
                  "n1", ingress_addresses=(VIP,))
    https = [lis for lis in t.model.listeners if lis.port == 443]
    assert len(https) == 1
    [chain] = https[0].filter_chains
    assert chain.server_names == ("shop.example.com",)
    assert chain.certificates == ("default/shop-tls",)
    cfg = listener_config(t.model, VIP, 443, sni="shop.example.com")
    assert cfg is not None
    assert _cluster(route_for(cfg, Request("shop.example.com", "/x"))) == "default/s1:80"


# ---------------------------------------------------------------- against a reference

HOSTS = ["a.example.com", "b.example.com", None]
PATHS = ["/", "/a", "/a/b", "/ab"]
REQUEST_PATHS = ["/", "/a", "/a/", "/a/b", "/a/bc", "/ab", "/c"]

path_st = st.tuples(st.sampled_from(PATHS), st.sampled_from(["Exact", "Prefix",
                                                              "ImplementationSpecific"]),
                    st.sampled_from(SERVICES))
rule_st = st.tuples(st.sampled_from(HOSTS), st.lists(path_st, min_size=1, max_size=2))
ingress_st = st.tuples(st.lists(rule_st, max_size=3), st.sampled_from([None, *SERVICES]),
                       st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]))


def reference(ingresses: list[tuple[str, Any]], host: str, path: str) -> str | None:
    """Ingress rules read plainly."""
    order = sorted(ingresses, key=lambda ni: (ni[1][2], ni[0]))  # oldest, then name
    for want_host in (host, None):
        best: tuple[int, int, int, str] | None = None  # (length, exact, -ingress rank, svc)
        for rank, (_name, (rules, _default, _created)) in enumerate(order):
            for rhost, paths in rules:
                if rhost != want_host:
                    continue
                for p, kind, svc in paths:
                    ok = path == p if kind == "Exact" else path_prefix_matches(p, path)
                    if ok:
                        cand = (len(p), kind == "Exact", -rank, svc)
                        if best is None or cand[:3] > best[:3]:
                            best = cand
        if best is not None:
            return f"default/{best[3]}:80"
    for _name, (_rules, default, _created) in order:
        if default:
            return f"default/{default}:80"
    return None


@given(st.lists(ingress_st, min_size=1, max_size=2))
def test_model_answers_as_the_ingress_reference(raw: list[Any]) -> None:
    named = [(f"ing{i}", r) for i, r in enumerate(raw)]
    docs: list[dict[str, Any]] = [service(s) for s in SERVICES]
    for name, (rules, default, created) in named:
        docs.append(ingress(name, [
            ({"host": h} if h else {}) | {"http": {"paths": [ipath(p, k, s) for p, k, s in ps]}}
            for h, ps in rules], default=default, created=created))
    t = translate(spec_of(docs), "n1", ingress_addresses=(VIP,))
    cfg = listener_config(t.model, VIP, 80)
    for host in ("a.example.com", "b.example.com", "c.example.com"):
        for path in REQUEST_PATHS:
            got = _cluster(route_for(cfg, Request(host, path))) if cfg else None
            assert got == reference(named, host, path), (host, path)


def test_an_ingress_wildcard_matches_exactly_one_label(tmp_path: Any) -> None:
    """Ingress spec: ``*.example.com`` matches ``a.example.com``, not ``a.b.example.com`` nor
    ``example.com`` (those fall through to the rules without host, then the default backend);
    Envoy accepts the rendered match."""
    ing = ingress("wild", [
        {"host": "*.example.com", "http": {"paths": [ipath("/", "Prefix", "s1")]}},
        {"http": {"paths": [ipath("/any", "Prefix", "s2")]}},
    ], default="s3")
    t = translate(spec_of([*(service(s) for s in SERVICES), ing]), "n1",
                  ingress_addresses=(VIP,))
    cfg = listener_config(t.model, VIP, 80)
    assert cfg is not None
    want = {
        ("a.example.com", "/"): "default/s1:80",
        ("A.Example.com:8080", "/x"): "default/s1:80",
        ("a.b.example.com", "/"): "default/s3:80",
        ("a.b.example.com", "/any"): "default/s2:80",
        ("example.com", "/"): "default/s3:80",
    }
    for (host, path), cluster in want.items():
        assert _cluster(route_for(cfg, Request(host, path))) == cluster, (host, path)
    envoy = shutil.which("envoy")
    if envoy is None:
        return  # the rule above is the Ingress's; Envoy's acceptance is checked where it runs
    from vipcast.dataplane.envoy import ProxyOptions, static_bootstrap, to_json

    path = tmp_path / "boot.json"
    path.write_text(to_json(static_bootstrap(t.model, ProxyOptions())))
    done = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "-l", "error",
                           "--base-id-path", str(tmp_path / "base-id"), "--use-dynamic-base-id"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _legacy(name: str, annotation: str | None, cls: str | None) -> dict[str, Any]:
    doc = ingress(name, [{"host": f"{name}.example.com",
                          "http": {"paths": [ipath("/", "Prefix", "s1")]}}])
    if cls is None:
        del doc["spec"]["ingressClassName"]
    else:
        doc["spec"]["ingressClassName"] = cls
    if annotation is not None:
        doc["metadata"]["annotations"] = {"kubernetes.io/ingress.class": annotation}
    return doc


def test_the_legacy_class_annotation_and_ingress_class_name_first() -> None:
    """``kubernetes.io/ingress.class: vipcast`` is honoured (as ingress-nginx does); when
    ``spec.ingressClassName`` is set it decides, whatever the annotation says."""
    docs = [service("s1"),
            _legacy("legacy", "vipcast", None),
            _legacy("named", "nginx", "vipcast"),
            _legacy("theirs", "vipcast", "nginx"),
            _legacy("other", "nginx", None),
            _legacy("none", None, None)]
    t = translate(spec_of(docs), "n1", ingress_addresses=(VIP,))
    config = listener_config(t.model, VIP, 80)
    assert config is not None
    served = sorted(h for vh in config.virtual_hosts for h in vh.domains
                    if h.endswith(".example.com"))
    assert served == ["legacy.example.com", "named.example.com"]


def test_another_class_ingress_is_not_judged() -> None:
    """check-config and the webhook judge only Ingresses of class vipcast: a resource
    backend (which vipcast refuses) is another controller's business."""
    import pytest

    from vipcast.spec import SpecError

    def with_resource(doc: dict[str, Any]) -> dict[str, Any]:
        doc["spec"]["defaultBackend"] = {"resource": {"apiGroup": "k8s.example.com",
                                                      "kind": "Bucket", "name": "b"}}
        return doc

    theirs = with_resource(_legacy("theirs", "nginx", None))
    assert spec_of([service("s1"), theirs]).ingresses  # loads, nothing to say
    with pytest.raises(SpecError) as err:
        spec_of([service("s1"), theirs, with_resource(_legacy("ours", "vipcast", None))])
    assert {i.name for i in err.value.issues} == {"default/ours"}
