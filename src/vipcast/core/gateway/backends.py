"""Backends: a route's backendRefs (and a listener's certificateRefs) resolved against Services,
EndpointSlices, Secrets and ReferenceGrants. Outcomes are values: a cluster, or a reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vipcast.core.gateway.model import Cluster, Endpoint, TlsCertificate
from vipcast.spec.gateway.objects import ReferenceGrant
from vipcast.spec.kube import EndpointSlice, Secret, Service

GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class Refused:
    """Why a reference does not resolve: a Gateway API reason and a message."""

    reason: str
    message: str


def granted(
    grants: Sequence[ReferenceGrant], *, from_group: str, from_kind: str, from_ns: str,
    to_group: str, to_kind: str, to_ns: str, to_name: str,
) -> bool:
    """Whether a reference may cross from ``from_ns`` to ``to_ns`` (same namespace: always)."""
    if from_ns == to_ns:
        return True
    for grant in grants:
        if grant.namespace != to_ns:
            continue
        if not any(f.group == from_group and f.kind == from_kind and f.namespace == from_ns
                   for f in grant.spec.from_):
            continue
        if any(t.group == to_group and t.kind == to_kind and t.name in (None, to_name)
               for t in grant.spec.to):
            return True
    return False


def cluster_name(namespace: str, service: str, port: int) -> str:
    return f"{namespace}/{service}:{port}"


def resolve_backend(
    *, group: str, kind: str, name: str, namespace: str, port: int | None,
    route_ns: str, services: dict[str, Service], grants: Sequence[ReferenceGrant],
    from_kind: str = "HTTPRoute",
) -> str | Refused:
    """A backendRef -> the cluster it names, or why not (InvalidKind, RefNotPermitted,
    BackendNotFound)."""
    if group != "" or kind != "Service":
        return Refused("InvalidKind", f"backendRef {group or 'core'}/{kind} {name}: "
                       "only Services are supported")
    if not granted(grants, from_group=GATEWAY_GROUP, from_kind=from_kind, from_ns=route_ns,
                   to_group="", to_kind="Service", to_ns=namespace, to_name=name):
        return Refused("RefNotPermitted", f"Service {namespace}/{name}: no ReferenceGrant in "
                       f"{namespace} allows {from_kind}s from {route_ns}")
    svc = services.get(f"{namespace}/{name}")
    if svc is None:
        return Refused("BackendNotFound", f"Service {namespace}/{name} not found")
    if port is None or not any(p.port == port and p.protocol == "TCP" for p in svc.spec.ports):
        return Refused("BackendNotFound", f"Service {namespace}/{name} has no TCP port {port}")
    return cluster_name(namespace, name, port)


def endpoints_of(service: Service, port: int, slices: Sequence[EndpointSlice]) -> Cluster:
    """The pod endpoints of one Service port: ready ones; serving-but-terminating ones as
    draining (or, when nothing is ready, as the ones to use, as kube-proxy does)."""
    svc_port = next(p for p in service.spec.ports if p.port == port and p.protocol == "TCP")
    found: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if sl.address_type == "FQDN":
            continue
        if sl.ports:
            number = next((p.port for p in sl.ports if (p.name or None) == (svc_port.name or None)
                           and p.protocol == "TCP"), None)
        else:
            number = svc_port.target_port if isinstance(svc_port.target_port, int) else port
        if number is None:
            continue
        for ep in sl.endpoints:
            cond = ep.conditions
            terminating = cond.terminating is True
            ready = cond.ready is not False and not terminating
            serving = cond.serving if cond.serving is not None else ready
            if not ready and not (terminating and serving):
                continue
            for addr in ep.addresses:
                new = Endpoint(addr, number, draining=not ready, node=ep.node_name or "")
                old = found.get((addr, number))
                if old is None or (old.draining and not new.draining):
                    found[(addr, number)] = new
    endpoints = sorted(found.values())
    if endpoints and all(e.draining for e in endpoints):
        endpoints = sorted(Endpoint(e.address, e.port, False, e.node) for e in endpoints)
    return Cluster(cluster_name(service.metadata.namespace or "default", service.metadata.name,
                                port), tuple(endpoints))


def resolve_certificate(
    *, group: str, kind: str, name: str, namespace: str, gateway_ns: str,
    secrets: dict[str, Secret], grants: Sequence[ReferenceGrant],
) -> TlsCertificate | Refused:
    """A listener's certificateRef -> the certificate, or why not (InvalidCertificateRef,
    RefNotPermitted)."""
    if group != "" or kind != "Secret":
        return Refused("InvalidCertificateRef", f"certificateRef {group or 'core'}/{kind} "
                       f"{name}: only Secrets are supported")
    if not granted(grants, from_group=GATEWAY_GROUP, from_kind="Gateway", from_ns=gateway_ns,
                   to_group="", to_kind="Secret", to_ns=namespace, to_name=name):
        return Refused("RefNotPermitted", f"Secret {namespace}/{name}: no ReferenceGrant in "
                       f"{namespace} allows Gateways from {gateway_ns}")
    secret = secrets.get(f"{namespace}/{name}")
    if secret is None:
        return Refused("InvalidCertificateRef", f"Secret {namespace}/{name} not found")
    try:
        chain, key = secret.value("tls.crt"), secret.value("tls.key")
    except (ValueError, UnicodeDecodeError):
        chain = key = None
    if not chain or not key or "-----BEGIN" not in chain or "-----BEGIN" not in key:
        return Refused("InvalidCertificateRef", f"Secret {namespace}/{name} has no PEM "
                       "tls.crt and tls.key (a kubernetes.io/tls Secret)")
    return TlsCertificate(f"{namespace}/{name}", chain, key)
