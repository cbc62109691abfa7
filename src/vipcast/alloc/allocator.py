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

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice

from vipcast.alloc.model import (
    AllocationResult,
    Assignment,
    PoolInput,
    Reason,
    ServiceInput,
)
from vipcast.alloc.pools import (
    PoolIndex,
    ip_text,
    is_buggy,
    parse_address,
    pool_rank,
    rank_note,
    serves,
)
from vipcast.alloc.sharing import first_conflict

#: the rules named in reasons (docs/allocation.md has a section for each)
ONE_POOL = "rule: one pool per service"
FAMILIES = "rule: families from ipFamilies"
ONE_REQUEST = "rule: one way to request"
OUTSIDE = "outside every pool"

Addr = tuple[int, int]  # (version, value)
#: services that may share among themselves, ports permitting: key, policy, Local selector
_Group = tuple[str, str, tuple[tuple[str, str], ...]]
#: per family, per pool name: addresses a sharing service might share (see _Run.shareable)
_Shareable = dict[int, dict[str, list["Addr"]]]


def _group(service: ServiceInput) -> _Group:
    selector = service.selector if service.traffic_policy == "Local" else ()
    return (service.sharing_key or "", service.traffic_policy, selector)


def wanted_families(service: ServiceInput) -> tuple[int, ...]:
    """Families the service should get, in its preference order (rule: families from
    ipFamilies).

    ``ipFamilies`` as the API server settled it decides, as in MetalLB: PreferDualStack with one
    listed family is that family only (the cluster gave the Service one family). Two cases have
    no settled list to follow: an empty ``ipFamilies`` (standalone files, no API server) is
    IPv4, or IPv4 then IPv6 under a dual-stack policy; RequireDualStack with one listed family
    (which an API server never stores) wants both, the listed one first.
    """
    fams = tuple(dict.fromkeys(f for f in service.ip_families if f in (4, 6)))
    if service.ip_family_policy == "SingleStack":
        return fams[:1] or (4,)
    if not fams:
        return (4, 6)
    if len(fams) == 1 and service.ip_family_policy == "RequireDualStack":
        return (fams[0], 10 - fams[0])
    return fams


def family_name(version: int) -> str:
    return f"IPv{version}"


@dataclass(slots=True)
class _Work:
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


class _Run:
    def __init__(self, pools: Iterable[PoolInput]) -> None:
        self.index = PoolIndex(pools)
        self.holders: dict[Addr, list[ServiceInput]] = {}
        # shareable addresses per (sharing group, family), in taking order, and per group and
        # (port, protocol) the addresses where it is in use: finding a shareable address skips
        # busy ones with a set lookup instead of a full compatibility check
        self.shared: dict[tuple[_Group, int], list[Addr]] = {}
        self.port_users: dict[tuple[_Group, tuple[int, str]], set[Addr]] = {}
        self._share_cursor: dict[tuple[_Group, int, tuple[tuple[int, str], ...]], int] = {}
        self._candidates: dict[object, list[PoolInput]] = {}
        self._tiers: dict[object, list[tuple[object, list[PoolInput]]]] = {}
        self._notes: dict[tuple[object, ...], str] = {}
        # per (candidate list, families): pools before this index cannot give those families to
        # a service without a sharing key (they lack a family or are full; pools only fill up
        # during step 4, and give_back, which runs before it, clears these)
        self._open: dict[tuple[object, tuple[int, ...]], int] = {}

    def usage(self) -> dict[str, tuple[int, int]]:
        used: dict[str, set[Addr]] = {p.name: set() for p in self.index.ranked}
        for addr, holders in self.holders.items():
            if holders:
                for name in self.index.pools_of(*addr)[:1]:
                    used[name].add(addr)
        return {p.name: (len(used[p.name]), p.capacity) for p in self.index.ranked}

    # ------------------------------------------------------------ holding

    def hold(self, work: _Work, addr: Addr, pool: str, *, new: bool) -> None:
        service = work.service
        holders = self.holders.setdefault(addr, [])
        if service.sharing_key is not None:
            group = _group(service)
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

    # ------------------------------------------------------------ step 2: keep

    def keep(self, work: _Work) -> None:
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

    def join(self, work: _Work, addr: Addr) -> tuple[str | None, str]:
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

    @staticmethod
    def held_addrs(work: _Work) -> list[Addr]:
        return [(v, value) for v, (value, _pool) in work.held.items()]

    # ------------------------------------------------------------ step 3: requests

    def request(self, work: _Work) -> tuple[Reason, str] | None:
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

    # ------------------------------------------------------------ step 4: fresh addresses

    def candidates(
        self, service: ServiceInput, held_pool: str | None
    ) -> tuple[object, list[PoolInput]]:
        """(a key naming this candidate list within the run, the eligible pools by rank).

        A service that already holds an address may only add from that address's pool
        (rule: one pool per service).
        """
        cache_key = (
            service.namespace,
            tuple(sorted(service.labels.items())),
            tuple(sorted(service.namespace_labels.items())),
            service.requested_pool,
        )
        pools = self._candidates.get(cache_key)
        if pools is None:
            if service.requested_pool is not None:
                pool = self.index.by_name.get(service.requested_pool)
                pools = [pool] if pool is not None and serves(pool, service) else []
            else:
                pools = [p for p in self.index.ranked if p.auto_assign and serves(p, service)]
            self._candidates[cache_key] = pools
        if held_pool is not None:
            return (cache_key, held_pool), [p for p in pools if p.name == held_pool]
        return cache_key, pools

    def tiers(
        self, slot: object, pools: list[PoolInput]
    ) -> list[tuple[object, list[PoolInput]]]:
        """The candidates cut into MetalLB's two tiers (ranking puts pinned pools first)."""
        cut = self._tiers.get(slot)
        if cut is None:
            pinned = sum(1 for p in pools if p.is_pinned)
            cut = self._tiers[slot] = [
                (("pinned", slot), pools[:pinned]), (("general", slot), pools[pinned:])
            ]
        return cut

    def first_open(self, slot: object, pools: list[PoolInput], versions: tuple[int, ...]) -> int:
        """Index of the first pool of ``pools`` that may still give every one of ``versions``.

        Only for services without a sharing key: for them a pool lacking a family or known
        full for it is never a candidate again in this run, so the skipped prefix is remembered.
        """
        key = (slot, versions)
        start = self._open.get(key, 0)
        index = self.index
        while start < len(pools):
            pool = pools[start]
            if all(v in pool.families and not index.is_full(pool, v) for v in versions):
                break
            start += 1
        self._open[key] = start
        return start

    def shareable(self, work: _Work, version: int) -> dict[str, list[Addr]]:
        """Per pool name: the addresses of ``version`` held by the service's sharing group and
        not busy for its ports, in taking order (other holders' rules still to be checked)."""
        service = work.service
        group = _group(service)
        busy = [self.port_users.get((group, port), ()) for port in service.ports]
        shared = self.shared.get((group, version), [])
        # addresses at the front that are busy for these ports stay busy (holders are only
        # added, except in give_back, which resets the cursors): skip them for good
        cursor_key = (group, version, service.ports)
        start = self._share_cursor.get(cursor_key, 0)
        while start < len(shared) and any(shared[start] in b for b in busy):
            start += 1
        self._share_cursor[cursor_key] = start
        by_pool: dict[str, list[Addr]] = {}
        for addr in islice(shared, start, None):
            if any(addr in b for b in busy):
                continue
            for name in self.index.pools_of(*addr):
                by_pool.setdefault(name, []).append(addr)
        return by_pool

    def find(
        self, work: _Work, pool: PoolInput, version: int, shareable: _Shareable
    ) -> tuple[Addr, bool] | None:
        """An address ``work`` could take from ``pool``: (addr, is fresh), without taking it.

        ``shareable`` caches :meth:`shareable` per version for one ``fresh`` call.
        """
        service = work.service
        if service.sharing_key is not None:
            by_pool = shareable.get(version)
            if by_pool is None:
                by_pool = shareable[version] = self.shareable(work, version)
            for addr in by_pool.get(pool.name, ()):
                if (
                    self.pool_problem(service, pool, addr) is None
                    and self.conflict(service, addr) is None
                ):
                    return addr, False
        if version not in pool.families:
            return None
        value = self.index.peek_free(pool, version)
        return None if value is None else ((version, value), True)

    def hopeless(
        self, work: _Work, pool: PoolInput, versions: list[int], shareable: _Shareable
    ) -> bool:
        """``obtain(work, pool, versions, shareable)`` of a sharing service is sure to fail:
        the pool is known full for one of the families and holds no address of it to share."""
        for version in versions:
            if self.index.is_full(pool, version):
                by_pool = shareable.get(version)
                if by_pool is None:
                    by_pool = shareable[version] = self.shareable(work, version)
                if pool.name not in by_pool:
                    return True
        return False

    def obtain(
        self, work: _Work, pool: PoolInput, versions: list[int], shareable: _Shareable
    ) -> bool:
        """Take one address per version from ``pool`` — all of them or none."""
        if work.service.sharing_key is None and any(
            self.index.is_full(pool, v) for v in versions
        ):
            return False
        found = [self.find(work, pool, v, shareable) for v in versions]
        if any(f is None for f in found):
            return False
        for item in found:
            assert item is not None
            addr, fresh = item
            if fresh:
                self.holders[addr] = []
            self.hold(work, addr, pool.name, new=True)
        shareable.clear()  # what this service holds now changes what it may share
        return True

    def give_back(self, work: _Work, version: int) -> None:
        value, _pool = work.held.pop(version)
        work.new.discard(version)
        addr = (version, value)
        service = work.service
        holders = self.holders[addr]
        holders.remove(service)
        if service.sharing_key is not None:
            group = _group(service)
            for port in service.ports:
                self.port_users[(group, port)].discard(addr)
            self._share_cursor = {k: v for k, v in self._share_cursor.items() if k[0] != group}
            if not holders:
                self.shared[(group, version)].remove(addr)
        self._open.clear()
        if not holders:
            del self.holders[addr]
            self.index.release(version, value)

    def search(
        self,
        work: _Work,
        slot: object,
        pools: list[PoolInput],
        versions: tuple[int, ...],
        shareable: _Shareable,
    ) -> PoolInput | None:
        """Take one address per version from the first pool of ``pools`` that has them all;
        that pool, or None."""
        # without a sharing key, pools that cannot give the families are skipped for good
        exclusive = work.service.sharing_key is None
        start = self.first_open(slot, pools, versions) if exclusive else 0
        need = set(versions)
        for pool in islice(pools, start, None):
            if not need <= pool.families:
                continue
            if not exclusive and self.hopeless(work, pool, list(versions), shareable):
                continue
            if self.obtain(work, pool, list(versions), shareable):
                return pool
        return None

    def fresh(self, work: _Work) -> tuple[Reason, str] | None:
        """Fill the missing families; None when the service got what it needs.

        MetalLB's order: pools with a serviceAllocation first, then the others (two tiers, each
        by rank). Within a tier, the first pool that gives every missing family; failing that, a
        PreferDualStack service takes its first family (else its second) from the first pool
        that has it. All from one pool (rule: one pool per service).
        """
        service = work.service
        families = work.families
        missing = tuple(f for f in families if f not in work.held)
        if not missing:
            return None
        held_pool = next(iter(work.held.values()))[1] if work.held else None
        slot, pools = self.candidates(service, held_pool)
        if not pools:
            if held_pool is not None:
                wanted = " and ".join(family_name(f) for f in missing)
                if service.ip_family_policy == "RequireDualStack":
                    return Reason.NO_POOL, (
                        f"pool {held_pool} of its address cannot give {wanted} "
                        f"({ONE_POOL})"
                    )
                work.note = (f"no {wanted}: pool {held_pool} of its other address does not "
                             f"give it {wanted} ({ONE_POOL})")
                return None
            if service.requested_pool is not None:
                if service.requested_pool not in self.index.by_name:
                    return Reason.POOL_UNKNOWN, f"pool {service.requested_pool} does not exist"
                return Reason.NO_POOL, f"pool {service.requested_pool} does not serve this service"
            return Reason.NO_POOL, "no pool with autoAssign serves this service"
        attempts = [missing]
        if len(missing) > 1 and service.ip_family_policy != "RequireDualStack":
            attempts += [(f,) for f in missing]
        tiers = self.tiers(slot, pools)
        shareable: _Shareable = {}
        for tier_slot, tier in tiers:
            if not tier:
                continue
            for versions in attempts:
                pool = self.search(work, tier_slot, tier, versions, shareable)
                if pool is None:
                    continue
                work.note = self.choice_note(work, pool, versions, missing, held_pool)
                return None
        if work.held and service.ip_family_policy != "RequireDualStack":
            return None  # PreferDualStack holding one family: that is enough
        names = ", ".join(p.name for p in pools)
        wanted = " and ".join(family_name(f) for f in missing)
        if held_pool is not None:
            if not set(missing) <= pools[0].families:
                return Reason.NO_POOL, (
                    f"pool {held_pool} of its other address has no {wanted} ({ONE_POOL})"
                )
            return Reason.POOL_EXHAUSTED, (
                f"no free {wanted} address in pool {held_pool} of its other address ({ONE_POOL})"
            )
        if not any(set(missing) <= p.families for p in pools) and len(missing) > 1:
            return Reason.NO_POOL, f"no eligible pool ({names}) has both {wanted} ({ONE_POOL})"
        if not any(f in p.families for p in pools for f in missing):
            return Reason.NO_POOL, f"no eligible pool ({names}) has {wanted} addresses"
        return Reason.POOL_EXHAUSTED, f"no free {wanted} address in {names}"

    def choice_note(
        self,
        work: _Work,
        pool: PoolInput,
        versions: tuple[int, ...],
        missing: tuple[int, ...],
        held_pool: str | None,
    ) -> str:
        """Which rule chose ``pool`` for ``versions`` (for the reason); one text per case."""
        service = work.service
        one_family = (service.ip_family_policy == "PreferDualStack"
                      and len(set(service.ip_families) & {4, 6}) == 1)
        key = (pool.name, versions, missing, held_pool, one_family and work.families[0])
        note = self._notes.get(key)
        if note is None:
            note = self._notes[key] = _choice_note(
                pool, versions, missing, held_pool, work.families[0] if one_family else None
            )
        return note


def _choice_note(
    pool: PoolInput,
    versions: tuple[int, ...],
    missing: tuple[int, ...],
    held_pool: str | None,
    one_family: int | None,
) -> str:
    """The text of :meth:`_Run.choice_note`."""
    got = " and ".join(family_name(f) for f in versions)
    if held_pool is not None:
        return f"{got} added from pool {held_pool}, the pool of its other address ({ONE_POOL})"
    tier = "first tier: pools with a serviceAllocation" if pool.is_pinned else (
        "second tier: pools without a serviceAllocation"
    )
    note = f"{tier}, rank: {rank_note(pool)}"
    if len(versions) > 1:
        note += f"; {got} from one pool ({ONE_POOL})"
    elif len(missing) > 1:
        note += (f"; {got} only: no eligible pool of this tier has both "
                 f"{' and '.join(family_name(f) for f in missing)} free ({ONE_POOL})")
    if one_family is not None:
        note += (f"; PreferDualStack with ipFamilies [{family_name(one_family)}] "
                 f"gets that family only ({FAMILIES})")
    return note


def _is_ours(service: ServiceInput, load_balancer_class: str | None) -> tuple[Reason, str] | None:
    if service.type != "LoadBalancer":
        return Reason.NOT_LOAD_BALANCER, f"type is {service.type}"
    if service.load_balancer_class not in (None, load_balancer_class):
        return Reason.CLASS_NOT_OURS, (
            f"loadBalancerClass {service.load_balancer_class} is not "
            f"{load_balancer_class or 'unset'}"
        )
    return None


def _outcome(work: _Work, failure: tuple[Reason, str] | None) -> Assignment:
    service = work.service
    order = work.families
    versions = sorted(work.held, key=lambda v: order.index(v) if v in order else 9)
    ips = tuple(ip_text(v, work.held[v][0]) for v in versions)
    pool = work.held[versions[0]][1] if versions else None
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
    works: list[_Work] = []
    for key in sorted(by_key):
        service = by_key[key]
        previous = tuple(current.get(key, ()))
        if skip := _is_ours(service, load_balancer_class):
            lost = tuple((ip, skip[1]) for ip in previous)
            out[key] = Assignment(key, (), None, skip[0], skip[1], previous, lost)
        else:
            works.append(_Work(service, previous, wanted_families(service)))
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
