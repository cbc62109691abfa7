"""Allocator invariants under random sequences of service changes (hypothesis state machine)."""

from __future__ import annotations

import ipaddress
from itertools import combinations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vipcast.alloc import (
    IPRange,
    PoolInput,
    ServiceInput,
    allocate,
    share_conflict,
)
from vipcast.alloc.model import FamilyPolicy

POOLS = (
    PoolInput("small", (IPRange.parse("192.0.2.254-192.0.3.2"),), avoid_buggy_ips=True),
    PoolInput(
        "dual",
        (IPRange.parse("198.51.100.0/30"), IPRange.parse("2001:db8::/64")),
        priority=1,
    ),
    PoolInput("manual", (IPRange.parse("203.0.113.0/30"),), auto_assign=False),
)
#: config variants a run may switch between: shrunk, pool removed, flags and ranks changed
CONFIGS = (
    POOLS,
    (
        PoolInput("small", (IPRange.parse("192.0.3.0-192.0.3.2"),), avoid_buggy_ips=True),
        PoolInput(
            "dual",
            (IPRange.parse("198.51.100.0/31"), IPRange.parse("2001:db8::/126")),
            priority=1,
        ),
        POOLS[2],
    ),
    POOLS[:2],
    (
        PoolInput("small", POOLS[0].ranges),
        PoolInput("dual", POOLS[1].ranges),
        PoolInput("manual", POOLS[2].ranges, priority=0),
    ),
    # an IPv6-only pool beside them: dual-stack fallbacks must still keep to one pool
    (*POOLS, PoolInput("v6", (IPRange.parse("2001:db8:1::/127"),), pinned=True)),
)
NAMES = st.sampled_from([f"s{i}" for i in range(12)])
PORTS = st.lists(
    st.tuples(st.sampled_from([53, 80, 443]), st.sampled_from(["TCP", "UDP"])),
    max_size=2,
    unique=True,
).map(tuple)


@st.composite
def services(draw: st.DrawFn, name: str) -> ServiceInput:
    policies: list[FamilyPolicy] = ["SingleStack", "PreferDualStack", "RequireDualStack"]
    policy = draw(st.sampled_from(policies))
    families = draw(st.sampled_from([(4,), (6,), (4, 6), (6, 4)]))
    return ServiceInput(
        "ns",
        name,
        ip_families=families,
        ip_family_policy=policy,
        sharing_key=draw(st.sampled_from([None, "k", "j"])),
        ports=draw(PORTS),
        traffic_policy=draw(st.sampled_from(["Cluster", "Local"])),
        selector=draw(st.sampled_from([(), (("app", "a"),)])),
        requested_pool=draw(st.sampled_from([None, None, None, "manual", "dual"])),
    )


def all_addresses() -> list[str]:
    out: list[str] = []
    for p in CONFIGS[-1]:
        for r in p.ranges:
            for v in range(r.first, min(r.last, r.first + 6) + 1):
                out.append(str(ipaddress.ip_address(v)))
    return out


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.services: dict[str, ServiceInput] = {}
        self.pools: tuple[PoolInput, ...] = POOLS
        self.result = allocate(POOLS, [], {})
        self.stable = True  # the last step only added or removed other services

    def run(self, changed: str | None) -> None:
        before = self.result
        self.result = allocate(self.pools, self.services.values(), before.current())
        if self.stable:
            for key, a in before.assignments.items():
                if key != changed and key in self.result.assignments and a.ips:
                    # kept, never moved (a PreferDualStack service may gain its other family)
                    now = self.result.assignments[key].ips
                    assert set(a.ips) <= set(now), (key, a, changed)

    @rule(name=NAMES, data=st.data())
    def add(self, name: str, data: st.DataObject) -> None:
        key = f"ns/{name}"
        self.stable = key not in self.services
        self.services[key] = data.draw(services(name))
        self.run(key)

    @precondition(lambda self: bool(self.services))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.services)))
        del self.services[key]
        self.stable = True
        self.run(key)

    @rule(name=NAMES, ip=st.sampled_from(all_addresses()), shared=st.booleans())
    def request(self, name: str, ip: str, shared: bool) -> None:
        key = f"ns/{name}"
        held = self.result.holders()
        version = ipaddress.ip_address(ip).version
        service = ServiceInput(
            "ns",
            name,
            requested_ips=(ip,),
            ip_families=(version,),
            sharing_key="k" if shared else None,
            ports=((1000 + len(self.services), "TCP"),),
        )
        self.stable = key not in self.services
        free = ip not in held or held[ip] == (key,)
        self.services[key] = service
        self.run(key)
        if free and self.usable(service, ip):
            got = self.result.assignments[key]
            assert got.ips == (ip,), got

    def usable(self, service: ServiceInput, ip: str) -> bool:
        """``ip`` lies in a pool of the current config that lets ``service`` hold it."""
        addr = ipaddress.ip_address(ip)
        buggy = addr.version == 4 and int(addr) & 0xFF in (0, 0xFF)
        return any(
            r.version == addr.version and r.first <= int(addr) <= r.last
            and (service.requested_pool in (None, p.name))
            and not (p.avoid_buggy_ips and buggy)
            for p in self.pools
            for r in p.ranges
        )

    @rule(config=st.sampled_from(CONFIGS))
    def reconfigure(self, config: tuple[PoolInput, ...]) -> None:
        """A pool edit moves exactly the addresses it makes invalid, and nothing else."""
        before = self.result
        self.pools = config
        self.result = allocate(self.pools, self.services.values(), before.current())
        for key, a in before.assignments.items():
            after = self.result.assignments[key]
            for ip in a.ips:
                assert (ip in after.ips) == self.usable(self.services[key], ip), (key, ip)

    @rule()
    def restart(self) -> None:
        """Rebuilding from the assignments alone (as from Service status) changes nothing."""
        again = allocate(self.pools, self.services.values(), self.result.current())
        assert again.current() == self.result.current()

    @invariant()
    def no_forbidden_sharing(self) -> None:
        for ip, keys in self.result.holders().items():
            for a, b in combinations(keys, 2):
                assert share_conflict(self.services[a], self.services[b]) is None, (ip, a, b)

    @invariant()
    def fixed_point(self) -> None:
        again = allocate(self.pools, self.services.values(), self.result.current())
        assert again.current() == self.result.current()
        assert all(a.reason.value == "Kept" for a in again.assignments.values() if a.ok)

    @invariant()
    def addresses_fit(self) -> None:
        for key, a in self.result.assignments.items():
            versions = [ipaddress.ip_address(ip).version for ip in a.ips]
            assert len(set(versions)) == len(versions)
            service = self.services[key]
            if service.ip_family_policy == "RequireDualStack" and a.ok:
                assert sorted(versions) == [4, 6]
            for ip in a.ips:
                assert self.usable(service, ip), (key, ip)

    @invariant()
    def one_pool_per_service(self) -> None:
        """Every address of a service lies in the one pool its assignment names."""
        by_name = {p.name: p for p in self.pools}
        for key, a in self.result.assignments.items():
            if not a.ips:
                continue
            assert a.pool in by_name, (key, a)
            ranges = by_name[a.pool].ranges
            for ip in a.ips:
                addr = ipaddress.ip_address(ip)
                assert any(
                    r.version == addr.version and r.first <= int(addr) <= r.last for r in ranges
                ), (key, ip, a.pool)


TestAllocator = AllocatorMachine.TestCase
TestAllocator.settings = settings(stateful_step_count=25, deadline=None)
