"""The node agent runs the L7 gateway as a consumer of its plan (``vipcast agent
--gateway-workdir``): the plan carries the proxy model, Envoy serves it, and an EndpointSlice
change reaches Envoy as an endpoint update (same Envoy, same listeners). An Ingress without a
class under vipcast's default IngressClass, from the same files: the agent allocates the
Ingress Gateway the pool's address and Envoy serves the Ingress there."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab_fixtures import require_envoy
from vipcast.lab.gateway import (
    ADMIN_PORT,
    GATEWAY_IP,
    GatewayLab,
    base_objects,
    http_route,
    pod_ip,
    service_objects,
)
from vipcast.lab.netns import Topology, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow]
STATUS = "127.0.0.1:9479"


def _objects(ip: str) -> list[dict[str, Any]]:
    # the Gateway's spec.addresses are honoured from a pool (allocated like a Service's)
    pool = {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "gw"}, "spec": {"addresses": [f"{GATEWAY_IP}/32"]}}
    return [pool, *base_objects(), *service_objects("app", {ip: "ready"}),
            http_route("a", rules=[{"backendRefs": [{"name": "app", "port": 80}]}])]


def test_agent_feeds_envoy_from_its_plan(netlab: Topology) -> None:
    require_envoy()
    lab = GatewayLab(netlab)
    lab.start_pod("p0", 0)
    lab.start_pod("p1", 1)
    lab.apply_nowait(_objects(pod_ip(0)))
    agent = lab.gw.spawn([
        lab.python, "-m", "vipcast.cli.main", "agent", "--config", str(lab.config_dir),
        "--node", "gw", "--no-dataplane", "--metrics-address", STATUS,
        "--gateway-workdir", str(lab.workdir), "--gateway-admin-port", str(ADMIN_PORT),
        "--poll-interval", "0.2"], name="agent")

    def gateway_status() -> dict[str, Any] | None:
        out = lab.gw.run(["curl", "-sf", f"http://{STATUS}/status"], check=False)
        if out.returncode != 0:
            return None
        doc: dict[str, Any] = json.loads(out.stdout).get("gateway") or {}
        return doc if doc.get("in_sync") and doc["envoy"]["ready"] else None

    def served_by(name: str) -> bool:
        status, _h, body = lab.curl(f"http://{GATEWAY_IP}/", "-H", "Host: a")
        return status == 200 and json.loads(body)["backend"] == name

    first = wait_until(gateway_status, timeout=90, what="the agent's Envoy ready and in sync",
                       on_timeout=agent.log_text)
    wait_until(lambda: served_by("p0"), timeout=30, what="served by p0")
    lab.apply_nowait(_objects(pod_ip(1)))
    wait_until(lambda: served_by("p1"), timeout=30, what="served by p1 after the slice change")
    # /status is rebuilt at most twice a second: wait for the document after the change
    eds = "ClusterLoadAssignment"
    after = wait_until(lambda: (s := gateway_status()) and s["versions"][eds] != first[
        "versions"][eds] and s, timeout=30, what="in sync at the new endpoints")
    assert after["envoy"]["pid"] == first["envoy"]["pid"]
    assert after["versions"]["Listener"] == first["versions"]["Listener"]
    assert after["versions"]["Cluster"] == first["versions"]["Cluster"]

    # the Gateway gone, an Ingress of vipcast's default class in its place: the Ingress
    # Gateway gets the pool's (only) address from the agent's own allocation
    pool = _objects(pod_ip(1))[0]
    lab.apply_nowait([pool, *service_objects("app", {pod_ip(1): "ready"}), {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "vipcast",
                     "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "vipcast.io/ingress-controller"}}, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {"rules": [{"host": "shop", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "app", "port": {"number": 80}}}}]}}]}}])

    def ingress_served() -> bool:
        status, _h, body = lab.curl(f"http://{GATEWAY_IP}/", "-H", "Host: shop")
        return status == 200 and json.loads(body)["backend"] == "p1"

    wait_until(ingress_served, timeout=30, what="the Ingress served at the pool's address",
               on_timeout=agent.log_text)
