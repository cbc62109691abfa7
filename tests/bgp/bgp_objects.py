"""The Kubernetes objects the BGP agent tests write into their config files, as YAML text."""

from __future__ import annotations

from collections.abc import Iterable


def endpoints_yaml(endpoints: Iterable[tuple[str, str]]) -> str:
    """EndpointSlice ``endpoints`` entries, ready, for (address, node name) pairs."""
    return "".join(
        f"  - addresses: [{address}]\n    nodeName: {node}\n    conditions: {{ready: true}}\n"
        for address, node in endpoints
    )


def service_yaml(name: str, endpoints: Iterable[tuple[str, str]], *, local: bool = False) -> str:
    """Two documents: LoadBalancer Service ``name`` in ``default`` (port 80/TCP; Cluster policy
    with the selector ``app: name``, or ``local``: Local policy, no selector) and its
    EndpointSlice ``name-1`` with the given ready endpoints."""
    policy = "  externalTrafficPolicy: Local\n" if local else f"  selector: {{app: {name}}}\n"
    return (
        "apiVersion: v1\n"
        "kind: Service\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec:\n"
        "  type: LoadBalancer\n"
        f"{policy}"
        "  ports: [{name: http, port: 80, protocol: TCP}]\n"
        "---\n"
        "apiVersion: discovery.k8s.io/v1\n"
        "kind: EndpointSlice\n"
        "metadata:\n"
        f"  name: {name}-1\n"
        "  namespace: default\n"
        f"  labels: {{kubernetes.io/service-name: {name}}}\n"
        "addressType: IPv4\n"
        "ports: [{name: http, port: 80, protocol: TCP}]\n"
        "endpoints:\n"
        f"{endpoints_yaml(endpoints)}"
    )
