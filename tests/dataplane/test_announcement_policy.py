"""AnnouncementPolicy (pure parts, fakes for the kernel and the probes): which services a node
may announce, and which L2 VIPs it declares servable to the L2 runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vipcast.app.node import AnnouncementPolicy
from vipcast.core.desired import Backend, L2Ownership, NatRule, NodePlan
from vipcast.dataplane.nft import ApplyResult
from vipcast.dataplane.nft_render import Rendered
from vipcast.dataplane.node import NodeDataplane
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
)


class FakeTable:
    readback_every = 30.0

    def apply(self, rendered: Rendered, *, force: bool = False, check: bool = False) -> Any:
        return ApplyResult(ok=True, changed=False)

    def due_for_readback(self, now: float | None = None) -> bool:
        return False


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


def test_servable_services_and_l2_vips_follow_health_and_verification() -> None:
    async def scenario() -> None:
        health = FakeHealth(failing={("198.51.100.2", 8080)})
        gate = FakeGate(refuse={"192.0.2.64"})
        dataplane = NodeDataplane(FakeTable(), None, health)  # type: ignore[arg-type]
        policy = AnnouncementPolicy(dataplane, gate, health)  # type: ignore[arg-type]
        declared: list[frozenset[str]] = []
        policy.on_servable_vips(declared.append)
        await dataplane.apply(PLAN)

        # a: healthy but its VIP port not verified yet; b: no healthy backend
        policy.servable = await policy.check(wait=True)
        policy.publish_l2()
        assert policy.servable == frozenset()
        assert declared == [frozenset()]

        gate.refuse.clear()
        policy.servable = await policy.check(wait=True)
        policy.publish_l2()
        assert policy.servable == {"demo/a"}
        assert declared[-1] == {"192.0.2.64"}

        health.failing.clear()
        policy.servable = await policy.check(wait=True)
        policy.publish_l2()
        assert declared[-1] == {"192.0.2.64", "192.0.2.65"}
        probes = gate.probes
        policy.servable = await policy.check(wait=True)
        policy.publish_l2()
        assert gate.probes == probes  # verified once, not on every tick
        assert len(declared) == 3  # published only on change

        # a loses its backend: not servable, and verified again after it recovers
        health.failing.add(("198.51.100.1", 8080))
        policy.servable = await policy.check(wait=True)
        policy.publish_l2()
        assert declared[-1] == {"192.0.2.65"}
        assert not gate.is_verified(("192.0.2.64", 80, "TCP"))

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
        dataplane = NodeDataplane(FakeTable(), None, health)  # type: ignore[arg-type]
        policy = AnnouncementPolicy(dataplane, gate, health)  # type: ignore[arg-type]
        await dataplane.apply(PLAN)
        assert await policy.check() == frozenset()  # probes started, none finished
        await asyncio.sleep(0.05)
        assert await policy.check() == {"demo/a"}  # b's probe still hangs
        health.failing.add(("198.51.100.1", 8080))
        assert await policy.check() == frozenset()
        policy.cancel_probes()
        await asyncio.sleep(0)

    asyncio.run(scenario())
