"""Builders of Gateway API, Service and EndpointSlice documents for the gateway tests."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from vipcast.spec import Spec, load_documents

Doc = dict[str, Any]
GW = "gateway.networking.k8s.io/v1"


def gateway_class(name: str = "vipcast", controller: str = "vipcast.io/gateway") -> Doc:
    return {"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": name},
            "spec": {"controllerName": controller}}


def gateway(name: str = "web", ns: str = "default", *, listeners: Sequence[Doc] | None = None,
            addresses: Sequence[str] = ("192.0.2.80",), cls: str = "vipcast",
            created: str | None = None) -> Doc:
    meta: Doc = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": GW, "kind": "Gateway", "metadata": meta,
            "spec": {"gatewayClassName": cls,
                     "listeners": list(listeners or [{"name": "http", "port": 80,
                                                      "protocol": "HTTP"}]),
                     "addresses": [{"type": "IPAddress", "value": a} for a in addresses]}}


def route(name: str, ns: str = "default", *, rules: Sequence[Doc], hostnames: Sequence[str] = (),
          parents: Sequence[Doc] = ({"name": "web"},), created: str | None = None) -> Doc:
    meta: Doc = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": meta,
            "spec": {"parentRefs": list(parents), "hostnames": list(hostnames),
                     "rules": list(rules)}}


def backend(name: str, port: int = 80, weight: int | None = None, **extra: Any) -> Doc:
    ref: Doc = {"name": name, "port": port, **extra}
    if weight is not None:
        ref["weight"] = weight
    return ref


def service(name: str, ns: str = "default", ports: Sequence[int] = (80,)) -> Doc:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": f"p{p}", "port": p, "targetPort": 8000 + p % 1000}
                               for p in ports]}}


def endpoint_slice(service_name: str, ns: str = "default", *,
                   endpoints: Iterable[tuple[str, dict[str, bool]]], port: int = 80,
                   target: int = 8080, suffix: str = "a") -> Doc:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-{suffix}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "ports": [{"name": f"p{port}", "port": target, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": c, "nodeName": "n1"}
                          for a, c in endpoints]}


def tls_secret(name: str, ns: str, cert: str, key: str) -> Doc:
    enc = {"tls.crt": cert, "tls.key": key}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in enc.items()}}


def grant(ns: str, from_ns: str, to_kind: str = "Service", from_kind: str = "HTTPRoute",
          name: str = "allow") -> Doc:
    return {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": from_kind,
                               "namespace": from_ns}],
                     "to": [{"group": "", "kind": to_kind}]}}


def spec_of(docs: Iterable[Doc]) -> Spec:
    return load_documents([("test.yaml", d) for d in docs])


def ready(addr: str) -> tuple[str, dict[str, bool]]:
    return addr, {"ready": True, "serving": True, "terminating": False}


def terminating(addr: str, serving: bool = True) -> tuple[str, dict[str, bool]]:
    return addr, {"ready": False, "serving": serving, "terminating": True}
