"""AnnouncementPolicy (fakes for the health checker and the probes): which services a node
may announce, reported to the planner as observations (values)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vipcast.app.node import AnnouncementPolicy
from vipcast.core.desired import Backend, HealthTarget, L2Ownership, NatRule, NodePlan
from vipcast.core.pipeline import Local
from vipcast.runtime.probe import AnnouncementGate, ProbeResult

A = NatRule("demo/a", "192.0.2.64", 80, "TCP", (Backend("198.51.100.1", 8080, "n1", True),))
B = NatRule("demo/b", "192.0.2.65", 80, "TCP", (Backend("198.51.100.2", 8080, "n1", True),))
PLAN = NodePlan(
    node="n1",
    nat=(A, B),
    l2=(
        L2Ownership("192.0.2.64", (), "n1", ("n1", "n2"), ("demo/a",)),
        L2Ownership("192.0.2.65", (), "n2", ("n2", "n1"), ("demo/b",)),
    ),
    health=(
        HealthTarget("198.51.100.1", 8080, ("demo/a",)),
        HealthTarget("198.51.100.2", 8080, ("demo/b",)),
    ),
)


@dataclass
class FakeHealth:
    failing: set[tuple[str, int]] = field(default_factory=set)

    def configure(self, configs: Mapping[str, Any]) -> None:
        pass

    def track(self, targets: Mapping[tuple[str, int], tuple[str, ...]]) -> None:
        pass

    def down(self) -> frozenset[tuple[str, int]]:
        return frozenset(self.failing)

    def on_change(self, listener: Callable[[], None]) -> None:
        pass


@dataclass
class FakeGate(AnnouncementGate):
    refuse: set[str] = field(default_factory=set)
    probes: int = 0

    async def verify(self, vip: str, port: int, protocol: str = "TCP") -> ProbeResult:
        self.probes += 1
        if vip in self.refuse:
            return ProbeResult(False, 0.0, "refused")
        self._verified.add((vip, port, protocol))
        return ProbeResult(True, 0.0)


def test_servable_services_follow_health_and_verification() -> None:
    async def scenario() -> None:
        health = FakeHealth(failing={("198.51.100.2", 8080)})
        gate = FakeGate(refuse={"192.0.2.64"})
        policy = AnnouncementPolicy(gate, health)  # type: ignore[arg-type]
        await policy.apply(PLAN)

        # a: healthy but its VIP port not verified yet; b: no healthy backend
        assert await policy.check(wait=True) == frozenset()
        assert policy.observed().down == {("198.51.100.2", 8080)}

        gate.refuse.clear()
        assert await policy.check(wait=True) == {"demo/a"}

        health.failing.clear()
        assert await policy.check(wait=True) == {"demo/a", "demo/b"}
        probes = gate.probes
        assert await policy.check(wait=True) == {"demo/a", "demo/b"}
        assert gate.probes == probes  # verified once, not on every check

        # a loses its backend: not servable, and verified again after it recovers
        health.failing.add(("198.51.100.1", 8080))
        assert await policy.check(wait=True) == {"demo/b"}
        assert not gate.is_verified(("192.0.2.64", 80, "TCP"))

    asyncio.run(scenario())


def test_changes_are_reported_as_observations_only_when_they_change() -> None:
    """The policy reports to the planner (values), never to a consumer; a flip is reported
    at once (woken by the checker), not at the next interval."""

    async def scenario() -> None:
        health = FakeHealth()
        listeners: list[Callable[[], None]] = []
        health.on_change = listeners.append  # type: ignore[method-assign]
        gate = FakeGate()
        policy = AnnouncementPolicy(gate, health, interval=3600)  # type: ignore[arg-type]
        seen: list[Local] = []

        async def on_local(local: Local) -> None:
            seen.append(local)

        policy.report_to(on_local)
        await policy.apply(PLAN)
        runner = asyncio.create_task(policy.run())
        try:
            async with asyncio.timeout(10):
                while not seen or seen[-1].servable != {"demo/a", "demo/b"}:
                    await asyncio.sleep(0.01)
            count = len(seen)
            health.failing.add(("198.51.100.1", 8080))
            for listener in listeners:
                listener()
            async with asyncio.timeout(10):
                while len(seen) == count:
                    await asyncio.sleep(0.01)
            assert seen[-1] == Local(servable=frozenset({"demo/b"}),
                                     down=frozenset({("198.51.100.1", 8080)}))
            await asyncio.sleep(0.05)
            assert len(seen) == count + 1  # nothing new to say
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    asyncio.run(scenario())


def test_a_slow_probe_delays_no_other_service() -> None:
    """Verification runs in the background: while one VIP port's probe hangs, another service
    still loses (and regains) servability on the next check."""

    @dataclass
    class SlowGate(FakeGate):
        async def verify(self, vip: str, port: int, protocol: str = "TCP") -> ProbeResult:
            if vip == "192.0.2.65":
                await asyncio.sleep(30)
            return await super().verify(vip, port, protocol)

    async def scenario() -> None:
        health = FakeHealth()
        gate = SlowGate()
        policy = AnnouncementPolicy(gate, health)  # type: ignore[arg-type]
        await policy.apply(PLAN)
        assert await policy.check() == frozenset()  # probes started, none finished
        await asyncio.sleep(0.05)
        assert await policy.check() == {"demo/a"}  # b's probe still hangs
        health.failing.add(("198.51.100.1", 8080))
        assert await policy.check() == frozenset()
        policy.cancel_probes()
        await asyncio.sleep(0)

    asyncio.run(scenario())
