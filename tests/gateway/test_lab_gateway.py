"""The gateway with a real Envoy and real backends in network namespaces.

client 203.0.113.10 -> gateway node 203.0.113.1 (``vipcast gateway`` + Envoy over ADS) ->
pods 10.0.0.1x (HTTP echo backends). Each test writes its whole object set and waits until
Envoy ACKed it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from certs import self_signed
from gwobjects import tls_secret

from lab_fixtures import require_envoy
from vipcast.lab.gateway import (
    CLIENT_IP,
    GATEWAY_IP,
    GatewayLab,
    base_objects,
    http_route,
    pod_ip,
    service_objects,
)
from vipcast.lab.netns import Topology, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow]
PODS = ["p0", "p1", "p2", "p3", "p4", "p5"]




@pytest.fixture(scope="module")
def lab(netlab_module: Topology) -> Iterator[GatewayLab]:
    require_envoy()
    lab = GatewayLab(netlab_module)
    for n, name in enumerate(PODS):
        lab.start_pod(name, n)
    lab.apply_nowait(base_objects())
    lab.start_gateway()
    yield lab


def services(*names: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in names:
        out += service_objects(name, {pod_ip(PODS.index(name)): "ready"})
    return out


def to(svc: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": svc, "port": 80}
    if weight is not None:
        ref["weight"] = weight
    return ref


def test_each_match_kind(lab: GatewayLab) -> None:
    lab.apply([*base_objects(), *services(*PODS), http_route("m", hostnames=["app.example.com"],
                                                              rules=[
        {"matches": [{"path": {"type": "Exact", "value": "/exact"}}], "backendRefs": [to("p0")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/pre"}}],
         "backendRefs": [to("p1")]},
        {"matches": [{"path": {"type": "RegularExpression", "value": "/re/[0-9]+"}}],
         "backendRefs": [to("p2")]},
        {"matches": [{"headers": [{"name": "X-Canary", "value": "yes"}]}],
         "backendRefs": [to("p3")]},
        {"matches": [{"queryParams": [{"name": "v", "value": "2"}]}], "backendRefs": [to("p4")]},
        {"matches": [{"method": "POST"}], "backendRefs": [to("p5")]},
    ])])
    cases = [
        ("/exact", [], "p0"), ("/exact/x", [], None), ("/pre", [], "p1"), ("/pre/x", [], "p1"),
        ("/prefix", [], None), ("/re/42", [], "p2"), ("/re/x", [], None),
        ("/any", ["-H", "X-Canary: yes"], "p3"), ("/any?v=2", [], "p4"),
        ("/any", ["-X", "POST"], "p5"),
        # precedence: Exact beats the header match, the longer path beats the method
        ("/exact", ["-H", "X-Canary: yes"], "p0"), ("/pre/x", ["-X", "POST"], "p1"),
    ]
    for path, args, want in cases:
        status, _h, body = lab.curl(f"http://{GATEWAY_IP}{path}", "-H", "Host: app.example.com",
                                    *args)
        if want is None:
            assert status == 404, (path, status, body)
        else:
            assert status == 200 and json.loads(body)["backend"] == want, (path, status, body)
    # another host: no virtual host for it
    status, _h, _b = lab.curl(f"http://{GATEWAY_IP}/pre", "-H", "Host: other.example.com")
    assert status == 404


def test_filters_and_redirects(lab: GatewayLab) -> None:
    lab.apply([*base_objects(), *services("p0", "p1"), http_route("f", rules=[
        {"matches": [{"path": {"type": "PathPrefix", "value": "/hdr"}}],
         "filters": [
             {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                 "set": [{"name": "X-Set", "value": "s"}], "add": [{"name": "X-Add", "value": "a"}],
                 "remove": ["X-Drop"]}},
             {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                 "set": [{"name": "X-Resp", "value": "r"}]}}],
         "backendRefs": [to("p0")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/strip"}}],
         "filters": [{"type": "URLRewrite", "urlRewrite": {
             "hostname": "internal.example", "path": {"type": "ReplacePrefixMatch",
                                                      "replacePrefixMatch": "/"}}}],
         "backendRefs": [to("p1")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/full"}}],
         "filters": [{"type": "URLRewrite", "urlRewrite": {
             "path": {"type": "ReplaceFullPath", "replaceFullPath": "/fixed"}}}],
         "backendRefs": [to("p1")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {
             "scheme": "https", "hostname": "new.example.com", "statusCode": 301,
             "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
        {"matches": [{"path": {"type": "Exact", "value": "/moved"}}],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {"port": 8080}}]},
    ])])
    status, headers, body = lab.curl(f"http://{GATEWAY_IP}/hdr", "-H", "Host: a.example.com",
                                     "-H", "X-Drop: 1", "-H", "X-Add: first", "-H", "X-Set: old")
    seen = json.loads(body)
    assert status == 200 and seen["backend"] == "p0"
    assert seen["headers"]["x-set"] == "s"
    assert seen["headers"]["x-add"] == "first,a"
    assert "x-drop" not in seen["headers"]
    assert headers["x-resp"] == "r"
    for path, want in (("/strip", "/"), ("/strip/a/b", "/a/b"), ("/full/x", "/fixed")):
        seen = lab.get_json(path)
        assert seen["path"] == want, (path, seen)
    assert lab.get_json("/strip/x")["headers"]["host"] == "internal.example"
    status, headers, _b = lab.curl(f"http://{GATEWAY_IP}/old/page?q=1", "-H",
                                   "Host: a.example.com")
    assert status == 301
    assert headers["location"] == "https://new.example.com/new/page?q=1"
    status, headers, _b = lab.curl(f"http://{GATEWAY_IP}/moved", "-H", "Host: a.example.com")
    assert status == 302
    assert headers["location"] == "http://a.example.com:8080/moved"


def test_weights_within_tolerance(lab: GatewayLab) -> None:
    """80/20 over 400 requests: p1's count is binomial (mean 80, sd 8); allowed 80 ± 32
    (4 sd: a false failure about once in 15,000 runs)."""
    lab.apply([*base_objects(), *services("p0", "p1"),
               http_route("w", rules=[{"backendRefs": [to("p0", 80), to("p1", 20)]}])])
    out = lab.client.run(["sh", "-c", f"for i in $(seq 400); do curl -s -H 'Host: w' "
                          f"http://{GATEWAY_IP}/; echo; done"], timeout=180)
    counts = {"p0": 0, "p1": 0}
    for line in out.stdout.splitlines():
        if line.strip():
            counts[json.loads(line)["backend"]] += 1
    assert sum(counts.values()) == 400
    assert 48 <= counts["p1"] <= 112, counts


def test_an_invalid_backends_share_is_answered_500(lab: GatewayLab) -> None:
    """Gateway API: the weight share of a backendRef that does not resolve is answered 500
    (never 503). 50/50 over 200 requests: the 500s are binomial (mean 100, sd 7.1); allowed
    100 ± 35 (about 5 sd)."""
    lab.apply([*base_objects(), *services("p0"), http_route("bad", rules=[
        {"backendRefs": [to("p0", 50), {"name": "missing", "port": 80, "weight": 50}]}])])
    out = lab.client.run(["sh", "-c", "for i in $(seq 200); do curl -s -o /dev/null "
                          f"-w '%{{http_code}}\\n' -H 'Host: bad' http://{GATEWAY_IP}/; done"],
                         timeout=180)
    codes = Counter(line.strip() for line in out.stdout.splitlines() if line.strip())
    assert set(codes) <= {"200", "500"} and sum(codes.values()) == 200, codes
    assert 65 <= codes["500"] <= 135, codes


def test_client_address_in_x_forwarded_for(lab: GatewayLab) -> None:
    lab.apply([*base_objects(), *services("p0"), http_route("x", rules=[
        {"backendRefs": [to("p0")]}])])
    seen = lab.get_json("/")
    assert seen["headers"]["x-forwarded-for"] == CLIENT_IP
    assert seen["client"] == "10.0.0.1"  # the gateway's pod-side address: the L7 hop
    # a client-supplied header is kept and the real client appended; with no trusted hops
    # the address Envoy takes for the client is the peer, not the header's claim
    seen = lab.get_json("/", "h", "-H", "X-Forwarded-For: 198.51.100.66")
    assert seen["headers"]["x-forwarded-for"] == f"198.51.100.66,{CLIENT_IP}"
    assert seen["headers"]["x-envoy-external-address"] == CLIENT_IP


def test_the_router_adds_no_envoy_headers(lab: GatewayLab) -> None:
    """suppress_envoy_headers: neither the client nor the pod sees the router's x-envoy-*
    headers; the connection manager's client address header is still there."""
    lab.apply([*base_objects(), *services("p0"), http_route("x", rules=[
        {"backendRefs": [to("p0")]}])])
    status, headers, body = lab.curl(f"http://{GATEWAY_IP}/", "-H", "Host: h")
    assert status == 200, body
    assert json.loads(body)["backend"] == "p0"
    assert not [h for h in headers if h.startswith("x-envoy")], headers
    seen = json.loads(body)["headers"]
    assert "x-envoy-expected-rq-timeout-ms" not in seen
    assert seen["x-envoy-external-address"] == CLIENT_IP


def test_envoy_runs_one_worker_per_cpu(lab: GatewayLab) -> None:
    """No --concurrency given: Envoy's workers are the CPUs the gateway may use."""
    pid = lab.status()["envoy"]["pid"]
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    assert argv[argv.index("--concurrency") + 1] == str(len(os.sched_getaffinity(0)))


def test_websocket_upgrade(lab: GatewayLab) -> None:
    lab.apply([*base_objects(), *services("p2"), http_route("ws", rules=[
        {"backendRefs": [to("p2")]}])])
    script = (
        "import asyncio, aiohttp\n"
        "async def main():\n"
        "    async with aiohttp.ClientSession() as s:\n"
        f"        async with s.ws_connect('http://{GATEWAY_IP}/ws') as ws:\n"
        "            for i in range(3):\n"
        "                await ws.send_str(f'hello{i}')\n"
        "                print((await ws.receive()).data)\n"
        "asyncio.run(main())\n"
    )
    out = lab.client.run([lab.python, "-c", script], timeout=60)
    assert out.stdout.split() == ["p2:hello0", "p2:hello1", "p2:hello2"]


def test_tls_with_two_sni_names(lab: GatewayLab) -> None:
    a_cert, a_key = self_signed("a.example.com")
    b_cert, b_key = self_signed("b.example.com")
    certs = lab.topo.workdir / "certs"
    certs.mkdir(exist_ok=True)
    (certs / "a.pem").write_text(a_cert)
    (certs / "b.pem").write_text(b_cert)
    listeners = [
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "a", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
         "tls": {"certificateRefs": [{"name": "a"}]}},
        {"name": "b", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com",
         "tls": {"certificateRefs": [{"name": "b"}]}},
    ]
    lab.apply([*base_objects(listeners), *services("p0", "p1"),
               tls_secret("a", "default", a_cert, a_key), tls_secret("b", "default", b_cert, b_key),
               http_route("a", hostnames=["a.example.com"], rules=[{"backendRefs": [to("p0")]}]),
               http_route("b", hostnames=["b.example.com"], rules=[{"backendRefs": [to("p1")]}])])
    for host, pem, want in (("a.example.com", "a.pem", "p0"), ("b.example.com", "b.pem", "p1")):
        for proto in ("--http1.1", "--http2"):
            status, _h, body = lab.curl(
                f"https://{host}/", proto, "--cacert", str(certs / pem),
                "--resolve", f"{host}:443:{GATEWAY_IP}")
            assert status == 200 and json.loads(body)["backend"] == want, (host, proto, body)
    # b's certificate does not verify for a's name: the SNI picked a's chain
    out = lab.client.run(["curl", "-sS", "--cacert", str(certs / "b.pem"), "--resolve",
                          f"a.example.com:443:{GATEWAY_IP}", "https://a.example.com/"],
                         check=False)
    assert out.returncode != 0


def test_nack_keeps_the_last_good_configuration(lab: GatewayLab) -> None:
    good = [*base_objects(), *services("p0", "p1"),
            http_route("n", rules=[{"backendRefs": [to("p0")]}])]
    lab.apply(good)
    # \Z passes Python's re (and so the checks) but RE2 has no \Z: Envoy refuses the routes
    bad = [*base_objects(), *services("p0", "p1"), http_route("n", rules=[
        {"matches": [{"path": {"type": "RegularExpression", "value": "/x\\Z"}}],
         "backendRefs": [to("p1")]}, {"backendRefs": [to("p1")]}])]
    lab.apply_nowait(bad)
    st = lab.wait(lambda s: "RouteConfiguration" in s.get("nacked", {}), what="NACK reported")
    assert not st["in_sync"] and st["nacks"] >= 1
    assert st["envoy"]["ready"]
    programmed = next(c for c in st["gateways"][0]["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "Invalid")
    assert "refused by the proxy" in programmed["message"]
    for _ in range(5):  # still the last good routes
        assert lab.get_json("/")["backend"] == "p0"
    lab.apply(good)
    st = lab.status()
    assert st["nacked"] == {} and st["in_sync"]
    programmed = next(c for c in st["gateways"][0]["conditions"] if c["type"] == "Programmed")
    assert programmed["status"] == "True"


def test_endpoint_churn_and_weight_changes_are_hitless(lab: GatewayLab) -> None:
    """Steady load (4 keep-alive connections, 200 req/s) while 20 pods go away and come back
    (terminating first, removed after the drain) and 10 weight changes: 0 failed, 0 reset."""
    pool = {pod_ip(n): "ready" for n in range(4)}  # p0..p3 behind "app"

    def objects(weights: tuple[int, int]) -> list[dict[str, Any]]:
        return [*base_objects(), *service_objects("app", pool), *services("p4"),
                http_route("c", rules=[{"backendRefs": [
                    to("app", weights[0]), to("p4", weights[1])]}])]

    st0 = lab.apply(objects((9, 1)))
    pid0 = st0["envoy"]["pid"]
    out = lab.topo.workdir / "churn-load.json"
    load = lab.client.spawn([lab.python, "-m", "vipcast.lab.http_load", "--url",
                             f"http://{GATEWAY_IP}/", "--connections", "4", "--rate", "200",
                             "--duration", "120", "--out", str(out)], name="churn-load")
    wait_until(lambda: "ready" in load.log_text(), timeout=30, what="load started")
    time.sleep(1.0)
    names = ["p0", "p1", "p2", "p3"]
    for i in range(20):
        name = names[i % 4]
        ip = pod_ip(PODS.index(name))
        pool[ip] = "terminating"  # the pod is terminating: no new requests, none cut
        lab.apply(objects((9, 1)))
        del pool[ip]
        lab.apply(objects((9, 1)))
        lab.stop_pod(name)  # it exits once removed
        lab.start_pod(name, PODS.index(name))  # scaled back up: ready, then in the slice
        pool[ip] = "ready"
        st = lab.apply(objects((9, 1)))
        # endpoints only: the same listeners and clusters, the same Envoy
        assert st["versions"]["Listener"] == st0["versions"]["Listener"]
        assert st["versions"]["Cluster"] == st0["versions"]["Cluster"]
        assert st["envoy"]["pid"] == pid0
    for i in range(10):
        lab.apply(objects((9 - i % 5, 1 + i % 5)))
    time.sleep(1.0)
    load.signal(signal.SIGTERM)
    wait_until(lambda: out.exists(), timeout=30, what="load result")
    result = json.loads(out.read_text())
    assert result["requests"] > 500, result
    assert result["failed"] == 0 and result["resets"] == 0 and not result["errors"], json.dumps(
        result)
    assert set(result["backends"]) <= {"p0", "p1", "p2", "p3", "p4"}
    assert lab.status()["envoy"]["restarts"] == 0


def test_envoy_killed_restarts_and_is_fed_again(lab: GatewayLab) -> None:
    lab.apply([*base_objects(), *services("p0"), http_route("k", rules=[
        {"backendRefs": [to("p0")]}])])
    before = lab.status()
    pid = before["envoy"]["pid"]
    os.kill(pid, signal.SIGKILL)
    st = lab.wait(lambda s: s["envoy"]["pid"] != pid and s["envoy"]["ready"] and s["in_sync"],
                  what="envoy restarted, fed and ready")
    assert st["envoy"]["restarts"] == before["envoy"]["restarts"] + 1
    assert st["versions"] == before["versions"]  # the same configuration, fed again
    assert lab.get_json("/")["backend"] == "p0"
