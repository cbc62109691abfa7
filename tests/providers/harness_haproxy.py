"""The HAProxy driver under the contract suite: a real HAProxy 2.6 on 127.0.0.x VIPs."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from vipcast.core.external import DesiredLB, HealthMonitor, Listener, Member
from vipcast.providers.haproxy import runtime
from vipcast.providers.haproxy.config import backend_name, server_name
from vipcast.providers.haproxy.driver import HAProxyDriver

MONITOR = HealthMonitor("TCP", None, None, 1.0, 1.0, 1, 2)


class HAProxyHarness:
    def __init__(self, tmp: Path) -> None:
        self.driver = HAProxyDriver(tmp / "haproxy", drain_timeout=1.0)

    def desired(self, name: str, members: Sequence[Member], ports: Sequence[int] = (80,),
                vip_octet: int = 10) -> DesiredLB:
        listeners = tuple(
            Listener("TCP", 20000 + p, tuple(sorted(members)), MONITOR, ("127.0.0.0/8",),
                     "none", "ROUND_ROBIN", f"default/{name}") for p in ports)
        return DesiredLB(name, (f"default/{name}",), f"127.0.0.{vip_octet}", listeners)

    async def drift(self, lb: DesiredLB) -> None:
        """Behind vipcast's back: one member deleted, another's weight changed."""
        listener = lb.listeners[0]
        backend = backend_name(lb, listener)
        first, second = listener.members[0], listener.members[1]
        admin = self.driver.admin
        await runtime.command(admin, f"set server {backend}/{server_name(first)} state maint")
        answer = await runtime.command(admin, f"del server {backend}/{server_name(first)}")
        assert answer.startswith("Server deleted"), answer
        await runtime.command(admin, f"set weight {backend}/{server_name(second)} 7")

    async def leftovers(self) -> set[str]:
        return await self.driver.proxies() if await self.driver.running() else set()

    async def close(self) -> None:
        await self.driver.stop()


async def make(tmp: Path) -> AsyncIterator[HAProxyHarness]:
    harness = HAProxyHarness(tmp)
    try:
        yield harness
    finally:
        await harness.close()


AVAILABLE = shutil.which("haproxy") is not None
