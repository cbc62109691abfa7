"""The AS3 driver under the contract suite, against the schema-validating AS3 stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from as3_server import AS3Service

from vipcast.core.external import DesiredLB, HealthMonitor, Listener, Member
from vipcast.providers.as3.driver import AS3Driver

MONITOR = HealthMonitor("TCP", None, None, 5.0, 3.0, 2, 3)


class AS3Harness:
    def __init__(self, service: AS3Service) -> None:
        self.service = service
        self.driver = AS3Driver(service.url, "vipcast_lab", password="secret",
                                poll_interval=0.01)

    def desired(self, name: str, members: Sequence[Member], ports: Sequence[int] = (80,),
                vip_octet: int = 10) -> DesiredLB:
        listeners = tuple(
            Listener("TCP", p, tuple(sorted(members)), MONITOR, ("192.0.2.0/24",), "none",
                     "ROUND_ROBIN",
                     f"default/{name}") for p in ports)
        return DesiredLB(name, (f"default/{name}",), f"198.51.100.{vip_octet}", listeners)

    async def drift(self, lb: DesiredLB) -> None:
        """Behind vipcast's back: someone removes one pool member on the BIG-IP."""
        app = self.service.tenants["vipcast_lab"][lb.name]
        pool = app[f"pool-{lb.listeners[0].name}"]
        pool["members"] = pool["members"][1:]
        del lb

    async def leftovers(self) -> set[str]:
        return {f"{t}/{a}" for t, apps in self.service.tenants.items()
                for a, obj in apps.items() if isinstance(obj, dict)}

    async def close(self) -> None:
        await self.driver.close()
        assert not self.service.invalid, self.service.invalid
        await self.service.stop()


async def make(tmp: Path) -> AsyncIterator[AS3Harness]:
    service = AS3Service()
    await service.start()
    harness = AS3Harness(service)
    try:
        yield harness
    finally:
        await harness.close()


AVAILABLE = True
