"""The node's allocation and duties with memory: a change of a few Services is planned alone.

:class:`NodePlanner` is ``plan_for_spec`` (allocate every Service, plan one node) that
remembers its last inputs and result. When the next config differs from the last only in a
few Services or EndpointSlices (every other object the very same Python object: the file
source hands unchanged files' objects on as they were), it allocates and plans just those
Services and splices their part into the previous duties; everything else in the result is the
previous objects, so the consumers' identity diffs stay small.

The shortcut is taken only where it provably gives what the whole computation gives, and the
whole computation runs otherwise:

* allocation: no Service got a fresh address last time (every address was requested or kept,
  so none depends on the key order of the others), and every changed Service asks for explicit
  addresses, no sharing key, no status addresses, and its addresses are held or requested by no
  other Service (its own old ones freed are wanted by nobody else);
* duties: each changed Service's routes, L2 ownerships and VIPs are its alone (no shared
  address, no aggregated prefix it shares with another route).

``tests/foundation/test_incremental.py`` checks the result against ``plan_for_spec`` on random
changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TypeVar

from vipcast.alloc import Reason
from vipcast.alloc.pools import ip_text, parse_address
from vipcast.core.allocation import (
    allocate_spec,
    committed_assignments,
    committed_ips,
    service_input,
)
from vipcast.core.desired import BGPRoute, L2Ownership, NatRule, NodePlan
from vipcast.core.identity import identity_diff
from vipcast.core.plan import plan_node
from vipcast.spec import (
    LOAD_BALANCER_CLASS,
    EndpointSlice,
    Service,
    Spec,
    request_conflict,
    requested_ips,
)

T = TypeVar("T")
K = TypeVar("K", str, tuple[int, int])
#: above this many changed Services, planning everything again is about as fast
LIMIT = 64
#: the Spec fields that hold Services and EndpointSlices; any other change plans everything
_PER_SERVICE = frozenset({"services", "endpoint_slices", "origins"})
_FRESH = frozenset({Reason.ASSIGNED, Reason.MOVED, Reason.PARTIAL})


@dataclass
class _Last:
    spec: Spec
    node: str
    duties: NodePlan
    assignments: dict[str, tuple[str, ...]]
    services: dict[str, Service]
    slices: dict[str, tuple[EndpointSlice, ...]]
    #: address -> the Services holding it / requesting it
    holders: dict[str, set[str]]
    requested: dict[str, set[str]]
    #: some Service got a fresh address (allocation depends on the order of all of them)
    fresh: bool
    #: Service key -> its routes / L2 ownerships in ``duties``
    routes_of: dict[str, list[BGPRoute]]
    l2_of: dict[str, list[L2Ownership]]


def _slices_by_service(spec: Spec) -> dict[str, tuple[EndpointSlice, ...]]:
    grouped: dict[str, list[EndpointSlice]] = {}
    for s in spec.endpoint_slices:
        if s.service_key:
            grouped.setdefault(s.service_key, []).append(s)
    return {k: tuple(v) for k, v in grouped.items()}


def _same_objects(a: object, b: object) -> bool:
    if a is b:
        return True
    if not (isinstance(a, tuple) and isinstance(b, tuple)) or len(a) != len(b):
        return False
    return all(x is y for x, y in zip(a, b, strict=True))


def _route_key(route: BGPRoute) -> tuple[object, ...]:
    return (route.prefix, route.peers, route.communities, route.large_communities,
            -1 if route.local_pref is None else route.local_pref)


def _address_key(ip: str) -> tuple[int, int]:
    return parse_address(ip)


class NodePlanner:
    """``plan_for_spec`` with memory (see the module); counts which way each call went."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._last: _Last | None = None
        self.incremental = 0
        self.whole = 0
        #: the Services the last call planned alone (None: it planned everything), by key;
        #: None for a removed one (what :func:`vipcast.core.pipeline.snapshot` takes)
        self.last_changed: dict[str, Service | None] | None = None
        #: a whole plan's inputs and result whose memory :meth:`settle` has yet to build
        self._pending: tuple[Spec, str, Mapping[str, tuple[str, ...]], bool, NodePlan] | None
        self._pending = None

    @property
    def assignments(self) -> Mapping[str, tuple[str, ...]]:
        """The last call's allocation, by Service key (what the snapshot's Gateways listen on)."""
        if self._pending is not None:
            return self._pending[2]
        return self._last.assignments if self._last is not None else {}

    def first(self, spec: Spec, node: str,
              assigned: Callable[[Mapping[str, tuple[str, ...]]], None] | None = None
              ) -> NodePlan:
        """The whole computation, as a call gives it, without building the memory yet: the
        caller hands the duties on (the agent's first routes) and then calls :meth:`settle`
        (the next call settles too). The same result and memory as a call. ``assigned`` is
        handed the allocation before the duties are planned (the agent plans its first
        routes from it: :mod:`vipcast.core.first_routes`)."""
        self.settle()
        self._last = None
        self.whole += 1
        self.last_changed = None
        assignments, fresh = self._assign_all(spec)
        if assigned is not None:
            assigned(assignments)
        duties = plan_node(spec, assignments, node)
        self._pending = (spec, node, assignments, fresh, duties)
        return duties

    def settle(self) -> None:
        """Build the memory of a :meth:`first` result (nothing when there is none)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._remember(*pending)

    def __call__(self, spec: Spec, node: str) -> NodePlan:
        self.settle()
        last = self._last
        if last is not None and last.node == node:
            duties = self._changed(last, spec)
            if duties is not None:
                self.incremental += 1
                return duties
        self.whole += 1
        self.last_changed = None
        return self._whole(spec, node)

    # ---- the whole computation ------------------------------------------------------------

    def _assign_all(self, spec: Spec) -> tuple[Mapping[str, tuple[str, ...]], bool]:
        """Every Service's addresses, and whether some got a fresh one (the allocator)."""
        result = allocate_spec(spec)
        fresh = any(a.reason in _FRESH for a in result.assignments.values())
        return result.current(), fresh

    def _requests_of(self, service: Service) -> tuple[str, ...]:
        return _requests(service)

    def _whole(self, spec: Spec, node: str) -> NodePlan:
        assignments, fresh = self._assign_all(spec)
        duties = plan_node(spec, assignments, node)
        self._remember(spec, node, assignments, fresh, duties)
        return duties

    def _remember(self, spec: Spec, node: str, assignments: Mapping[str, tuple[str, ...]],
                  fresh: bool, duties: NodePlan) -> None:
        """The memory of a whole computation (what a change of a few Services starts from)."""
        services = {s.key: s for s in spec.services}
        holders: dict[str, set[str]] = {}
        for key, ips in assignments.items():
            for ip in ips:
                holders.setdefault(ip, set()).add(key)
        requested: dict[str, set[str]] = {}
        for key, service in services.items():
            for ip in self._requests_of(service):
                requested.setdefault(ip, set()).add(key)
        self._last = _Last(spec, node, duties, dict(assignments), services,
                           _slices_by_service(spec), holders, requested, fresh, {}, {})
        _index(self._last, duties.bgp, duties.l2)

    # ---- a few Services changed -------------------------------------------------------------

    def _changed(self, last: _Last, spec: Spec) -> NodePlan | None:
        for item in fields(Spec):
            if item.name not in _PER_SERVICE and not _same_objects(
                getattr(last.spec, item.name), getattr(spec, item.name)
            ):
                return None
        # what differs, by object identity (both specs hold their objects meanwhile)
        gone, added = identity_diff(last.spec.services, spec.services)
        gone_slices, added_slices = identity_diff(last.spec.endpoint_slices, spec.endpoint_slices)
        changed = {x.key for x in (*added, *gone)}
        changed |= {k for x in (*added_slices, *gone_slices) if (k := x.service_key)}
        if len(changed) > self.limit:
            return None
        services = {k: v for k in changed if (v := last.services.get(k)) is not None}
        for x in gone:
            services.pop(x.key, None)
        services.update((x.key, x) for x in added)
        slices = self._slices_of(last, changed, added_slices, gone_slices)
        if slices is None:
            return None
        self.last_changed = {k: services.get(k) for k in changed}
        if not changed:
            last.spec = spec
            return last.duties
        assigned = self._allocate(last, services, changed)
        if assigned is None:
            return None
        spliced = self._splice(last, spec, services, slices, changed, assigned)
        if spliced is None:
            return None
        duties, part_bgp, part_l2 = spliced
        # the last state is replaced: update its indexes in place (no copy of 10,000 entries)
        assignments, holders, requested = last.assignments, last.holders, last.requested
        for key in changed:
            for ip in assignments.pop(key, ()):
                _discard(holders, ip, key)
            old_service = last.services.pop(key, None)
            for ip in self._requests_of(old_service) if old_service is not None else ():
                _discard(requested, ip, key)
            last.slices.pop(key, None)
        for key, ips in assigned.items():
            if ips:
                assignments[key] = ips
            for ip in ips:
                holders.setdefault(ip, set()).add(key)
        for key, service in services.items():
            last.services[key] = service
            for ip in self._requests_of(service):
                requested.setdefault(ip, set()).add(key)
        last.slices.update((k, v) for k, v in slices.items() if v)
        for key in changed:
            last.routes_of.pop(key, None)
            last.l2_of.pop(key, None)
        _index(last, part_bgp, part_l2)
        last.spec, last.duties = spec, duties
        return duties

    @staticmethod
    def _slices_of(
        last: _Last, changed: set[str], added: list[EndpointSlice], gone: list[EndpointSlice]
    ) -> dict[str, tuple[EndpointSlice, ...]] | None:
        """The changed Services' EndpointSlices; None when old and new ones mix under one
        Service (their order in the whole config would need a full look)."""
        gone_ids = {id(x) for x in gone}
        fresh: dict[str, list[EndpointSlice]] = {}
        for x in added:
            if x.service_key:
                fresh.setdefault(x.service_key, []).append(x)
        out: dict[str, tuple[EndpointSlice, ...]] = {}
        for key in changed:
            kept = tuple(x for x in last.slices.get(key, ()) if id(x) not in gone_ids)
            new = tuple(fresh.get(key, ()))
            if kept and new:
                return None
            out[key] = kept or new
        return out

    def _allocate(self, last: _Last, services: Mapping[str, Service], changed: set[str]
                  ) -> dict[str, tuple[str, ...]] | None:
        """The changed Services' addresses, allocated alone; None when that could differ from
        allocating everything."""
        if last.fresh:
            return None
        wanted: dict[str, tuple[str, ...]] = {}
        for key in changed:
            for ip in last.assignments.get(key, ()):
                # its old address, freed: nobody else may be waiting for it
                if last.requested.get(ip, set()) - {key}:
                    return None
            service = services.get(key)
            if service is None:
                continue
            if service.status_ips:
                return None
            if not _is_ours(service):
                wanted[key] = ()
                continue
            inp = service_input(service, {})
            if not inp.requested_ips or inp.sharing_key or inp.request_problem:
                return None
            for ip in _requests(service):
                if (last.holders.get(ip, set()) | last.requested.get(ip, set())) - {key}:
                    return None
                if any(ip in _requests(services[o]) for o in changed - {key} if o in services):
                    return None
            wanted[key] = ()
        mine = tuple(services[k] for k in sorted(wanted))
        if not mine:
            return {}
        result = allocate_spec(replace(last.spec, services=mine))
        if any(a.reason in _FRESH for a in result.assignments.values()):
            return None
        return {k: tuple(result.assignments[k].ips) for k in wanted}

    def _splice(
        self,
        last: _Last,
        spec: Spec,
        services: Mapping[str, Service],
        slices: Mapping[str, tuple[EndpointSlice, ...]],
        changed: set[str],
        assigned: Mapping[str, tuple[str, ...]],
    ) -> tuple[NodePlan, tuple[BGPRoute, ...], tuple[L2Ownership, ...]] | None:
        """The previous duties without the changed Services' part, with their new part; and
        that new part's routes and L2 ownerships."""
        old = last.duties
        gone_ips = {ip for k in changed for ip in last.assignments.get(k, ())}
        # the changed Services' routes and L2 ownerships, found through the index and taken
        # out of copies of the sorted tuples (no walk over the 10,000 others)
        bgp = list(old.bgp)
        for route in {id(r): r for k in changed for r in last.routes_of.get(k, ())}.values():
            if not set(route.services) <= changed:
                return None  # a prefix shared with an unchanged Service
            if not _remove(bgp, route, route.prefix, _prefix_of):
                return None
        l2 = list(old.l2)
        for own in {id(o): o for k in changed for o in last.l2_of.get(k, ())}.values():
            if not set(own.services) <= changed:
                return None
            if not _remove(l2, own, _address_key(own.ip), _l2_key):
                return None
        nat = list(old.nat)
        for key in changed:  # each Service's rules are one block, in key order
            start = bisect.bisect_left(nat, key, key=lambda r: r.service)
            end = bisect.bisect_right(nat, key, lo=start, key=lambda r: r.service)
            del nat[start:end]
        vips = list(old.local_vips)
        for ip in gone_ips:
            at = bisect.bisect_left(vips, _address_key(ip), key=_address_key)
            if at < len(vips) and vips[at] == ip:
                del vips[at]
        part_bgp: tuple[BGPRoute, ...] = ()
        part_l2: tuple[L2Ownership, ...] = ()
        mine = {k: v for k, v in assigned.items() if v}
        if mine:
            part_spec = replace(
                spec,
                services=tuple(services[k] for k in sorted(mine)),
                endpoint_slices=tuple(s for k in sorted(mine) for s in slices.get(k, ())),
            )
            part = plan_node(part_spec, mine, last.node)
            part_bgp, part_l2 = part.bgp, part.l2
            for route in part.bgp:
                at = bisect.bisect_left(bgp, route.prefix, key=lambda r: r.prefix)
                if at < len(bgp) and bgp[at].prefix == route.prefix:
                    return None  # aggregated with another Service's route
                bisect.insort(bgp, route, key=_route_key)
            for own in part.l2:
                bisect.insort(l2, own, key=lambda o: _address_key(o.ip))
            _insert_rules(nat, part.nat)
            have = set(vips)
            for ip in part.local_vips:
                if ip not in have:
                    bisect.insort(vips, ip, key=_address_key)
        duties = NodePlan(node=old.node, bgp=tuple(bgp), l2=tuple(l2), nat=tuple(nat),
                          local_vips=tuple(vips))
        return duties, part_bgp, part_l2


class StatusNodePlanner(NodePlanner):
    """The Kubernetes speaker's planner with memory: it never allocates, it plans the
    addresses the controller committed to the Services' status
    (:func:`~vipcast.core.allocation.committed_ips`). A change of a few Services or
    EndpointSlices is planned alone when no address it held or holds is held by another
    Service too; anything else plans everything, as ``plan_node(spec,
    committed_assignments(spec), node)`` would."""

    def __init__(self, load_balancer_class: str | None = None, limit: int = LIMIT) -> None:
        super().__init__(limit)
        self.load_balancer_class = load_balancer_class

    def _assign_all(self, spec: Spec) -> tuple[Mapping[str, tuple[str, ...]], bool]:
        return committed_assignments(spec, self.load_balancer_class), False

    def _requests_of(self, service: Service) -> tuple[str, ...]:
        return ()  # status addresses only: nothing is requested from this planner

    def _allocate(self, last: _Last, services: Mapping[str, Service], changed: set[str]
                  ) -> dict[str, tuple[str, ...]] | None:
        wanted: dict[str, tuple[str, ...]] = {}
        for key in changed:
            for ip in last.assignments.get(key, ()):
                if last.holders.get(ip, set()) - {key}:
                    return None  # shared with another Service
            service = services.get(key)
            wanted[key] = () if service is None else committed_ips(
                service, last.spec.pools, self.load_balancer_class)
        for key, ips in wanted.items():
            for ip in ips:
                if last.holders.get(ip, set()) - {key}:
                    return None
                if any(ip in wanted[o] for o in changed - {key}):
                    return None
        return wanted


def _index(last: _Last, routes: Iterable[BGPRoute], l2: Iterable[L2Ownership]) -> None:
    for route in routes:
        for key in route.services:
            last.routes_of.setdefault(key, []).append(route)
    for own in l2:
        for key in own.services:
            last.l2_of.setdefault(key, []).append(own)


def _prefix_of(route: BGPRoute) -> str:
    return route.prefix


def _l2_key(own: L2Ownership) -> tuple[int, int]:
    return _address_key(own.ip)


def _remove(items: list[T], item: T, key: K, key_of: Callable[[T], K]) -> bool:
    """Take ``item`` (by identity) out of ``items``, sorted by ``key_of``; False: not there."""
    at = bisect.bisect_left(items, key, key=key_of)
    while at < len(items) and key_of(items[at]) == key:
        if items[at] is item:
            del items[at]
            return True
        at += 1
    return False


def _insert_rules(nat: list[NatRule], rules: Iterable[NatRule]) -> None:
    """Insert each Service's rules (in their order) where its key sorts among the others."""
    by_service: dict[str, list[NatRule]] = {}
    for rule in rules:
        by_service.setdefault(rule.service, []).append(rule)
    for service in sorted(by_service, reverse=True):
        at = bisect.bisect_left(nat, service, key=lambda r: r.service)
        nat[at:at] = by_service[service]


def _discard(index: dict[str, set[str]], ip: str, key: str) -> None:
    keys = index.get(ip)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[ip]


def _is_ours(service: Service) -> bool:
    return service.spec.type == "LoadBalancer" and service.spec.load_balancer_class in (
        None, LOAD_BALANCER_CLASS)


def _requests(service: Service) -> tuple[str, ...]:
    """The addresses a Service asks for, canonical (as the allocator writes them)."""
    try:  # as service_input() reads them, without building the whole input
        wanted = () if request_conflict(service) else requested_ips(service)
    except ValueError:
        return ()
    out = []
    for ip in wanted:
        try:
            family, value = parse_address(ip)
        except ValueError:
            continue
        out.append(ip_text(family, value))
    return tuple(out)
