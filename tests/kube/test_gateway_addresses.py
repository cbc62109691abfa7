"""Gateway addresses on Kubernetes (issue 12): the controller allocates them like Services'
from the pools -- one allocation for both, so no address is handed to two things --, commits
them to ``status.addresses``, says why a Gateway got none (``Programmed`` False,
``AddressNotUsable`` / ``AddressNotAssigned``, a Warning Event), and a new leader keeps them."""

from __future__ import annotations

from typing import Any

from .harness.cluster import Cluster
from .harness.gateway_controller import run_gateway_controller
from .kubetools import GW, post

POOL = "198.18.21.0/29"


def _gateway(ns: str, name: str, *addresses: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"gatewayClassName": f"alloc-{ns}",
                     "addresses": [{"type": "IPAddress", "value": a} for a in addresses],
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}


def _service(ns: str, name: str, ip: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if ip:
        meta["annotations"] = {"vipcast.io/loadBalancerIPs": ip}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}}


def _status(cluster: Cluster, path: str) -> dict[str, Any]:
    code, body = cluster.request("GET", path)
    assert code == 200, body
    return dict(body.get("status") or {})


def _programmed(status: dict[str, Any]) -> tuple[str, str, str] | None:
    for c in status.get("conditions") or ():
        if c["type"] == "Programmed":
            return c["status"], c["reason"], c.get("message", "")
    return None


def _addresses(status: dict[str, Any]) -> list[str]:
    return [a["value"] for a in status.get("addresses") or ()]


def _allocated(status: dict[str, Any]) -> tuple[str, str, str] | None:
    for c in status.get("conditions") or ():
        if c["type"] == "vipcast.io/Allocated":
            return c["status"], c["reason"], c.get("message", "")
    return None


def _ingress(status: dict[str, Any]) -> list[str]:
    return [i["ip"] for i in (status.get("loadBalancer") or {}).get("ingress") or ()]


def test_gateways_and_services_share_the_pools(gateway_api: Cluster, namespace: str) -> None:
    cluster, ns = gateway_api, namespace
    gws, svcs = f"{GW}/namespaces/{ns}/gateways", f"/api/v1/namespaces/{ns}/services"
    post(cluster, "/apis/vipcast.io/v1beta1/ipaddresspools", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": f"gw-{ns}"},
        "spec": {"addresses": [POOL], "serviceAllocation": {"namespaces": [ns]}}})
    post(cluster, f"{GW}/gatewayclasses", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": f"alloc-{ns}"}, "spec": {"controllerName": "vipcast.io/gateway"}})
    post(cluster, svcs, _service(ns, "svc"))
    post(cluster, gws, _gateway(ns, "auto"))

    def first() -> tuple[str, str] | None:
        svc, gw = _ingress(_status(cluster, f"{svcs}/svc")), _status(cluster, f"{gws}/auto")
        if svc and _addresses(gw) and (_programmed(gw) or ("",))[0] == "True":
            return svc[0], _addresses(gw)[0]
        return None

    svc_ip, gw_ip = run_gateway_controller(cluster, ns, "alloc-a", first)
    assert svc_ip != gw_ip
    assert svc_ip.startswith("198.18.21.") and gw_ip.startswith("198.18.21.")

    # a Gateway asking for the Service's address, a Service asking for the Gateway's
    post(cluster, gws, _gateway(ns, "steal", svc_ip))
    post(cluster, svcs, _service(ns, "asks", gw_ip))

    def warned() -> bool:
        """The refusal is a Warning Event on the Gateway (written after its status)."""
        _, events = cluster.request("GET", f"/api/v1/namespaces/{ns}/events")
        return any(e["involvedObject"].get("name") == "steal" and e["type"] == "Warning"
                   and e["reason"] == "AddressNotUsable" for e in events.get("items") or ())

    def refused() -> tuple[Any, Any] | None:
        steal = _programmed(_status(cluster, f"{gws}/steal"))
        asks = _allocated(_status(cluster, f"{svcs}/asks"))
        return (steal, asks) if steal and asks and warned() else None

    steal, asks = run_gateway_controller(cluster, ns, "alloc-b", refused,
                                         failure="no refusal on the status or no Event")
    assert steal[:2] == ("False", "AddressNotUsable"), steal
    assert f"held by {ns}/svc" in steal[2]
    assert asks[:2] == ("False", "RequestedIPTaken"), asks
    assert f"held by Gateway {ns}/auto" in asks[2]
    assert _addresses(_status(cluster, f"{gws}/steal")) == []
    assert _ingress(_status(cluster, f"{svcs}/asks")) == []
    assert warned()  # the refusal is a Warning Event on the Gateway
    # a new leader (alloc-b above, after alloc-a) kept both: nothing moved
    assert _addresses(_status(cluster, f"{gws}/auto")) == [gw_ip]
    assert _ingress(_status(cluster, f"{svcs}/svc")) == [svc_ip]

    # the Gateway goes away: its address is free for the Service that asked for it
    code, _ = cluster.request("DELETE", f"{gws}/auto")
    assert code == 200
    got = run_gateway_controller(cluster, ns, "alloc-c",
                                 lambda: _ingress(_status(cluster, f"{svcs}/asks")) or None)
    assert got == [gw_ip]
    cluster.request("DELETE", f"/apis/vipcast.io/v1beta1/ipaddresspools/gw-{ns}")
