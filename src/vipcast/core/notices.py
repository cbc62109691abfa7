"""Findings that do not reject a config: warnings ``check-config`` shows.

Two families, each naming the rule of docs/allocation.md it comes from:

- a Service vipcast will refuse, as MetalLB would (both ways of requesting an address set;
  requested addresses in two pools);
- a place where vipcast and MetalLB read the same config differently or where a migrating
  user may expect otherwise (``priority: 0``; pool capacity MetalLB would count differently).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from vipcast.core.allocation import pool_input
from vipcast.core.drain import drain_issues
from vipcast.core.weights import weight_issues
from vipcast.spec import (
    ANNOTATION_IPS,
    AddressRange,
    Issue,
    Spec,
    request_conflict,
    requested_ips,
)


def notices(spec: Spec) -> list[Issue]:
    """Every warning for a loaded (valid) Spec, sorted."""
    return sorted({*_priority_zero(spec), *_capacity(spec), *_requests(spec),
                   *weight_issues(spec), *drain_issues(spec)})


def _issue(spec: Spec, kind: str, name: str, field: str, message: str) -> Issue:
    return Issue(spec.origins.get(f"{kind}/{name}", ""), kind, name, field, message)


def _priority_zero(spec: Spec) -> Iterator[Issue]:
    for pool in spec.pools:
        alloc = pool.spec.service_allocation
        if alloc is not None and alloc.priority == 0:
            yield _issue(
                spec, "IPAddressPool", pool.name, "spec.serviceAllocation.priority",
                "priority 0 counts as unset, as in MetalLB: this pool ranks after every pool "
                "with a priority (rule: pool order); use 1 to rank it first",
            )


def metallb_capacity(ranges: tuple[AddressRange, ...], avoid_buggy_ips: bool) -> int:
    """MetalLB's figure for a pool's IPv4 capacity: ranges cut into CIDR blocks, and with
    ``avoidBuggyIPs`` two addresses off per /24 or, in a longer block, one for a first and
    one for a last address ending in .0/.255 (a lone /32 on .0 counts -1)."""
    total = 0
    for r in ranges:
        if r.version != 4:
            continue
        blocks = ipaddress.summarize_address_range(
            ipaddress.IPv4Address(r.first), ipaddress.IPv4Address(r.last)
        )
        for block in blocks:
            size = block.num_addresses
            if avoid_buggy_ips:
                if block.prefixlen <= 24:
                    size -= 2 ** (24 - block.prefixlen) * 2
                else:
                    size -= sum(
                        1 for end in (block.network_address, block.broadcast_address)
                        if int(end) & 0xFF in (0, 0xFF)
                    )
            total += size
    return total


def _capacity(spec: Spec) -> Iterator[Issue]:
    for pool in spec.pools:
        ours = pool_input(pool).capacity_of(4)
        theirs = metallb_capacity(pool.spec.ranges, pool.spec.avoid_buggy_i_ps)
        if ours != theirs:
            yield _issue(
                spec, "IPAddressPool", pool.name, "spec.addresses",
                f"capacity {ours} IPv4 addresses; MetalLB's metrics would report {theirs} "
                "(it counts a lone .0 or .255 block of a range as -1; rule: capacity "
                "without .0/.255)",
            )


def _requests(spec: Spec) -> Iterator[Issue]:
    for svc in spec.services:
        field = f"metadata.annotations[{ANNOTATION_IPS}]"
        problem = request_conflict(svc)
        if problem:
            yield _issue(
                spec, "Service", svc.key, field,
                f"{problem}; the Service gets no new address, as in MetalLB "
                "(rule: one way to request)",
            )
            continue
        try:
            ips = [ipaddress.ip_address(ip) for ip in requested_ips(svc)]
        except ValueError:
            continue  # an error of the config, reported by the checks
        if len(ips) < 2:
            continue
        holders = [
            {p.name for p in spec.pools if any(r.contains(ip) for r in p.spec.ranges)}
            for ip in ips
        ]
        if all(holders) and not set.intersection(*holders):
            where = "; ".join(
                f"{ip} in {', '.join(sorted(h))}" for ip, h in zip(ips, holders, strict=True)
            )
            yield _issue(
                spec, "Service", svc.key, field,
                f"requested addresses in different pools ({where}): refused, as in MetalLB "
                "(rule: one pool per service)",
            )
