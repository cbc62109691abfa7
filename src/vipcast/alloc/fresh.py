"""Step 4 of :func:`vipcast.alloc.allocator.allocate`: fresh addresses for the families a
service still lacks, from its best-ranked eligible pool (MetalLB's two tiers: pools with a
serviceAllocation first), shared within a sharing group where ports permit, all from one pool;
with the note saying which rule chose the pool. The per-run caches that make a run over many
services cheap live here too."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from vipcast.alloc.families import FAMILIES, family_name
from vipcast.alloc.holdings import ONE_POOL, Addr, Group, Holdings, Work, sharing_group
from vipcast.alloc.model import PoolInput, Reason, ServiceInput
from vipcast.alloc.pools import rank_note, serves

#: per family, per pool name: addresses a sharing service might share (see
#: :meth:`FreshSearch.shareable`)
Shareable = dict[int, dict[str, list[Addr]]]


class FreshSearch(Holdings):
    """The ledger with step 4's search over pools; a give-back also resets its caches."""

    def __init__(self, pools: Iterable[PoolInput]) -> None:
        super().__init__(pools)
        self._share_cursor: dict[tuple[Group, int, tuple[tuple[int, str], ...]], int] = {}
        self._candidates: dict[object, list[PoolInput]] = {}
        self._tiers: dict[object, list[tuple[object, list[PoolInput]]]] = {}
        self._notes: dict[tuple[object, ...], str] = {}
        # per (candidate list, families): pools before this index cannot give those families to
        # a service without a sharing key (they lack a family or are full; pools only fill up
        # during step 4, and give_back, which runs before it, clears these)
        self._open: dict[tuple[object, tuple[int, ...]], int] = {}

    def give_back(self, work: Work, version: int) -> None:
        super().give_back(work, version)
        if work.service.sharing_key is not None:
            group = sharing_group(work.service)
            self._share_cursor = {k: v for k, v in self._share_cursor.items() if k[0] != group}
        self._open.clear()

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

    def shareable(self, work: Work, version: int) -> dict[str, list[Addr]]:
        """Per pool name: the addresses of ``version`` held by the service's sharing group and
        not busy for its ports, in taking order (other holders' rules still to be checked)."""
        service = work.service
        group = sharing_group(service)
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
        self, work: Work, pool: PoolInput, version: int, shareable: Shareable
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
        self, work: Work, pool: PoolInput, versions: list[int], shareable: Shareable
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
        self, work: Work, pool: PoolInput, versions: list[int], shareable: Shareable
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

    def search(
        self,
        work: Work,
        slot: object,
        pools: list[PoolInput],
        versions: tuple[int, ...],
        shareable: Shareable,
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

    def fresh(self, work: Work) -> tuple[Reason, str] | None:
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
        shareable: Shareable = {}
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
        work: Work,
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
    """The text of :meth:`FreshSearch.choice_note`."""
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
