"""(Gateways, routes, grants, Services, EndpointSlices, Secrets, node) -> proxy model + status.

Pure: the same inputs give the same :class:`Translation` byte for byte (every collection is
built in sorted order). Only GatewayClasses whose controllerName is vipcast's, and the Gateways
and routes under them, are looked at; everything else is someone else's and left alone.

Shape of the model: one proxy listener per (Gateway address, port). On an HTTP port all of the
Gateway's listeners share one route configuration; a request's Host picks the most specific
listener hostname covering it, and the virtual host for that hostname holds — in precedence
order — every rule attached through that listener whose hostname covers it (so a route without
hostnames also answers, last, for hostnames other routes name). On an HTTPS port each listener
is a filter chain chosen by SNI with its own certificate and route configuration.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from vipcast.core.gateway.backends import (
    GATEWAY_GROUP,
    Refused,
    endpoints_of,
    resolve_certificate,
)
from vipcast.core.gateway.hostnames import intersect, matches, most_specific
from vipcast.core.gateway.ingress import ingress_objects
from vipcast.core.gateway.model import (
    INVALID_BACKEND,
    Condition,
    FilterChain,
    GatewayClassStatus,
    GatewayStatus,
    ListenerStatus,
    ParentRef,
    ProxyListener,
    ProxyModel,
    Route,
    RouteConfig,
    RouteParentStatus,
    RouteStatus,
    TlsCertificate,
    Translation,
    VirtualHost,
)
from vipcast.core.gateway.rules import RuleRoutes, created, precedence_key, rule_routes
from vipcast.spec.gateway.checks import SUPPORTED_PROTOCOLS, listener_conflicts
from vipcast.spec.gateway.objects import CONTROLLER_NAME, Gateway, GatewayClass, Listener
from vipcast.spec.gateway.routes import HTTPRoute
from vipcast.spec.kube import EndpointSlice
from vipcast.spec.load import Spec


@dataclass
class _Listener:
    gateway: Gateway
    index: int
    spec: Listener
    conditions: dict[str, Condition] = field(default_factory=dict)
    certificates: list[TlsCertificate] = field(default_factory=list)
    kinds: tuple[str, ...] = ("HTTPRoute",)
    attached: int = 0

    @property
    def ok(self) -> bool:
        return all(c.status == ("True" if c.type != "Conflicted" else "False")
                   for c in self.conditions.values())


@dataclass(frozen=True)
class _Attachment:
    listener: _Listener
    route: HTTPRoute
    hostnames: tuple[str, ...]


def _cond(type_: str, ok: bool, reason: str, message: str = "") -> Condition:
    return Condition(type_, "True" if ok else "False", reason, message)


def _gateway_classes(classes: tuple[GatewayClass, ...]) -> tuple[GatewayClassStatus, ...]:
    return tuple(
        GatewayClassStatus(c.name, (_cond("Accepted", True, "Accepted"),))
        for c in sorted(classes, key=lambda c: c.name)
        if c.spec.controller_name == CONTROLLER_NAME
    )


def _check_listeners(gw: Gateway, spec: Spec, secrets: dict[str, object]) -> list[_Listener]:
    conflicts = listener_conflicts(gw.spec.listeners)
    out: list[_Listener] = []
    for i, lis in enumerate(gw.spec.listeners):
        state = _Listener(gw, i, lis)
        conds = state.conditions
        conds["Accepted"] = _cond("Accepted", True, "Accepted")
        conds["Conflicted"] = _cond("Conflicted", False, "NoConflicts")
        conds["ResolvedRefs"] = _cond("ResolvedRefs", True, "ResolvedRefs")
        if lis.protocol not in SUPPORTED_PROTOCOLS:
            conds["Accepted"] = _cond("Accepted", False, "UnsupportedProtocol",
                                      f"protocol {lis.protocol} is not served (HTTP, HTTPS)")
        if i in conflicts:
            reason, message = conflicts[i]
            conds["Conflicted"] = _cond("Conflicted", True, reason, message)
        kinds = lis.allowed_routes.kinds
        if kinds:
            good = tuple(
                k.kind for k in kinds if k.group == GATEWAY_GROUP and k.kind == "HTTPRoute")
            state.kinds = good
            if len(good) != len(kinds):
                bad = [k.kind for k in kinds if k.kind != "HTTPRoute" or k.group != GATEWAY_GROUP]
                conds["ResolvedRefs"] = _cond("ResolvedRefs", False, "InvalidRouteKinds",
                                              f"route kinds not served: {', '.join(bad)}")
        if lis.protocol == "HTTPS":
            tls = lis.tls
            refs = tls.certificate_refs if tls is not None else ()
            problems: list[Refused] = []
            if tls is not None and tls.mode != "Terminate":
                conds["Accepted"] = _cond("Accepted", False, "UnsupportedValue",
                                          "only TLS mode Terminate is served")
            for ref in refs:
                got = resolve_certificate(
                    group=ref.group, kind=ref.kind, name=ref.name,
                    namespace=ref.namespace or gw.namespace, gateway_ns=gw.namespace,
                    secrets=secrets,  # type: ignore[arg-type]
                    grants=spec.reference_grants,
                )
                if isinstance(got, Refused):
                    problems.append(got)
                else:
                    state.certificates.append(got)
            if not refs:
                problems.append(Refused("InvalidCertificateRef", "no certificateRefs"))
            if problems:
                conds["ResolvedRefs"] = _cond("ResolvedRefs", False, problems[0].reason,
                                              "; ".join(p.message for p in problems))
        out.append(state)
    return out


def _addresses(
    gw: Gateway, allocated: Mapping[str, tuple[str, ...]] | None,
    refusals: Mapping[str, tuple[str, str]],
) -> tuple[tuple[str, ...], Condition | None]:
    """The Gateway's addresses and a condition refusing them (None: none refused).

    With an allocation (``allocated`` not None) it is the whole truth: the allocator honoured
    ``spec.addresses`` if it could (in a pool, not held by a Service or another Gateway), and
    what it did not give is refused with the allocator's reason (``refusals``). Without one
    (``vipcast gateway``, explain), ``spec.addresses`` are taken as they are."""
    wanted = [a for a in gw.spec.addresses]
    if any(a.type != "IPAddress" for a in wanted):
        return (), _cond("Accepted", False, "UnsupportedAddress",
                         "only IPAddress addresses are served")
    addrs: list[str] = []
    for a in wanted:
        try:
            addrs.append(str(ipaddress.ip_address(a.value)))
        except ValueError:
            return (), _cond("Accepted", False, "UnsupportedAddress",
                             f"{a.value!r} is not an IP address")
    refused = None
    if allocated is not None:
        addrs = list(allocated.get(gw.key, ()))
        if gw.key in refusals:
            reason, message = refusals[gw.key]
            refused = _cond("Programmed", False, reason, message)
        elif not addrs:
            refused = _cond("Programmed", False, "AddressNotAssigned",
                            "no address allocated yet")
    return tuple(sorted(set(addrs), key=lambda a: (":" in a, a))), refused


def _allowed(lis: _Listener, route: HTTPRoute, spec: Spec) -> bool:
    ns_rule = lis.spec.allowed_routes.namespaces
    if "HTTPRoute" not in lis.kinds:
        return False
    if ns_rule.from_ == "All":
        return True
    if ns_rule.from_ == "Same":
        return route.namespace == lis.gateway.namespace
    if ns_rule.from_ == "Selector":
        sel = ns_rule.selector
        return sel is not None and sel.matches(spec.namespace_labels(route.namespace))
    return False


def _attach(
    route: HTTPRoute, ref_index: int, listeners: dict[str, list[_Listener]], spec: Spec,
    unsupported: tuple[str, ...],
) -> tuple[RouteParentStatus | None, list[_Attachment]]:
    ref = route.spec.parent_refs[ref_index]
    if ref.group != GATEWAY_GROUP or ref.kind != "Gateway":
        return None, []
    parent = ParentRef(ref.namespace or route.namespace, ref.name, ref.section_name, ref.port)
    gw_lis = listeners.get(f"{parent.namespace}/{parent.name}")
    if gw_lis is None:
        return None, []  # not a Gateway of ours

    def status(ok: bool, reason: str, message: str = "") -> RouteParentStatus:
        return RouteParentStatus(parent, (_cond("Accepted", ok, reason, message),))

    candidates = [
        lis for lis in gw_lis
        if (ref.section_name is None or lis.spec.name == ref.section_name)
        and (ref.port is None or lis.spec.port == ref.port)
    ]
    if not candidates:
        return status(False, "NoMatchingParent", "no listener has that sectionName/port"), []
    allowed = [lis for lis in candidates if _allowed(lis, route, spec)]
    if not allowed:
        return status(False, "NotAllowedByListeners",
                      "no listener's allowedRoutes admits this route"), []
    attachments: list[_Attachment] = []
    for lis in allowed:
        hosts = route.spec.hostnames or (None,)
        got = sorted({h for h in (intersect(lis.spec.hostname, h) for h in hosts) if h})
        if got:
            attachments.append(_Attachment(lis, route, tuple(got)))
    if not attachments:
        return status(False, "NoMatchingListenerHostname",
                      "no listener hostname intersects the route's hostnames"), []
    if unsupported:
        return status(False, "UnsupportedValue", "; ".join(unsupported)), []
    for a in attachments:
        a.listener.attached += 1
    return status(True, "Accepted"), attachments


def _vhosts(
    name: str, attachments: list[_Attachment], ruled: dict[str, RuleRoutes]
) -> tuple[VirtualHost, ...]:
    hosts = sorted({h for a in attachments for h in a.hostnames})
    listener_hosts = sorted({a.listener.spec.hostname for a in attachments}, key=str)
    # an exact hostname covers only itself: index those; wildcards (few) are tried one by one
    exact: dict[str, list[tuple[_Attachment, str]]] = {}
    wild: list[tuple[_Attachment, str]] = []
    for a in attachments:
        for h in a.hostnames:
            if h == "*" or h.startswith("*."):
                wild.append((a, h))
            else:
                exact.setdefault(h, []).append((a, h))
    out = []
    for host in hosts:
        owner = most_specific(list(listener_hosts), host)
        best: dict[tuple[str, int, int], tuple[tuple[object, ...], Route]] = {}
        pairs = [*exact.get(host, ()), *((a, h) for a, h in wild if matches(h, host))]
        for a, h in pairs:
            if a.listener.spec.hostname != owner:
                continue
            for r, m, route in ruled[a.route.key].routes:
                key = precedence_key(h, a.route, r, m, route.match)
                slot = (a.route.key, r, m)
                if slot not in best or key < best[slot][0]:
                    best[slot] = (key, route)
        if best:
            ordered = tuple(route for _k, route in sorted(best.values(), key=lambda kv: kv[0]))
            out.append(VirtualHost(f"{name}/{host}", (host,), ordered))
    return tuple(out)


def _route_status(
    route: HTTPRoute, parents: list[RouteParentStatus], ruled: RuleRoutes
) -> RouteStatus:
    if ruled.refused:
        first = ruled.refused[0]
        resolved = _cond("ResolvedRefs", False, first.reason,
                         "; ".join(r.message for r in ruled.refused))
    else:
        resolved = _cond("ResolvedRefs", True, "ResolvedRefs")
    full = [RouteParentStatus(p.parent, tuple(sorted((*p.conditions, resolved))))
            for p in parents]
    return RouteStatus(route.key, route.metadata.generation, tuple(sorted(full)))


def translate(
    spec: Spec,
    node: str,
    addresses: Mapping[str, tuple[str, ...]] | None = None,
    *,
    ingress_addresses: tuple[str, ...] = (),
    refusals: Mapping[str, tuple[str, str]] | None = None,
) -> Translation:
    """The proxy model of ``node`` and the status of every Gateway and HTTPRoute of ours.

    ``addresses``: Gateway key -> addresses allocated to it; given, it is all a Gateway gets
    (None: each Gateway's ``spec.addresses`` as they are). ``refusals``: Gateway key ->
    (Programmed reason, message) of an allocation that did not give what was asked.
    ``ingress_addresses``: where the Gateway standing for Ingresses of class vipcast listens.
    """
    extra = ingress_objects(spec, ingress_addresses)
    classes = (*spec.gateway_classes, *extra.classes)
    ours = {c.name for c in classes if c.spec.controller_name == CONTROLLER_NAME}
    gateways = sorted(
        (g for g in (*spec.gateways, *extra.gateways) if g.spec.gateway_class_name in ours),
        key=lambda g: (created(g), g.key),
    )
    routes = sorted((*spec.http_routes, *extra.routes), key=lambda r: (created(r), r.key))
    grant_spec = spec if not extra.grants else _with_grants(spec, extra.grants)
    services = {s.key: s for s in spec.services}
    secrets: dict[str, object] = {
        f"{s.metadata.namespace or 'default'}/{s.metadata.name}": s for s in spec.secrets
    }

    # Gateways: addresses (first come, first served by creation time), listeners
    listeners: dict[str, list[_Listener]] = {}
    gw_addrs: dict[str, tuple[str, ...]] = {}
    gw_conds: dict[str, list[Condition]] = {}
    owner_of: dict[str, str] = {}
    for gw in gateways:
        addrs, refused = _addresses(gw, addresses, refusals or {})
        conds = [refused] if refused else []
        taken = [a for a in addrs if a in owner_of]
        if taken and not any(c.type == "Programmed" for c in conds):
            conds.append(_cond("Programmed", False, "AddressNotUsable",
                               f"{', '.join(taken)} already used by Gateway {owner_of[taken[0]]}"))
            addrs = ()
        for a in addrs:
            owner_of[a] = gw.key
        gw_addrs[gw.key] = addrs
        gw_conds[gw.key] = conds
        listeners[gw.key] = _check_listeners(gw, grant_spec, secrets)

    # routes: rules resolved once, then attached to each parentRef
    ruled: dict[str, RuleRoutes] = {}
    attachments: list[_Attachment] = []
    route_status: list[RouteStatus] = []
    usable = {k: [lis for lis in v if lis.ok] for k, v in listeners.items()}
    for route in routes:
        ruled[route.key] = rr = rule_routes(route, services, grant_spec.reference_grants)
        parents: list[RouteParentStatus] = []
        for i in range(len(route.spec.parent_refs)):
            st, att = _attach(route, i, usable, spec, rr.unsupported)
            if st is not None:
                parents.append(st)
                attachments.extend(att)
        if parents:
            route_status.append(_route_status(route, parents, rr))

    # the model: listeners per (address, port), route configurations, clusters
    proxy_listeners: list[ProxyListener] = []
    configs: list[RouteConfig] = []
    gw_status: list[GatewayStatus] = []
    used_clusters: set[str] = set()
    certs: dict[str, TlsCertificate] = {}
    for gw in gateways:
        addrs = gw_addrs[gw.key]
        ports = sorted({lis.spec.port for lis in usable[gw.key]})
        for port in ports:
            on_port = [lis for lis in usable[gw.key] if lis.spec.port == port]
            att = [a for a in attachments if a.listener in on_port]
            chains: list[FilterChain] = []
            protocol = on_port[0].spec.protocol
            if protocol == "HTTP":
                name = f"{gw.key}/{port}"
                configs.append(RouteConfig(name, _vhosts(name, att, ruled), port))
                chains.append(FilterChain(name, name))
            else:
                for lis in on_port:
                    name = f"{gw.key}/{port}/{lis.spec.name}"
                    mine = [a for a in att if a.listener is lis]
                    configs.append(RouteConfig(name, _vhosts(name, mine, ruled), port, True))
                    for c in lis.certificates:
                        certs[c.name] = c
                    chains.append(FilterChain(
                        name, name,
                        server_names=(lis.spec.hostname,) if lis.spec.hostname else (),
                        certificates=tuple(c.name for c in lis.certificates),
                    ))
            for addr in addrs:
                proxy_listeners.append(ProxyListener(
                    f"{gw.key}/{addr}/{port}", addr, port, protocol,  # type: ignore[arg-type]
                    tuple(sorted(chains)),
                ))
        gw_status.append(_gateway_status(gw, addrs, gw_conds[gw.key], listeners[gw.key]))
    for cfg in configs:
        for vh in cfg.virtual_hosts:
            for r in vh.routes:
                used_clusters.update(b.cluster for b in r.backends)
    slices: dict[str, list[EndpointSlice]] = {}
    for sl in spec.endpoint_slices:
        if sl.service_key is not None:
            slices.setdefault(sl.service_key, []).append(sl)
    clusters = []
    for name in sorted(used_clusters):
        if name == INVALID_BACKEND:
            continue  # no cluster: the proxy answers that share 500 itself
        key, number = name.rsplit(":", 1)
        clusters.append(endpoints_of(services[key], int(number), slices.get(key, [])))
    model = ProxyModel(
        node=node,
        listeners=tuple(sorted(proxy_listeners)),
        route_configs=tuple(sorted(configs)),
        clusters=tuple(clusters),
        certificates=tuple(certs[k] for k in sorted(certs)),
    )
    return Translation(
        model=model,
        gateway_classes=_gateway_classes(classes),
        gateways=tuple(sorted(gw_status)),
        routes=tuple(sorted(route_status)),
    )


def _with_grants(spec: Spec, grants: tuple[object, ...]) -> Spec:
    from dataclasses import replace

    return replace(spec, reference_grants=(*spec.reference_grants, *grants))  # type: ignore[arg-type]


def _gateway_status(
    gw: Gateway, addrs: tuple[str, ...], conds: list[Condition], lis: list[_Listener]
) -> GatewayStatus:
    valid = [s for s in lis if s.ok]
    listener_status = []
    for state in lis:
        c = state.conditions
        programmed = state.ok and bool(addrs)
        c["Programmed"] = _cond("Programmed", programmed, "Programmed" if programmed else "Invalid")
        listener_status.append(ListenerStatus(
            state.spec.name, state.attached, state.kinds, tuple(sorted(c.values()))))
    by_type = {c.type: c for c in conds}
    if "Accepted" not in by_type:
        if len(valid) == len(lis):
            by_type["Accepted"] = _cond("Accepted", True, "Accepted")
        else:
            by_type["Accepted"] = _cond("Accepted", bool(valid), "ListenersNotValid",
                                        f"{len(lis) - len(valid)} listener(s) not valid")
    if "Programmed" not in by_type:
        if by_type["Accepted"].status == "False":
            by_type["Programmed"] = _cond("Programmed", False, "Invalid")
        elif not addrs:
            by_type["Programmed"] = _cond("Programmed", False, "AddressNotAssigned",
                                          "no address in spec.addresses and none allocated")
        else:
            by_type["Programmed"] = _cond("Programmed", bool(valid), "Programmed")
    return GatewayStatus(gw.key, gw.metadata.generation, addrs,
                         tuple(sorted(by_type.values())), tuple(listener_status))
