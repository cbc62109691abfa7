"""The per-node proxy model and the Gateway API status values: what the translation returns.

Plain frozen values, every collection a sorted tuple, so equal inputs give equal models and
:func:`model_bytes` gives the same bytes. The Envoy renderer (``dataplane/envoy``) reads only
this; the Kubernetes status writer reads only the status values.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

PathKind = Literal["Exact", "PathPrefix", "RegularExpression"]
PathModifierKind = Literal["ReplaceFullPath", "ReplacePrefixMatch"]
#: the route every invalid backend's share of traffic goes to (it has no endpoints)
INVALID_BACKEND = "vipcast/invalid-backend"


@dataclass(frozen=True, order=True)
class Endpoint:
    """A pod address. ``draining``: serving but terminating — no new requests, none cut."""

    address: str
    port: int
    draining: bool = False
    node: str = ""


@dataclass(frozen=True, order=True)
class Cluster:
    """One Service port's endpoints (``namespace/name:port``)."""

    name: str
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, order=True)
class ValueMatch:
    """A header (lower-cased name) or query parameter: exact value or RE2 full match."""

    name: str
    value: str
    regex: bool = False


@dataclass(frozen=True, order=True)
class Match:
    path_kind: PathKind = "PathPrefix"
    path: str = "/"
    method: str | None = None
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()


@dataclass(frozen=True, order=True)
class HeaderOps:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True, order=True)
class PathModifier:
    kind: PathModifierKind
    value: str


@dataclass(frozen=True, order=True)
class Redirect:
    """RequestRedirect, resolved: ``port`` None keeps the request's port (or the scheme's)."""

    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathModifier | None = None
    status_code: int = 302


@dataclass(frozen=True, order=True)
class Rewrite:
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, order=True)
class WeightedCluster:
    cluster: str
    weight: int


@dataclass(frozen=True, order=True)
class Route:
    """One (HTTPRoute rule, match) in its place in a virtual host's ordered route list."""

    name: str
    match: Match
    backends: tuple[WeightedCluster, ...] = ()
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)
    #: seconds; None = the proxy's default
    timeout: float | None = None
    #: answered by the proxy itself (500: the rule has no valid backend)
    direct_status: int | None = None
    #: ``HTTPRoute/ns/name`` (or ``Ingress/ns/name``) the route came from, for explain
    source: str = ""


@dataclass(frozen=True, order=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True, order=True)
class RouteConfig:
    name: str
    virtual_hosts: tuple[VirtualHost, ...]
    #: the listener port and scheme requests arrive on (redirects without a port keep it)
    port: int = 80
    https: bool = False


@dataclass(frozen=True, order=True)
class TlsCertificate:
    """A ``kubernetes.io/tls`` Secret's chain and key (PEM), by ``namespace/name``."""

    name: str
    certificate_chain: str
    private_key: str


@dataclass(frozen=True, order=True)
class FilterChain:
    """Connections to one listener: by SNI (``server_names``; empty = any) for HTTPS."""

    name: str
    route_config: str
    server_names: tuple[str, ...] = ()
    certificates: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class ProxyListener:
    name: str
    address: str
    port: int
    protocol: Literal["HTTP", "HTTPS"]
    filter_chains: tuple[FilterChain, ...]


@dataclass(frozen=True)
class ProxyModel:
    """What one node's proxy serves."""

    node: str
    listeners: tuple[ProxyListener, ...] = ()
    route_configs: tuple[RouteConfig, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    certificates: tuple[TlsCertificate, ...] = ()

    def cluster(self, name: str) -> Cluster | None:
        return next((c for c in self.clusters if c.name == name), None)

    def route_config(self, name: str) -> RouteConfig | None:
        return next((r for r in self.route_configs if r.name == name), None)


# ---------------------------------------------------------------- status values


@dataclass(frozen=True, order=True)
class Condition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


@dataclass(frozen=True, order=True)
class ListenerStatus:
    name: str
    attached_routes: int
    supported_kinds: tuple[str, ...]
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, order=True)
class GatewayStatus:
    key: str
    generation: int | None
    addresses: tuple[str, ...]
    conditions: tuple[Condition, ...]
    listeners: tuple[ListenerStatus, ...]


@dataclass(frozen=True, order=True)
class ParentRef:
    """A route's parentRef as written (namespace filled in)."""

    namespace: str
    name: str
    section_name: str | None = None
    port: int | None = None
    group: str = "gateway.networking.k8s.io"
    kind: str = "Gateway"


@dataclass(frozen=True, order=True)
class RouteParentStatus:
    parent: ParentRef
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, order=True)
class RouteStatus:
    key: str
    generation: int | None
    parents: tuple[RouteParentStatus, ...]


@dataclass(frozen=True, order=True)
class GatewayClassStatus:
    name: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Translation:
    model: ProxyModel
    gateway_classes: tuple[GatewayClassStatus, ...] = ()
    gateways: tuple[GatewayStatus, ...] = ()
    routes: tuple[RouteStatus, ...] = ()

    def gateway(self, key: str) -> GatewayStatus | None:
        return next((g for g in self.gateways if g.key == key), None)

    def route(self, key: str) -> RouteStatus | None:
        return next((r for r in self.routes if r.key == key), None)


def condition(conditions: tuple[Condition, ...], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def model_bytes(value: object) -> bytes:
    """Canonical bytes of a model or status value (equal values, equal bytes)."""
    assert dataclasses.is_dataclass(value) and not isinstance(value, type)
    return json.dumps(dataclasses.asdict(value), sort_keys=True, separators=(",", ":")).encode()


def with_refusal(gateways: tuple[GatewayStatus, ...],
                 refused: dict[str, str]) -> tuple[GatewayStatus, ...]:
    """The Gateway statuses with what the proxy refused (xDS type -> Envoy's message) folded
    in: ``Programmed`` False, reason ``Invalid``, naming the refusal — the proxy keeps serving
    its last good configuration meanwhile. No refusal: the statuses unchanged."""
    if not refused:
        return gateways
    text = "; ".join(f"{t} refused by the proxy: {m}" for t, m in sorted(refused.items()))
    out = []
    for gw in gateways:
        conds = tuple(
            Condition("Programmed", "False", "Invalid",
                      f"{text} (the last good configuration keeps serving)")
            if c.type == "Programmed" and c.status == "True" else c
            for c in gw.conditions)
        out.append(dataclasses.replace(gw, conditions=conds))
    return tuple(out)


def with_node_refusals(gateways: tuple[GatewayStatus, ...],
                       by_node: Mapping[str, str]) -> tuple[GatewayStatus, ...]:
    """The Gateway statuses with what the nodes' proxies refuse (node -> Envoy's message, as
    the nodes report it) folded in: every Gateway that was ``Programmed`` gets ``Programmed``
    False, reason ``Invalid``, naming the nodes and their proxies' errors (nodes with the same
    error together) -- the proxies keep serving their last good configuration meanwhile. No
    refusal: the statuses unchanged."""
    if not by_node:
        return gateways
    nodes_of: dict[str, list[str]] = {}
    for node, text in sorted(by_node.items()):
        nodes_of.setdefault(text, []).append(node)
    parts = [f"Envoy on node{'s' if len(nodes) > 1 else ''} {', '.join(nodes)} refused the "
             f"configuration: {text}" for text, nodes in sorted(nodes_of.items(),
                                                              key=lambda kv: kv[1])]
    message = "; ".join(parts) + " (the last good configuration keeps serving)"
    out = []
    for gw in gateways:
        conds = tuple(
            Condition("Programmed", "False", "Invalid", message)
            if c.type == "Programmed" and c.status == "True" else c
            for c in gw.conditions)
        out.append(dataclasses.replace(gw, conditions=conds))
    return tuple(out)
