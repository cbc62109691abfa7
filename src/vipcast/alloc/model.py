"""The allocator's inputs and outputs: small frozen values, independent of the spec's models.

The spec layer (pydantic) is adapted to these in :mod:`vipcast.core.allocation`; the allocator
itself only knows pools as integer ranges and services as the few facts that decide their IPs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Literal, Protocol

from vipcast.fastinit import fast_init

FamilyPolicy = Literal["SingleStack", "PreferDualStack", "RequireDualStack"]
TrafficPolicy = Literal["Cluster", "Local"]

#: where vipcast (like MetalLB) looks for a service's wishes
ANNOTATION_POOL = "vipcast.io/address-pool"
ANNOTATION_IPS = "vipcast.io/loadBalancerIPs"
ANNOTATION_SHARING = "vipcast.io/allow-shared-ip"


class Selector(Protocol):
    """Anything that says whether a label set is selected (``spec.LabelSelector`` is one)."""

    def matches(self, labels: Mapping[str, str]) -> bool: ...


@dataclass(frozen=True)
class MatchLabels:
    """The simplest :class:`Selector`: every given label must be present with that value."""

    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.labels)


@dataclass(frozen=True, order=True)
class IPRange:
    """An inclusive range of addresses of one family, as integers."""

    version: int
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> IPRange:
        """``192.0.2.0/28``, ``192.0.2.10-192.0.2.20`` or a single address."""
        if "-" in text:
            a, _, b = text.partition("-")
            first, last = ipaddress.ip_address(a.strip()), ipaddress.ip_address(b.strip())
            if first.version != last.version or int(last) < int(first):
                raise ValueError(f"{text!r} is not a valid range")
            return cls(first.version, int(first), int(last))
        net = ipaddress.ip_network(text.strip(), strict=False)
        return cls(net.version, int(net.network_address), int(net.broadcast_address))

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class PoolInput:
    """One address pool as the allocator sees it."""

    name: str
    ranges: tuple[IPRange, ...]
    auto_assign: bool = True
    #: skip x.x.x.0 and x.x.x.255 (IPv4 only), which some old clients mishandle
    avoid_buggy_ips: bool = False
    #: lower number = tried first; None or 0 = unset, after every pool with a priority (as
    #: MetalLB, where 0 is the unset value)
    priority: int | None = None
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[Selector, ...] = ()
    service_selectors: tuple[Selector, ...] = ()
    #: the pool has a ``serviceAllocation`` (even one that restricts nothing): such pools are
    #: tried before pools without one, as MetalLB tries its "pinned" pools first
    pinned: bool = False

    @cached_property
    def families(self) -> frozenset[int]:
        return frozenset(r.version for r in self.ranges)

    @property
    def rank_priority(self) -> int | None:
        """The priority that ranks the pool: None when unset or 0."""
        return self.priority or None

    @property
    def is_pinned(self) -> bool:
        """Tried in the first tier: it has a serviceAllocation, a priority or a restriction."""
        return bool(
            self.pinned or self.rank_priority is not None or self.namespaces
            or self.namespace_selectors or self.service_selectors
        )

    @cached_property
    def capacity(self) -> int:
        """Addresses the pool can hand out: ``avoidBuggyIPs`` leaves out .0 and .255."""
        return self.capacity_of(4) + self.capacity_of(6)

    def capacity_of(self, version: int) -> int:
        """Addresses of one family the pool can hand out."""
        total = 0
        for r in self.ranges:
            if r.version != version:
                continue
            total += r.size
            if self.avoid_buggy_ips and version == 4:
                total -= _multiples(r.first, r.last, 0) + _multiples(r.first, r.last, 255)
        return total


def _multiples(first: int, last: int, low: int) -> int:
    """How many values in [first, last] end in the byte ``low``."""
    return (last - low) // 256 - (first - 1 - low) // 256


@fast_init
@dataclass(frozen=True)
class ServiceInput:
    """The facts of one Service that decide its addresses.

    One per Service and run: :func:`~vipcast.fastinit.fast_init` gives it an ``__init__``
    that fills the instance dict in one go (as :class:`Assignment`'s).
    """

    namespace: str
    name: str
    type: str = "LoadBalancer"
    load_balancer_class: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    #: spec.loadBalancerIP or the IPs annotation, at most one per family
    requested_ips: tuple[str, ...] = ()
    #: why the request cannot be read (both spec.loadBalancerIP and the annotation set): the
    #: Service gets no new address and keeps what it holds
    request_problem: str | None = None
    #: the pool annotation
    requested_pool: str | None = None
    #: address families in preference order (4 and/or 6), as the API server settled them;
    #: empty (standalone files): IPv4, or IPv4 then IPv6 for the dual-stack policies
    ip_families: tuple[int, ...] = (4,)
    ip_family_policy: FamilyPolicy = "SingleStack"
    sharing_key: str | None = None
    #: (port, protocol) pairs
    ports: tuple[tuple[int, str], ...] = ()
    traffic_policy: TrafficPolicy = "Cluster"
    #: what Local-policy sharers must have in common (the pod selector, as sorted pairs)
    selector: tuple[tuple[str, str], ...] = ()

    @cached_property
    def key(self) -> str:
        """``namespace/name`` (computed once: a run looks it up several times per service)."""
        return f"{self.namespace}/{self.name}"


class Reason(StrEnum):
    """Why a service has the addresses it has (or none)."""

    KEPT = "Kept"
    ASSIGNED = "Assigned"
    REQUESTED = "Requested"
    MOVED = "Moved"
    PARTIAL = "PartiallyAssigned"
    NOT_LOAD_BALANCER = "NotLoadBalancer"
    CLASS_NOT_OURS = "ClassNotOurs"
    POOL_EXHAUSTED = "PoolExhausted"
    NO_POOL = "NoEligiblePool"
    POOL_UNKNOWN = "PoolUnknown"
    REQUEST_INVALID = "RequestInvalid"
    REQUESTED_TAKEN = "RequestedIPTaken"
    REQUESTED_OUTSIDE = "RequestedIPOutsidePools"
    REQUESTED_REFUSED = "RequestedIPRefused"
    DELETED = "Deleted"


#: reasons under which a service holds every address it wants
GRANTED = frozenset({Reason.KEPT, Reason.ASSIGNED, Reason.REQUESTED, Reason.MOVED})


@fast_init
@dataclass(frozen=True)
class Assignment:
    """The outcome for one service: its addresses (possibly none) and why.

    One per service and run: :func:`~vipcast.fastinit.fast_init` gives it an ``__init__``
    that fills the instance dict in one go (the one a frozen dataclass generates sets each
    field through ``object.__setattr__``, several times slower).
    """

    service: str
    ips: tuple[str, ...]
    pool: str | None
    reason: Reason
    message: str
    #: the addresses it held before this run (to show what moved)
    previous: tuple[str, ...] = ()
    #: addresses given up in this run, each with why (pool removed, family dropped, ...)
    invalidated: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason in GRANTED

    @property
    def moved(self) -> bool:
        return bool(self.previous) and set(self.previous) != set(self.ips)


@dataclass(frozen=True)
class AllocationResult:
    """Every service's outcome, plus the addresses released for services that are gone."""

    assignments: Mapping[str, Assignment]
    #: services that held addresses and no longer exist
    released: tuple[Assignment, ...] = ()
    #: per pool: (addresses in use, addresses in total), for status and metrics
    pool_usage: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def current(self) -> dict[str, tuple[str, ...]]:
        """The assignments in the shape ``allocate`` takes back as ``current``."""
        return {k: a.ips for k, a in self.assignments.items() if a.ips}

    def holders(self) -> dict[str, tuple[str, ...]]:
        """Each address and the services holding it."""
        out: dict[str, list[str]] = {}
        for key, a in self.assignments.items():
            for ip in a.ips:
                out.setdefault(ip, []).append(key)
        return {ip: tuple(sorted(keys)) for ip, keys in sorted(out.items())}
