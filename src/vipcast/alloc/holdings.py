"""One allocation run's ledger: which service holds which address from which pool, and whether
a service may hold an address at all (pool membership, serviceAllocation, avoidBuggyIPs, one
pool per service, sharing). Steps 2-4 of :func:`vipcast.alloc.allocator.allocate` all take and
give back addresses through it."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from vipcast.alloc.model import PoolInput, ServiceInput
from vipcast.alloc.pools import PoolIndex, ip_text, is_buggy, pool_rank, serves
from vipcast.alloc.sharing import first_conflict

#: the rules named in reasons (docs/allocation.md has a section for each)
ONE_POOL = "rule: one pool per service"
OUTSIDE = "outside every pool"

Addr = tuple[int, int]  # (version, value)
#: services that may share among themselves, ports permitting: key, policy, Local selector
Group = tuple[str, str, tuple[tuple[str, str], ...]]


def sharing_group(service: ServiceInput) -> Group:
    selector = service.selector if service.traffic_policy == "Local" else ()
    return (service.sharing_key or "", service.traffic_policy, selector)


@dataclass(slots=True)
class Work:
    """Mutable bookkeeping of one service during a run."""

    service: ServiceInput
    previous: tuple[str, ...]
    #: wanted_families(service), computed once
    families: tuple[int, ...]
    held: dict[int, tuple[int, str]] = field(default_factory=dict)  # version -> (value, pool)
    new: set[int] = field(default_factory=set)  # versions obtained in this run
    invalidated: list[tuple[str, str]] = field(default_factory=list)
    #: which rule chose the fresh addresses (for the reason)
    note: str = ""


class Holdings:
    """Who holds what in one run; the pool index knows what is free."""

    def __init__(self, pools: Iterable[PoolInput]) -> None:
        self.index = PoolIndex(pools)
        self.holders: dict[Addr, list[ServiceInput]] = {}
        # shareable addresses per (sharing group, family), in taking order, and per group and
        # (port, protocol) the addresses where it is in use: finding a shareable address skips
        # busy ones with a set lookup instead of a full compatibility check
        self.shared: dict[tuple[Group, int], list[Addr]] = {}
        self.port_users: dict[tuple[Group, tuple[int, str]], set[Addr]] = {}

    def usage(self) -> dict[str, tuple[int, int]]:
        used: dict[str, set[Addr]] = {p.name: set() for p in self.index.ranked}
        for addr, holders in self.holders.items():
            if holders:
                for name in self.index.pools_of(*addr)[:1]:
                    used[name].add(addr)
        return {p.name: (len(used[p.name]), p.capacity) for p in self.index.ranked}

    # ------------------------------------------------------------ holding

    def hold(self, work: Work, addr: Addr, pool: str, *, new: bool) -> None:
        service = work.service
        holders = self.holders.setdefault(addr, [])
        if service.sharing_key is not None:
            group = sharing_group(service)
            if not holders:
                self.shared.setdefault((group, addr[0]), []).append(addr)
            for port in service.ports:
                self.port_users.setdefault((group, port), set()).add(addr)
        if not holders:
            self.index.take(*addr)
        holders.append(service)
        work.held[addr[0]] = (addr[1], pool)
        if new:
            work.new.add(addr[0])

    def pool_problem(
        self, service: ServiceInput, pool: PoolInput, addr: Addr, *, keeping: bool = False
    ) -> str | None:
        """Why ``service`` may not hold ``addr`` from ``pool``, ignoring other holders.

        ``keeping``: the service already holds ``addr``. A pool's ``serviceAllocation``
        (namespaces, namespace and service selectors) decides where *new* addresses come from;
        it does not take a held address away, so a relabelled Namespace or Service never moves
        a VIP (IPs never reshuffle). A pool that stops containing the address, a changed pool
        annotation or a requested IP still do.
        """
        if service.requested_pool is not None and pool.name != service.requested_pool:
            return f"not in the requested pool {service.requested_pool}"
        if not keeping and not serves(pool, service):
            return f"pool {pool.name} does not serve this service (serviceAllocation)"
        if pool.avoid_buggy_ips and is_buggy(*addr):
            return f"pool {pool.name} avoids .0 and .255 addresses"
        return None

    def placement(
        self, service: ServiceInput, addrs: list[Addr], *, held: Collection[Addr] = ()
    ) -> tuple[str | None, str]:
        """(pool, '') where ``service`` may hold all of ``addrs``, or (None, why not).

        All of them from one pool (rule: one pool per service), the best-ranked pool that
        contains every address and lets the service hold each; for the addresses in ``held``
        (already the service's) serviceAllocation is not checked again.
        """
        names: list[str] | None = None
        for addr in addrs:
            found = self.index.pools_of(*addr)
            if not found:
                return None, OUTSIDE if len(addrs) == 1 else f"{ip_text(*addr)} is {OUTSIDE}"
            names = found if names is None else [n for n in names if n in found]
        if not names:
            texts = " and ".join(ip_text(*a) for a in addrs)
            return None, f"no single pool holds {texts} ({ONE_POOL})"
        why = ""
        for pool in sorted((self.index.by_name[n] for n in names), key=pool_rank):
            problem = next(
                (
                    p for a in addrs
                    if (p := self.pool_problem(service, pool, a, keeping=a in held))
                ),
                None,
            )
            if problem is None:
                return pool.name, ""
            why = why or problem
        return None, why

    def conflict(self, service: ServiceInput, addr: Addr) -> str | None:
        return first_conflict(service, self.holders.get(addr, ()))

    def give_back(self, work: Work, version: int) -> None:
        value, _pool = work.held.pop(version)
        work.new.discard(version)
        addr = (version, value)
        service = work.service
        holders = self.holders[addr]
        holders.remove(service)
        if service.sharing_key is not None:
            group = sharing_group(service)
            for port in service.ports:
                self.port_users[(group, port)].discard(addr)
            if not holders:
                self.shared[(group, version)].remove(addr)
        if not holders:
            del self.holders[addr]
            self.index.release(version, value)

    @staticmethod
    def held_addrs(work: Work) -> list[Addr]:
        return [(v, value) for v, (value, _pool) in work.held.items()]
