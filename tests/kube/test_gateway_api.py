"""Gateway API on the real API server: the upstream v1.6.1 CRDs installed unchanged, their
schemas and CEL rules refusing what they refuse, vipcast reading what the server returns and
writing Gateway/HTTPRoute status the upstream status schema accepts; the admission webhook's
answer for the gateway kinds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vipcast.core.gateway import translate
from vipcast.sources.kube.admission import review
from vipcast.sources.kube.client import make_client
from vipcast.sources.kube.gateway_status import write_status
from vipcast.sources.kube.snapshot import to_document
from vipcast.spec import load_documents

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import GW, post


def test_cel_rules_of_the_upstream_crds_refuse(gateway_api: Cluster, namespace: str) -> None:
    bad = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "bad", "namespace": namespace},
           "spec": {"rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {
               "statusCode": 301}}], "backendRefs": [{"name": "s", "port": 80}]}]}}
    code, body = gateway_api.request("POST", f"{GW}/namespaces/{namespace}/httproutes", bad)
    assert code == 422, body
    assert "RequestRedirect filter must not be used together with backendRefs" in str(body)


def test_status_written_from_the_translation(gateway_api: Cluster, namespace: str,
                                             kubeconfig: Path) -> None:
    ns = namespace
    cls = post(gateway_api, f"{GW}/gatewayclasses", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": f"vipcast-{ns}"}, "spec": {"controllerName": "vipcast.io/gateway"}})
    gw = post(gateway_api, f"{GW}/namespaces/{ns}/gateways", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"gatewayClassName": f"vipcast-{ns}",
                 "addresses": [{"type": "IPAddress", "value": "192.0.2.80"}],
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    ok = post(gateway_api, f"{GW}/namespaces/{ns}/httproutes", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "ok", "namespace": ns},
        "spec": {"parentRefs": [{"name": "web"}],
                 "rules": [{"backendRefs": [{"name": "api", "port": 80}]}]}})
    missing = post(gateway_api, f"{GW}/namespaces/{ns}/httproutes", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "missing", "namespace": ns},
        "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["shop.example.com"],
                 "rules": [{"backendRefs": [{"name": "nope", "port": 80}]}]}})
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": ns},
           "spec": {"ports": [{"name": "http", "port": 80}]}}
    # the objects as the server returned them (its defaults applied) load as vipcast's views
    docs = [(f"api/{o['kind']}", to_document(o["kind"], o)) for o in (cls, gw, ok, missing)]
    spec = load_documents([*docs, ("api/Service", svc)])
    route = next(r for r in spec.http_routes if r.name == "ok")
    assert route.spec.rules[0].matches[0].path.type == "PathPrefix"  # the server's default
    t = translate(spec, "n1")
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)

    async def write() -> int:
        client = make_client(kubeconfig, ns, "vipcast-test")
        try:
            return await write_status(client, t, now)
        finally:
            await client.close()

    assert run(write()) == 3
    _, got_gw = gateway_api.request("GET", f"{GW}/namespaces/{ns}/gateways/web")
    conds = {c["type"]: c for c in got_gw["status"]["conditions"]}
    assert conds["Accepted"]["status"] == "True" and conds["Programmed"]["status"] == "True"
    assert conds["Accepted"]["observedGeneration"] == got_gw["metadata"]["generation"]
    assert got_gw["status"]["addresses"] == [{"type": "IPAddress", "value": "192.0.2.80"}]
    [lis] = got_gw["status"]["listeners"]
    assert lis["attachedRoutes"] == 2
    _, got_ok = gateway_api.request("GET", f"{GW}/namespaces/{ns}/httproutes/ok")
    [parent] = got_ok["status"]["parents"]
    assert parent["controllerName"] == "vipcast.io/gateway"
    assert {c["type"]: c["reason"] for c in parent["conditions"]} == {
        "Accepted": "Accepted", "ResolvedRefs": "ResolvedRefs"}
    _, got_missing = gateway_api.request("GET", f"{GW}/namespaces/{ns}/httproutes/missing")
    reasons = {c["type"]: c["reason"] for c in got_missing["status"]["parents"][0]["conditions"]}
    assert reasons == {"Accepted": "Accepted", "ResolvedRefs": "BackendNotFound"}
    # written again unchanged: nothing to write
    assert run(write()) == 0


def _admission(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "operation": "CREATE", "kind": {"kind": kind}, "object": obj,
        "name": obj["metadata"]["name"]}}


def test_webhook_denies_what_vipcast_cannot_serve() -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "r", "namespace": "default"},
             "spec": {"rules": [{"matches": [{"path": {"type": "RegularExpression",
                                                        "value": "/(?=x)"}}],
                                 "filters": [{"type": "CORS", "cors": {}}],
                                 "backendRefs": [{"name": "s", "port": 80}]}]}}
    answer = review(_admission("HTTPRoute", route), {})["response"]
    assert not answer["allowed"]
    message = answer["status"]["message"]
    assert "spec.rules[0].matches[0].path.value" in message and "lookaround" in message
    assert "spec.rules[0].filters[0].type" in message and "not supported" in message
    gw = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
          "metadata": {"name": "g", "namespace": "default"},
          "spec": {"gatewayClassName": "vipcast", "listeners": [
              {"name": "a", "port": 80, "protocol": "HTTP"},
              {"name": "b", "port": 80, "protocol": "HTTPS",
               "tls": {"certificateRefs": [{"name": "c"}]}}]}}
    answer = review(_admission("Gateway", gw), {})["response"]
    assert not answer["allowed"]
    assert "conflicting listener" in answer["status"]["message"]
    fine = {**route, "spec": {"rules": [{"backendRefs": [{"name": "s", "port": 80}]}]}}
    assert review(_admission("HTTPRoute", fine), {})["response"]["allowed"]


def test_controller_writes_gateway_status(gateway_api: Cluster, namespace: str) -> None:
    """``vipcast controller --gateway-api``: the leader reads the Gateway API objects and keeps
    their status (a condition reporting a problem is also a Warning Event on the object); a
    broken route of one tenant is left out, not the whole config."""
    from .harness.gateway_controller import run_gateway_controller

    ns = namespace
    _pool(gateway_api, ns, "198.18.20.0/29")
    post(gateway_api, f"{GW}/gatewayclasses", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": f"ctl-{ns}"}, "spec": {"controllerName": "vipcast.io/gateway"}})
    post(gateway_api, f"{GW}/namespaces/{ns}/gateways", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"gatewayClassName": f"ctl-{ns}",
                 "addresses": [{"type": "IPAddress", "value": "198.18.20.1"}],
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                "hostname": "a.example.com"}]}})
    post(gateway_api, f"{GW}/namespaces/{ns}/httproutes", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "elsewhere", "namespace": ns},
        "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["b.example.com"]}})
    # RE2 has no lookaround: the API server takes it, vipcast leaves this route out
    post(gateway_api, f"{GW}/namespaces/{ns}/httproutes", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "broken", "namespace": ns},
        "spec": {"parentRefs": [{"name": "web"}], "rules": [{"matches": [{"path": {
            "type": "RegularExpression", "value": "/(?=x)"}}]}]}})

    def status_and_event() -> dict[str, Any] | None:
        _, got = gateway_api.request("GET", f"{GW}/namespaces/{ns}/httproutes/elsewhere")
        _, events = gateway_api.request("GET", f"/api/v1/namespaces/{ns}/events")
        # the decision is also an Event on the route, as for Services
        warned = [e for e in events.get("items") or ()
                  if e["involvedObject"].get("name") == "elsewhere"
                  and e["involvedObject"].get("kind") == "HTTPRoute"
                  and e["reason"] == "NoMatchingListenerHostname"
                  and e["type"] == "Warning"]
        if (got.get("status") or {}).get("parents") and warned:
            return dict(got)
        return None

    got = run_gateway_controller(gateway_api, ns, "gw-ctl", status_and_event,
                                 failure="no status or no Event written")
    reasons = {c["type"]: c["reason"] for c in got["status"]["parents"][0]["conditions"]}
    assert reasons["Accepted"] == "NoMatchingListenerHostname"
    _, gw = gateway_api.request("GET", f"{GW}/namespaces/{ns}/gateways/web")
    assert {c["type"]: c["status"] for c in gw["status"]["conditions"]} == {
        "Accepted": "True", "Programmed": "True"}
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": "198.18.20.1"}]
    _, broken = gateway_api.request("GET", f"{GW}/namespaces/{ns}/httproutes/broken")
    assert not (broken.get("status") or {}).get("parents")
    for path in (f"{GW}/gatewayclasses/ctl-{ns}",
                 f"/apis/vipcast.io/v1beta1/ipaddresspools/gw-{ns}"):
        gateway_api.request("DELETE", path)


def _pool(cluster: Cluster, ns: str, cidr: str) -> None:
    """A pool serving only namespace ``ns`` (a range no other test of the session uses)."""
    post(cluster, "/apis/vipcast.io/v1beta1/ipaddresspools", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": f"gw-{ns}"},
        "spec": {"addresses": [cidr], "serviceAllocation": {"namespaces": [ns]}}})


def test_speaker_plan_carries_the_proxy_model(gateway_api: Cluster, namespace: str) -> None:
    """``vipcast speaker --gateway-workdir``: the API-fed agent reads the gateway kinds and its
    plan carries the node's proxy model (pod endpoints from the EndpointSlices)."""
    import asyncio
    import contextlib

    from vipcast.app.agent import AgentOptions
    from vipcast.app.speaker import KubeAgent
    from vipcast.sources.kube.resources import GATEWAY_KINDS, SPEAKER_KINDS

    from .kubetools import GW, client, endpoint_slice, lb_service, post

    ns = namespace
    _pool(gateway_api, ns, "198.18.22.0/29")
    post(gateway_api, f"{GW}/gatewayclasses", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": f"spk-{ns}"}, "spec": {"controllerName": "vipcast.io/gateway"}})
    gw = post(gateway_api, f"{GW}/namespaces/{ns}/gateways", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"gatewayClassName": f"spk-{ns}",
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    # the speaker never allocates: it listens on what the controller committed to the
    # Gateway's status.addresses (written here as the controller would)
    gw["status"] = {"addresses": [{"type": "IPAddress", "value": "198.18.22.2"}]}
    code, body = gateway_api.request("PUT", f"{GW}/namespaces/{ns}/gateways/web/status", gw)
    assert code == 200, body
    post(gateway_api, f"{GW}/namespaces/{ns}/httproutes", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": ns},
        "spec": {"parentRefs": [{"name": "web"}],
                 "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]}})

    async def go() -> None:
        c = client(gateway_api.kubeconfig, ns)
        await c.create(lb_service("app", ns, type_="ClusterIP"))
        await c.create(endpoint_slice("app", ns, "n1", "10.1.0.7"))
        kinds = (*SPEAKER_KINDS, *GATEWAY_KINDS)
        agent = KubeAgent(c, AgentOptions(config_paths=(), node="n1", poll_interval=0.1),
                          kinds=kinds, report=False)
        task = asyncio.create_task(agent.serve(install_signals=False, sync_timeout=30))

        def mine() -> tuple[list[str], list[str]] | None:
            """This test's listeners and endpoints (the session's cluster has other tests')."""
            plan = agent.current.plan if agent.current else None
            proxy = plan.proxy if plan is not None else None
            if proxy is None:
                return None
            cluster = proxy.cluster(f"{ns}/app:80")
            if cluster is None or not cluster.endpoints:
                return None
            return ([lis.address for lis in proxy.listeners if lis.name.startswith(f"{ns}/")],
                    [e.address for e in cluster.endpoints])

        try:
            for _ in range(300):
                got = mine()
                if got is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no proxy model in the speaker's plan")
            assert got == (["198.18.22.2"], ["10.1.0.7"])
        finally:
            agent.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 20)
            await c.close()

    run(go(), timeout=120)
    for path in (f"{GW}/gatewayclasses/spk-{ns}",
                 f"/apis/vipcast.io/v1beta1/ipaddresspools/gw-{ns}"):
        gateway_api.request("DELETE", path)
