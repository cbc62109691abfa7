"""The desired external load balancers of one LoadBalancerProvider (pure).

From the Services of the provider's ``loadBalancerClass``, their EndpointSlices, the Nodes and
the provider's options: one load balancer per Service (or per shared-LB annotation value) with
a VIP, one listener per Service port (protocol + port), members (the nodes on the NodePort, or
the ready endpoints themselves), a health monitor (HTTP on the ``healthCheckNodePort`` for
``externalTrafficPolicy: Local`` with node members, else a TCP connect), the allowed source
CIDRs and how the client address is carried (PROXY protocol v2 or X-Forwarded-For).

What a driver cannot express is not an exception: the Service is refused with a reason
(:class:`Refusal`) and left out, and every other Service still gets its load balancer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from vipcast.alloc import allocate
from vipcast.core.allocation import pool_input, service_input
from vipcast.core.endpoints import ready_endpoints, target_port
from vipcast.spec import (
    ANNOTATION_SHARED_LB,
    LoadBalancerProvider,
    Node,
    Service,
    Spec,
    requested_ips,
)

Protocol = Literal["TCP", "UDP", "SCTP"]
ClientAddress = Literal["none", "proxy-v2", "xff"]


@dataclass(frozen=True, order=True)
class Member:
    """One backend of a listener: a node on its NodePort, or an endpoint on its target port."""

    address: str
    port: int
    #: node name (node members) or the endpoint's node (pod members), for logs and weights
    node: str = ""
    #: 0 drains the member (no new connections), 1..256 otherwise
    weight: int = 1


@dataclass(frozen=True)
class HealthMonitor:
    kind: Literal["TCP", "HTTP"]
    #: None: each member's own port; else this port on every member (healthCheckNodePort)
    port: int | None
    path: str | None
    interval: float
    timeout: float
    rise: int
    fall: int


@dataclass(frozen=True)
class Listener:
    protocol: Protocol
    port: int
    members: tuple[Member, ...]
    monitor: HealthMonitor
    allowed_cidrs: tuple[str, ...]
    client_address: ClientAddress
    algorithm: str
    #: the Service (``ns/name``) this port belongs to
    service: str

    @property
    def name(self) -> str:
        return f"{self.protocol.lower()}-{self.port}"


@dataclass(frozen=True)
class DesiredLB:
    """One external load balancer as it should be."""

    name: str
    #: the Services whose ports it carries, sorted
    services: tuple[str, ...]
    #: None: the provider chooses (Octavia); drivers report the address they got
    vip: str | None
    listeners: tuple[Listener, ...]

    @property
    def ip_mode(self) -> Literal["VIP", "Proxy"]:
        """``status.loadBalancer.ingress[].ipMode``: Proxy when the LB terminates with PROXY."""
        if any(lst.client_address == "proxy-v2" for lst in self.listeners):
            return "Proxy"
        return "VIP"

    def members_only_differ(self, other: DesiredLB) -> bool:
        """Same frontends (VIP, listeners, monitors, ACLs); only members or weights differ."""
        def shape(lb: DesiredLB) -> object:
            return (lb.vip, tuple((*_listener_key(x), x.monitor, x.allowed_cidrs,
                                   x.client_address, x.algorithm) for x in lb.listeners))
        return shape(self) == shape(other)


def _listener_key(listener: Listener) -> tuple[str, int]:
    return listener.protocol, listener.port


class Why(StrEnum):
    """Why a Service of the provider's class gets no external load balancer."""

    PROTOCOL = "ProtocolUnsupported"
    CLIENT_ADDRESS = "ClientAddressUnsupported"
    SOURCE_RANGES = "SourceRangesUnsupported"
    NO_NODE_PORT = "NoNodePort"
    NO_ADDRESS = "NoAddress"
    PORT_CLASH = "SharedPortClash"
    NO_PORTS = "NoPorts"


@dataclass(frozen=True)
class Refusal:
    service: str
    why: Why
    message: str


@dataclass(frozen=True)
class Capabilities:
    """What a driver can express (declared by each driver, read by the pure model)."""

    driver: str
    protocols: frozenset[str]
    proxy_protocol: bool = True
    forwarded_for: bool = True
    source_ranges: bool = True
    #: at most this many source ranges per listener (None: any number)
    source_range_limit: int | None = None
    #: the product picks a VIP when none is given (Octavia); else an address is required
    assigns_vip: bool = False


@dataclass(frozen=True)
class ExternalPlan:
    load_balancers: tuple[DesiredLB, ...] = ()
    refused: tuple[Refusal, ...] = ()
    #: Service -> the name of its load balancer
    placement: Mapping[str, str] = field(default_factory=dict)

    def lb(self, name: str) -> DesiredLB | None:
        return next((lb for lb in self.load_balancers if lb.name == name), None)


def lb_name(cluster: str, service: Service) -> str:
    """The load balancer's name, as cloud-provider-openstack names it (or the shared name)."""
    shared = service.metadata.annotations.get(ANNOTATION_SHARED_LB)
    if shared:
        return f"kube_shared_{cluster}_{shared}"
    namespace = service.metadata.namespace or "default"
    return f"kube_service_{cluster}_{namespace}_{service.metadata.name}"


def provider_services(spec: Spec, provider: LoadBalancerProvider) -> tuple[Service, ...]:
    """The LoadBalancer Services of the provider's class that are not being deleted."""
    cls = provider.load_balancer_class
    return tuple(
        s for s in spec.services
        if s.spec.type == "LoadBalancer" and s.spec.load_balancer_class == cls
        and s.metadata.deletion_timestamp is None
    )


def provider_vips(
    spec: Spec, provider: LoadBalancerProvider
) -> tuple[dict[str, str], list[Refusal]]:
    """One VIP per Service: the requested one, else the one in its status, else one allocated
    from the provider's pools (none when the provider has no pools: the product picks)."""
    services = provider_services(spec, provider)
    pools = [p for p in spec.pools if p.name in provider.spec.options.address_pools]
    vips: dict[str, str] = {}
    refused: list[Refusal] = []
    if not pools:
        for svc in services:
            try:
                wanted = requested_ips(svc) or svc.status_ips
            except ValueError:
                wanted = ()
            if wanted:
                vips[svc.key] = wanted[0]
        return vips, refused
    current = {s.key: s.status_ips for s in services if s.status_ips}
    inputs = [service_input(s, spec.namespace_labels(s.metadata.namespace or "default"))
              for s in services]
    # the provider's pools are autoAssign: false for vipcast's own Services; here they assign
    result = allocate([replace(pool_input(p), auto_assign=True) for p in pools], inputs, current,
                      load_balancer_class=provider.load_balancer_class)
    for key, assignment in result.assignments.items():
        if assignment.ips:
            vips[key] = assignment.ips[0]
        else:
            refused.append(Refusal(key, Why.NO_ADDRESS, assignment.message))
    return vips, refused


def _eligible_nodes(nodes: Iterable[Node], provider: LoadBalancerProvider) -> list[tuple[str, str]]:
    selectors = provider.spec.options.node_selectors
    out = []
    for node in nodes:
        if not node.ready:
            continue
        if selectors and not any(s.matches(node.metadata.labels) for s in selectors):
            continue
        addresses = node.addresses_of("InternalIP")
        if addresses:
            out.append((node.metadata.name, addresses[0]))
    return sorted(out)


def _listeners(
    spec: Spec, service: Service, provider: LoadBalancerProvider, caps: Capabilities,
    nodes: list[tuple[str, str]], family: int,
) -> tuple[list[Listener], Refusal | None]:
    opts = provider.spec.options
    key = service.key
    client: ClientAddress = ("proxy-v2" if opts.proxy_protocol
                             else "xff" if opts.forwarded_for else "none")
    if client == "proxy-v2" and not caps.proxy_protocol:
        return [], Refusal(key, Why.CLIENT_ADDRESS,
                           f"the {caps.driver} driver cannot send the PROXY protocol")
    if client == "xff" and not caps.forwarded_for:
        return [], Refusal(key, Why.CLIENT_ADDRESS,
                           f"the {caps.driver} driver cannot add X-Forwarded-For")
    ranges = tuple(sorted({str(ipaddress.ip_network(c, strict=False))
                           for c in service.spec.load_balancer_source_ranges}))
    if ranges and not caps.source_ranges:
        return [], Refusal(key, Why.SOURCE_RANGES,
                           f"the {caps.driver} driver cannot restrict source ranges")
    if caps.source_range_limit is not None and len(ranges) > caps.source_range_limit:
        return [], Refusal(key, Why.SOURCE_RANGES,
                           f"the {caps.driver} driver carries at most "
                           f"{caps.source_range_limit} source range(s), not {len(ranges)}")
    if not service.spec.ports:
        return [], Refusal(key, Why.NO_PORTS, "the Service has no ports")
    hc = opts.health_check
    endpoints = ready_endpoints(spec.slices_of(key))
    listeners = []
    for port in service.spec.ports:
        where = f"port {port.port}/{port.protocol}"
        if port.protocol not in caps.protocols:
            carried = ", ".join(sorted(caps.protocols))
            return [], Refusal(key, Why.PROTOCOL,
                               f"{where}: the {caps.driver} driver carries {carried} only")
        if client != "none" and port.protocol != "TCP":
            return [], Refusal(key, Why.CLIENT_ADDRESS,
                               f"{where}: the client address can only be carried over TCP")
        monitor = HealthMonitor("TCP", None, None, hc.interval, hc.timeout, hc.rise, hc.fall)
        if opts.members == "nodes":
            if port.node_port is None:
                return [], Refusal(key, Why.NO_NODE_PORT,
                                   f"{where} has no nodePort (members are nodes)")
            members = tuple(Member(addr, port.node_port, name) for name, addr in nodes
                            if ipaddress.ip_address(addr).version == family)
            if (service.spec.external_traffic_policy == "Local"
                    and service.spec.health_check_node_port):
                monitor = HealthMonitor("HTTP", service.spec.health_check_node_port, "/healthz",
                                        hc.interval, hc.timeout, hc.rise, hc.fall)
        else:
            found = set()
            for ep in endpoints:
                number = target_port(port, ep)
                if number is not None and ep.family == family:
                    found.add(Member(ep.ip, number, ep.node or ""))
            members = tuple(sorted(found))
        listeners.append(Listener(port.protocol, port.port, members, monitor, ranges, client,
                                  opts.algorithm, key))
    return listeners, None


def desired_external(
    spec: Spec, provider: LoadBalancerProvider, caps: Capabilities,
    vips: Mapping[str, str] | None = None,
) -> ExternalPlan:
    """Every external load balancer the provider should have, and the Services refused."""
    if vips is None:
        vips, refused = provider_vips(spec, provider)
    else:
        refused = []
    refused_keys = {r.service for r in refused}
    nodes = _eligible_nodes(spec.nodes, provider)
    groups: dict[str, list[tuple[Service, list[Listener]]]] = {}
    group_vip: dict[str, str | None] = {}
    for service in sorted(provider_services(spec, provider), key=lambda s: s.key):
        key = service.key
        if key in refused_keys:
            continue
        vip = vips.get(key)
        if vip is None and not caps.assigns_vip:
            refused.append(Refusal(key, Why.NO_ADDRESS,
                                   f"the {caps.driver} driver needs an address and none was "
                                   "requested or allocated"))
            continue
        family = ipaddress.ip_address(vip).version if vip else 4
        listeners, refusal = _listeners(spec, service, provider, caps, nodes, family)
        if refusal is not None:
            refused.append(refusal)
            continue
        name = lb_name(provider.spec.options.cluster_name, service)
        taken = {_listener_key(x) for _, ls in groups.get(name, []) for x in ls}
        clash = sorted(taken & {_listener_key(x) for x in listeners})
        if clash:
            proto, number = clash[0]
            owner = next(s.key for s, ls in groups[name] for x in ls
                         if _listener_key(x) == (proto, number))
            refused.append(Refusal(key, Why.PORT_CLASH,
                                   f"port {number}/{proto} of shared load balancer {name} "
                                   f"is already {owner}'s"))
            continue
        if name in group_vip and vip and group_vip[name] not in (None, vip):
            refused.append(Refusal(key, Why.NO_ADDRESS,
                                   f"shared load balancer {name} has VIP {group_vip[name]}, "
                                   f"not {vip}"))
            continue
        group_vip[name] = group_vip.get(name) or vip
        groups.setdefault(name, []).append((service, listeners))
    lbs = []
    placement = {}
    for name in sorted(groups):
        members = groups[name]
        listeners = sorted((x for _, ls in members for x in ls), key=_listener_key)
        services = tuple(sorted(s.key for s, _ in members))
        lbs.append(DesiredLB(name, services, group_vip[name], tuple(listeners)))
        placement.update(dict.fromkeys(services, name))
    return ExternalPlan(tuple(lbs), tuple(sorted(refused, key=lambda r: r.service)), placement)


# ---------------------------------------------------------------- plain data (state files)


def lb_to_data(lb: DesiredLB) -> dict[str, object]:
    """A desired load balancer as JSON-ready data (drivers keep what they applied)."""
    return asdict(lb)


def lb_from_data(data: Mapping[str, Any]) -> DesiredLB:
    listeners = []
    for x in data["listeners"]:
        members = tuple(Member(**m) for m in x["members"])
        listeners.append(Listener(
            x["protocol"], x["port"], members, HealthMonitor(**x["monitor"]),
            tuple(x["allowed_cidrs"]), x["client_address"], x["algorithm"], x["service"]))
    return DesiredLB(data["name"], tuple(data["services"]), data["vip"], tuple(listeners))
