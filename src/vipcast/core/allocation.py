"""From a :class:`~vipcast.spec.Spec` to the allocator's inputs, and the allocation of a Spec.

This is the only place that knows both the spec's models and the allocator's small values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from vipcast.alloc import AllocationResult, IPRange, PoolInput, ServiceInput, allocate
from vipcast.spec import (
    ANNOTATION_POOL,
    ANNOTATION_SHARING,
    LOAD_BALANCER_CLASS,
    IPAddressPool,
    Service,
    Spec,
    annotation,
    claims,
    request_conflict,
    requested_ips,
)


def pool_input(pool: IPAddressPool) -> PoolInput:
    alloc = pool.spec.service_allocation
    return PoolInput(
        name=pool.name,
        ranges=tuple(IPRange(r.version, r.first, r.last) for r in pool.spec.ranges),
        auto_assign=pool.spec.auto_assign,
        avoid_buggy_ips=pool.spec.avoid_buggy_i_ps,
        priority=alloc.priority if alloc else None,
        namespaces=alloc.namespaces if alloc else (),
        namespace_selectors=alloc.namespace_selectors if alloc else (),
        service_selectors=alloc.service_selectors if alloc else (),
        pinned=alloc is not None,
    )


def service_input(service: Service, namespace_labels: Mapping[str, str]) -> ServiceInput:
    spec = service.spec
    annotated = bool(service.metadata.annotations)  # most Services have none to look up
    # without annotations and spec.loadBalancerIP a Service requests nothing
    problem = request_conflict(service) if annotated else None
    try:
        wanted = () if problem or not (annotated or spec.load_balancer_ip) else (
            requested_ips(service)
        )
    except ValueError:  # the spec check reports it; an unparsable request asks for nothing valid
        wanted = ("invalid",)
    return ServiceInput(
        namespace=service.metadata.namespace or "default",
        name=service.metadata.name,
        type=spec.type,
        load_balancer_class=spec.load_balancer_class,
        labels=service.metadata.labels,
        namespace_labels=namespace_labels,
        requested_ips=wanted,
        request_problem=problem,
        requested_pool=annotation(service.metadata, ANNOTATION_POOL) if annotated else None,
        ip_families=tuple(6 if f == "IPv6" else 4 for f in spec.ip_families),
        ip_family_policy=spec.ip_family_policy or "SingleStack",
        sharing_key=annotation(service.metadata, ANNOTATION_SHARING) if annotated else None,
        ports=tuple((p.port, p.protocol) for p in spec.ports),
        traffic_policy=spec.external_traffic_policy,
        selector=tuple(sorted((spec.selector or {}).items())),
    )


def status_assignments(services: Iterable[Service]) -> dict[str, tuple[str, ...]]:
    """Current addresses as written in the Services' ``status.loadBalancer.ingress``."""
    return {s.key: s.status_ips for s in services if s.status_ips}


def committed_ips(
    service: Service, pools: Iterable[IPAddressPool], load_balancer_class: str | None
) -> tuple[str, ...]:
    """The addresses of one Service that a node may announce in a cluster: those the
    controller committed to its status, if it is a LoadBalancer of the class served
    (:func:`~vipcast.spec.claims`), and only those inside one of the pools."""
    if service.spec.type != "LoadBalancer" or not service.status_ips:
        return ()
    if not claims(service.spec.load_balancer_class, load_balancer_class):
        return ()
    ranges = [r for pool in pools for r in pool.spec.ranges]
    return tuple(ip for ip in service.status_ips
                 if any(r.contains(ipaddress.ip_address(ip)) for r in ranges))


def committed_assignments(
    spec: Spec, load_balancer_class: str | None = None
) -> dict[str, tuple[str, ...]]:
    """:func:`committed_ips` of every Service of the spec that has some, by key."""
    out: dict[str, tuple[str, ...]] = {}
    for service in spec.services:
        ips = committed_ips(service, spec.pools, load_balancer_class)
        if ips:
            out[service.key] = ips
    return out


def allocate_spec(
    spec: Spec,
    current: Mapping[str, Iterable[str]] | None = None,
    *,
    load_balancer_class: str | None = LOAD_BALANCER_CLASS,
) -> AllocationResult:
    """Allocate the Spec's Services from its pools.

    ``current`` defaults to the Services' status; entries given in ``current`` win over status
    for the same service (the caller merges its state file over the status it read).
    """
    merged: dict[str, tuple[str, ...]] = status_assignments(spec.services)
    for key, ips in (current or {}).items():
        merged[key] = tuple(ips)
    ns_labels: dict[str, Mapping[str, str]] = {}
    inputs = []
    for service in spec.services:
        ns = service.metadata.namespace or "default"
        if ns not in ns_labels:
            ns_labels[ns] = spec.namespace_labels(ns)
        inputs.append(service_input(service, ns_labels[ns]))
    return allocate(
        [pool_input(p) for p in spec.pools],
        inputs,
        merged,
        load_balancer_class=load_balancer_class,
    )
