"""Ingresses of vipcast's classes as Gateway API objects, so one translation serves both.

An Ingress is vipcast's when its class (``spec.ingressClassName``, else the legacy
``kubernetes.io/ingress.class`` annotation) names an IngressClass whose ``spec.controller`` is
``vipcast.io/ingress-controller`` (or is ``vipcast``, when no IngressClass of that name says
otherwise), or when it has no class and an IngressClass of vipcast's is marked default
(:func:`vipcast.spec.gateway.objects.served_ingresses`).

All such Ingresses hang on one Gateway, ``vipcast-system/ingress`` (class ``vipcast-ingress``):
an HTTP listener on port 80 that admits routes from every namespace, and for each TLS host an
HTTPS listener on 443 with the Ingress's Secret (the Ingress's own ``tls`` entry stands for the
ReferenceGrant). Each Ingress becomes an HTTPRoute of the same namespace and creation time:
``host`` -> hostnames, ``Exact`` -> Exact, ``Prefix`` and ``ImplementationSpecific`` ->
PathPrefix. ``defaultBackend`` answers only what no rule of any Ingress matches: all default
backends are one route in ``vipcast-system`` created "at the end of time", so it sorts last; its
references into the Ingresses' namespaces are granted (the Ingress asked for them). A named
Service port is looked up on the Service (unknown: the backend does not resolve).

An Ingress wildcard ``*.foo.com`` matches exactly one label (the Ingress spec), the Gateway
API's one or more: its rules also match the request's ``:authority`` against one label
(:func:`one_label`), so ``a.b.foo.com`` falls through to the rules without host and the
default backend.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from vipcast.core.gateway.rules import created
from vipcast.spec.gateway.objects import (
    CONTROLLER_NAME,
    Gateway,
    GatewayClass,
    Ingress,
    IngressBackend,
    ReferenceGrant,
)
from vipcast.spec.gateway.routes import HTTPRoute
from vipcast.spec.load import Spec

if TYPE_CHECKING:  # an annotation only: the planner imports this module, not the model
    from vipcast.core.gateway.model import Translation

INGRESS_GATEWAY_NAMESPACE = "vipcast-system"
INGRESS_GATEWAY_NAME = "ingress"
INGRESS_GATEWAY_CLASS = "vipcast-ingress"
_PATH_TYPES = {"Exact": "Exact", "Prefix": "PathPrefix", "ImplementationSpecific": "PathPrefix"}


@dataclass(frozen=True)
class IngressObjects:
    classes: tuple[GatewayClass, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()
    grants: tuple[ReferenceGrant, ...] = ()


def _backend(ing: Ingress, backend: IngressBackend, spec: Spec) -> dict[str, Any]:
    assert backend.service is not None  # the checks refuse resource backends
    svc = backend.service
    port = svc.port.number
    if port is None:
        found = spec.service(f"{ing.namespace}/{svc.name}")
        port = next((p.port for p in found.spec.ports if p.name == svc.port.name), None) \
            if found else None
    ref: dict[str, Any] = {"name": svc.name}
    if port is not None:
        ref["port"] = port
    return ref


def one_label(wildcard: str) -> dict[str, str]:
    """The header match that narrows a Gateway API wildcard (one or more labels) to the
    Ingress one (exactly one label): the request's authority, any port, case-insensitive."""
    suffix = re.escape(wildcard[2:])
    return {"type": "RegularExpression", "name": ":authority",
            "value": f"(?i)[^.:]+\\.{suffix}(:[0-9]+)?"}


def _route(meta: dict[str, Any], hostnames: list[str], rules: list[dict[str, Any]]) -> HTTPRoute:
    return HTTPRoute.model_validate({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {
            "parentRefs": [{"name": INGRESS_GATEWAY_NAME, "namespace": INGRESS_GATEWAY_NAMESPACE}],
            "hostnames": hostnames,
            "rules": rules,
        },
    })


def ingress_routes(ing: Ingress, spec: Spec) -> tuple[HTTPRoute, ...]:
    """An Ingress's rules as HTTPRoutes: one per host, one for the rules without host. Same
    namespace, same creation time."""
    by_host: dict[str | None, list[dict[str, Any]]] = {}
    for rule in ing.spec.rules:
        for path in rule.http.paths if rule.http else ():
            if path.backend.service is None:
                continue
            match: dict[str, Any] = {
                "path": {"type": _PATH_TYPES[path.path_type], "value": path.path}}
            if rule.host and rule.host.startswith("*."):
                match["headers"] = [one_label(rule.host)]
            by_host.setdefault(rule.host, []).append({
                "matches": [match],
                "backendRefs": [_backend(ing, path.backend, spec)],
            })
    out = []
    for i, host in enumerate(sorted(by_host, key=lambda h: (h is not None, h or ""))):
        meta = ing.metadata.model_dump(by_alias=True, exclude_none=True)
        meta["name"] = f"ingress.{ing.name}.{i}"
        out.append(_route(meta, [host] if host else [], by_host[host]))
    return tuple(out)


def default_backends(ingresses: list[Ingress], spec: Spec) -> tuple[HTTPRoute, ...]:
    """The default backends, least preferred of all: one route created at the end of time, a
    rule per Ingress, oldest Ingress first (so the oldest Ingress's default backend wins)."""
    with_default = sorted(
        (i for i in ingresses
         if i.spec.default_backend is not None and i.spec.default_backend.service is not None),
        key=lambda i: (created(i), i.key),
    )
    if not with_default:
        return ()
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backendRefs": [{**_backend(i, i.spec.default_backend, spec),  # type: ignore[arg-type]
                               "namespace": i.namespace}]}
             for i in with_default]
    meta = {"name": "ingress-default-backends", "namespace": INGRESS_GATEWAY_NAMESPACE,
            "creationTimestamp": "9999-12-31T23:59:59Z"}
    return (_route(meta, [], rules),)


def ingress_objects(spec: Spec, addresses: tuple[str, ...],
                    served: Sequence[Ingress] | None = None) -> IngressObjects:
    """The Gateway API objects standing for the Ingresses vipcast serves (``served``, by
    default :meth:`Spec.served_ingresses`: its classes, or no class when one of its
    IngressClasses is the default); none: nothing."""
    ingresses = sorted(spec.served_ingresses() if served is None else served,
                       key=lambda i: i.key)
    if not ingresses:
        return IngressObjects()
    listeners: list[dict[str, Any]] = [{
        "name": "http", "port": 80, "protocol": "HTTP",
        "allowedRoutes": {"namespaces": {"from": "All"}},
    }]
    tls_hosts: dict[str, tuple[str, str]] = {}
    for ing in ingresses:
        for tls in ing.spec.tls:
            if tls.secret_name:
                for host in tls.hosts:
                    tls_hosts.setdefault(host, (ing.namespace, tls.secret_name))
    for n, host in enumerate(sorted(tls_hosts)):
        ns, secret = tls_hosts[host]
        listeners.append({
            "name": f"https-{n}", "port": 443, "protocol": "HTTPS", "hostname": host,
            "allowedRoutes": {"namespaces": {"from": "All"}},
            "tls": {"certificateRefs": [{"name": secret, "namespace": ns}]},
        })
    gateway = Gateway.model_validate({
        "metadata": {"name": INGRESS_GATEWAY_NAME, "namespace": INGRESS_GATEWAY_NAMESPACE},
        "spec": {"gatewayClassName": INGRESS_GATEWAY_CLASS, "listeners": listeners,
                 "addresses": [{"value": a} for a in addresses]},
    })
    grants = tuple(
        ReferenceGrant.model_validate({
            "metadata": {"name": "vipcast-ingress-tls", "namespace": ns},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                               "namespace": INGRESS_GATEWAY_NAMESPACE}],
                     "to": [{"group": "", "kind": "Secret", "name": name}]},
        })
        for ns, name in sorted(set(tls_hosts.values()))
    ) + tuple(
        ReferenceGrant.model_validate({
            "metadata": {"name": "vipcast-ingress-default", "namespace": ns},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                               "namespace": INGRESS_GATEWAY_NAMESPACE}],
                     "to": [{"group": "", "kind": "Service", "name": name}]},
        })
        for ns, name in sorted({(i.namespace, i.spec.default_backend.service.name)
                                for i in ingresses
                                if i.spec.default_backend and i.spec.default_backend.service})
    )
    cls = GatewayClass.model_validate({
        "metadata": {"name": INGRESS_GATEWAY_CLASS},
        "spec": {"controllerName": CONTROLLER_NAME},
    })
    routes = tuple(r for ing in ingresses for r in ingress_routes(ing, spec))
    routes += default_backends(ingresses, spec)
    return IngressObjects((cls,), (gateway,), routes, grants)


def without_ingress_stand_ins(translation: Translation) -> Translation:
    """The translation without the Gateway standing for Ingresses and the HTTPRoutes standing
    for their rules: they exist only in vipcast (the Ingresses' status is theirs)."""
    key = f"{INGRESS_GATEWAY_NAMESPACE}/{INGRESS_GATEWAY_NAME}"

    def virtual(parents: tuple[str, ...]) -> bool:
        return bool(parents) and all(p == key for p in parents)

    return replace(
        translation,
        gateways=tuple(g for g in translation.gateways if g.key != key),
        routes=tuple(r for r in translation.routes if not virtual(
            tuple(f"{p.parent.namespace}/{p.parent.name}" for p in r.parents))))
