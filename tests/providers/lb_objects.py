"""Kubernetes-style documents for the external-LB tests (Services, slices, nodes, providers)."""

from __future__ import annotations

from typing import Any

from vipcast.spec import Spec, load_documents

Doc = dict[str, Any]


def provider(name: str = "haproxy", driver: str = "haproxy", **options: Any) -> Doc:
    endpoint = "file:///tmp/x" if driver == "haproxy" else "http://127.0.0.1:1"
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
            "metadata": {"name": name},
            "spec": {"driver": driver, "endpoint": endpoint, "options": options}}


def pool(name: str, cidr: str, auto: bool = False) -> Doc:
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name}, "spec": {"addresses": [cidr], "autoAssign": auto}}


def node(name: str, address: str, ready: bool = True, labels: dict[str, str] | None = None
         ) -> Doc:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}},
            "status": {"addresses": [{"type": "InternalIP", "address": address}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(name: str, ports: list[tuple[int, str, int | None]], *, cls: str | None =
            "vipcast.io/haproxy", ns: str = "default", ip: str | None = None,
            local: bool = False, hc_port: int | None = None, ranges: list[str] | None = None,
            shared: str | None = None) -> Doc:
    annotations = {"vipcast.io/shared-load-balancer": shared} if shared else {}
    spec: Doc = {
        "type": "LoadBalancer",
        "ports": [{"name": f"p{port}", "port": port, "protocol": proto,
                   **({"nodePort": node_port} if node_port else {})}
                  for port, proto, node_port in ports],
        "externalTrafficPolicy": "Local" if local else "Cluster",
    }
    if cls:
        spec["loadBalancerClass"] = cls
    if ip:
        spec["loadBalancerIP"] = ip
    if hc_port:
        spec["healthCheckNodePort"] = hc_port
    if ranges:
        spec["loadBalancerSourceRanges"] = ranges
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": spec}


def slice_(service_name: str, endpoints: list[tuple[str, str, bool]],
           ports: list[tuple[str, int]], ns: str = "default", suffix: str = "a") -> Doc:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-{suffix}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "nodeName": n, "conditions": {"ready": ready}}
                          for ip, n, ready in endpoints],
            "ports": [{"name": name, "port": port, "protocol": "TCP"} for name, port in ports]}


def spec_of(*docs: Doc) -> Spec:
    return load_documents([("test", d) for d in docs])
