"""When two services may hold the same address (MetalLB's ``allow-shared-ip`` rules)."""

from __future__ import annotations

from collections.abc import Iterable

from vipcast.alloc.model import ServiceInput


def share_conflict(service: ServiceInput, holder: ServiceInput) -> str | None:
    """Why ``service`` may not share an address with ``holder``; None when it may.

    The relation is symmetric: both need the same sharing key, no (port, protocol) in common,
    and the same traffic policy — and with ``Local``, the same pod selector, because the
    address can only be announced from nodes that run endpoints of every sharer.
    """
    if service.sharing_key is None or service.sharing_key != holder.sharing_key:
        return f"held by {holder.key} (no common sharing key)"
    common = sorted(set(service.ports) & set(holder.ports))
    if common:
        port, proto = common[0]
        return f"held by {holder.key}, which also uses port {port}/{proto}"
    if service.traffic_policy != holder.traffic_policy:
        return (
            f"held by {holder.key} with externalTrafficPolicy {holder.traffic_policy}, "
            f"not {service.traffic_policy}"
        )
    if service.traffic_policy == "Local" and service.selector != holder.selector:
        return f"held by {holder.key} with policy Local and a different pod selector"
    return None


def first_conflict(service: ServiceInput, holders: Iterable[ServiceInput]) -> str | None:
    for holder in holders:
        if holder.key != service.key and (why := share_conflict(service, holder)):
            return why
    return None
