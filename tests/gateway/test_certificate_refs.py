"""The Secrets the gateway reads on Kubernetes (pure): exactly those our Gateways' listeners
and our Ingresses name and may name."""

from __future__ import annotations

from tests.gateway.gwobjects import gateway, gateway_class, spec_of

from vipcast.core.gateway.certificates import certificate_refs


def _https(name: str, ref: dict[str, str]) -> dict[str, object]:
    return {"name": name, "port": 443, "protocol": "HTTPS", "hostname": f"{name}.example.com",
            "tls": {"certificateRefs": [ref]}}


def test_only_permitted_references_of_our_gateways_and_ingresses() -> None:
    spec = spec_of([
        gateway_class(), gateway_class("other", "example.com/gw"),
        gateway("web", listeners=[
            _https("same", {"name": "same-cert"}),
            _https("granted", {"name": "shared", "namespace": "certs"}),
            _https("refused", {"name": "secret", "namespace": "vault"}),
            _https("configmap", {"name": "cm", "kind": "ConfigMap"}),
            {"name": "http", "port": 80, "protocol": "HTTP"}]),
        gateway("theirs", cls="other", listeners=[_https("x", {"name": "their-cert"})]),
        {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
         "metadata": {"name": "g", "namespace": "certs"},
         "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "namespace": "default"}],
                  "to": [{"group": "", "kind": "Secret", "name": "shared"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "i", "namespace": "shop",
                      "annotations": {"kubernetes.io/ingress.class": "vipcast"}},
         "spec": {"tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                  "defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "n", "namespace": "shop"},
         "spec": {"ingressClassName": "nginx",
                  "tls": [{"hosts": ["n.example.com"], "secretName": "nginx-tls"}],
                  "defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}},
    ])
    assert certificate_refs(spec) == {("default", "same-cert"), ("certs", "shared"),
                                      ("shop", "shop-tls")}
