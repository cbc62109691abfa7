"""The address allocator: a pure function from (pools, services, current) to assignments.

Order of work, which is what makes it stable:

1. services that are not ours (type, class) and services that are gone release their addresses;
2. every current address that is still valid is kept (services in key order, so a corrupt state
   where two services claim one address resolves the same way every time);
3. explicit requests (``loadBalancerIP`` / the IPs annotation) are granted or refused;
4. the rest get fresh addresses from their best-ranked eligible pool.

Nothing kept in step 2 is ever moved by steps 3-4, so adding or removing other services never
moves an assignment, and feeding the result back in as ``current`` reproduces it.

One rule holds in steps 2, 3 and 4 alike (:data:`ONE_POOL`): all addresses of a service come
from one pool — kept, requested or fresh. The rules are named in the reasons and described in
docs/allocation.md under the same names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vipcast.alloc.families import family_name, wanted_families
from vipcast.alloc.fresh import FreshSearch
from vipcast.alloc.holdings import ONE_POOL, OUTSIDE, Addr, Work
from vipcast.alloc.model import (
    AllocationResult,
    Assignment,
    PoolInput,
    Reason,
    ServiceInput,
)
from vipcast.alloc.pools import ip_text, parse_address

#: the rule named in reasons (docs/allocation.md has a section for it)
ONE_REQUEST = "rule: one way to request"


class _Run(FreshSearch):
    """One run: steps 2 and 3 here, step 4 in :class:`~vipcast.alloc.fresh.FreshSearch`, the
    ledger in :class:`~vipcast.alloc.holdings.Holdings`."""

    # ------------------------------------------------------------ step 2: keep

    def keep(self, work: Work) -> None:
        service = work.service
        families = work.families
        requested = set()
        for text in service.requested_ips:
            try:
                requested.add(ip_text(*parse_address(text)))
            except ValueError:
                requested.add(text)  # refused with the reason in step 3
        parsed: list[Addr] = []
        for text in work.previous:
            try:
                parsed.append(parse_address(text))
            except ValueError:
                work.invalidated.append((text, "not an IP address"))
        # the preferred family first: it is the one kept when the two are in different pools
        if len(parsed) > 1:
            parsed.sort(key=lambda a: families.index(a[0]) if a[0] in families else 9)
        for addr in parsed:
            version = addr[0]
            if version not in families:
                why = f"the service no longer wants {family_name(version)}"
            elif version in work.held:
                why = f"a second {family_name(version)} address"
            elif requested and ip_text(*addr) not in requested:
                why = "not the requested address"
            else:
                pool, why = self.placement(service, [addr], held=[addr])
                if pool is not None and work.held:
                    pool, why = self.join(work, addr)
                if pool is not None:
                    why = self.conflict(service, addr) or ""
                    if not why:
                        self.hold(work, addr, pool, new=False)
                        continue
            work.invalidated.append((ip_text(*addr), why))

    def join(self, work: Work, addr: Addr) -> tuple[str | None, str]:
        """(pool, '') when ``addr`` may be kept with the addresses ``work`` holds: in their
        pool (rule: one pool per service); else (None, why not)."""
        other = next(iter(work.held.values()))[1]
        if other in self.index.pools_of(*addr) and self.pool_problem(
            work.service, self.index.by_name[other], addr, keeping=True
        ) is None:
            return other, ""
        both = [*self.held_addrs(work), addr]
        pool, _why = self.placement(work.service, both, held=both)
        if pool is None:
            return None, f"not in pool {other} of the service's other address ({ONE_POOL})"
        for version, (value, _old) in list(work.held.items()):
            work.held[version] = (value, pool)
        return pool, ""


    # ------------------------------------------------------------ step 3: requests

    def request(self, work: Work) -> tuple[Reason, str] | None:
        """Grant the requested addresses (all or none); None when granted."""
        service = work.service
        addrs: dict[int, Addr] = {}
        for text in service.requested_ips:
            try:
                version, value = parse_address(text)
            except ValueError:
                return Reason.REQUEST_INVALID, f"{text!r} is not an IP address"
            if version in addrs:
                return Reason.REQUEST_INVALID, f"more than one {family_name(version)} requested"
            addrs[version] = (version, value)
        families = work.families
        for version in addrs:
            if version not in families:
                return Reason.REQUEST_INVALID, (
                    f"{family_name(version)} requested but the service's families are "
                    f"{'/'.join(family_name(f) for f in families)}"
                )
        if service.ip_family_policy == "RequireDualStack" and len(addrs) < 2:
            return Reason.REQUEST_INVALID, "RequireDualStack needs one requested IP per family"
        held = self.held_addrs(work)
        for addr in addrs.values():
            pool, why = self.placement(service, [addr], held=held)
            if pool is None:
                reason = Reason.REQUESTED_OUTSIDE if why == OUTSIDE else Reason.REQUESTED_REFUSED
                return reason, f"requested {ip_text(*addr)}: {why}"
        # every requested address from one pool, the same rule as for fresh addresses
        pool, why = self.placement(service, list(addrs.values()), held=held)
        if pool is None:
            return Reason.REQUESTED_REFUSED, f"requested {why}"
        for version, addr in addrs.items():
            if version not in work.held and (conflict := self.conflict(service, addr)):
                return Reason.REQUESTED_TAKEN, f"requested {ip_text(*addr)}: {conflict}"
        for version, addr in addrs.items():
            if version in work.held:
                work.held[version] = (addr[1], pool)
            else:
                self.hold(work, addr, pool, new=True)
        return None



def _is_ours(service: ServiceInput, load_balancer_class: str | None) -> tuple[Reason, str] | None:
    if service.type != "LoadBalancer":
        return Reason.NOT_LOAD_BALANCER, f"type is {service.type}"
    if service.load_balancer_class not in (None, load_balancer_class):
        return Reason.CLASS_NOT_OURS, (
            f"loadBalancerClass {service.load_balancer_class} is not "
            f"{load_balancer_class or 'unset'}"
        )
    return None


def _outcome(work: Work, failure: tuple[Reason, str] | None) -> Assignment:
    service = work.service
    order = work.families
    held = work.held
    if len(held) > 1:
        versions = sorted(held, key=lambda v: order.index(v) if v in order else 9)
    else:
        versions = list(held)
    ips = tuple([ip_text(v, held[v][0]) for v in versions])
    pool = held[versions[0]][1] if versions else None
    lost = tuple(work.invalidated)
    if failure is not None:
        reason, message = failure
        if ips and reason in (Reason.POOL_EXHAUSTED, Reason.NO_POOL):
            reason = Reason.PARTIAL
    elif not work.new:
        reason, message = Reason.KEPT, "unchanged"
    elif service.requested_ips:
        reason, message = Reason.REQUESTED, f"requested address granted from pool {pool}"
    elif lost:
        reason, message = Reason.MOVED, "; ".join(f"{ip}: {why}" for ip, why in lost)
        message += f"; now from pool {pool}"
    else:
        reason, message = Reason.ASSIGNED, f"from pool {pool}"
    if work.note and reason in (Reason.ASSIGNED, Reason.MOVED, Reason.KEPT):
        message += f" ({work.note})"
    if lost and reason is not Reason.MOVED:
        message += " (released " + "; ".join(f"{ip}: {why}" for ip, why in lost) + ")"
    missing = [f for f in order if f not in work.held]
    if reason in (Reason.ASSIGNED, Reason.MOVED) and missing and ips:
        message += f"; no {' or '.join(family_name(f) for f in missing)} address available"
    return Assignment(service.key, ips, pool, reason, message, work.previous, lost)


def allocate(
    pools: Iterable[PoolInput],
    services: Iterable[ServiceInput],
    current: Mapping[str, Iterable[str]],
    *,
    load_balancer_class: str | None = None,
) -> AllocationResult:
    """Assign addresses to every service; each outcome carries its reason.

    ``current`` maps ``namespace/name`` to the addresses the service holds now (from the state
    file or Service status). Services whose ``load_balancer_class`` is neither None nor
    ``load_balancer_class`` belong to another controller.
    """
    run = _Run(pools)
    by_key = {s.key: s for s in services}
    out: dict[str, Assignment] = {}
    works: list[Work] = []
    for key in sorted(by_key):
        service = by_key[key]
        previous = tuple(current.get(key, ()))
        if skip := _is_ours(service, load_balancer_class):
            lost = tuple((ip, skip[1]) for ip in previous)
            out[key] = Assignment(key, (), None, skip[0], skip[1], previous, lost)
        else:
            works.append(Work(service, previous, wanted_families(service)))
    released = tuple(
        Assignment(key, (), None, Reason.DELETED, "service deleted", tuple(ips))
        for key, ips in sorted(current.items())
        if key not in by_key and tuple(ips)
    )
    for work in works:
        run.keep(work)
    failures: dict[str, tuple[Reason, str] | None] = {}
    for work in works:
        if work.service.request_problem:
            # refused whole, as MetalLB; what it holds stays until the request is readable
            failures[work.service.key] = (
                Reason.REQUEST_INVALID, f"{work.service.request_problem} ({ONE_REQUEST})"
            )
        elif work.service.requested_ips:
            failures[work.service.key] = run.request(work)
            if failures[work.service.key] is not None:
                for version in list(work.held):
                    value = work.held[version][0]
                    work.invalidated.append((ip_text(version, value), "request refused"))
                    run.give_back(work, version)
    for work in works:
        key = work.service.key
        if key not in failures:
            failures[key] = run.fresh(work)
        out[key] = _outcome(work, failures[key])
    return AllocationResult(dict(sorted(out.items())), released, run.usage())
