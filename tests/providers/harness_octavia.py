"""The Octavia driver under the contract suite, against the real Octavia API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from octavia_api import MISSING, PROJECT, SUBNET, OctaviaAPI

__all__ = ["MISSING"]

from vipcast.core.external import DesiredLB, HealthMonitor, Listener, Member
from vipcast.providers.octavia.driver import OctaviaDriver
from vipcast.providers.port import Outcome, Retry

MONITOR = HealthMonitor("TCP", None, None, 5.0, 3.0, 2, 3)
AVAILABLE = MISSING is None
#: the session's API server (conftest.py starts it on first use)
SERVER: list[OctaviaAPI] = []


#: what Octavia's 500 says when SQLite refused its transaction (see _SqliteLockRetry)
SQLITE_LOCKED = ("database is locked", "sqlite3.OperationalError")


def _locked(outcome: Outcome) -> bool:
    return isinstance(outcome, Retry) and any(s in outcome.message for s in SQLITE_LOCKED)


class _SqliteLockRetry(OctaviaDriver):
    """The driver, with ensure/delete issued again (at most twice) when Octavia answered 500
    because SQLite refused its write: the test server shares one sqlite file with this suite's
    settler thread (the stand-in for Octavia's controller worker, octavia_api.py), and SQLite
    answers a transaction that read and then wants to write while another connection writes
    with SQLITE_BUSY at once (deadlock avoidance, no busy wait), which Octavia reports as a 500.
    That is the stand-in's database, not the product's (MySQL/PostgreSQL in deployments); any
    other outcome, and a third refusal, is returned as is (seen once in CI under load)."""

    async def ensure(self, desired: DesiredLB) -> Outcome:
        return await self._again(lambda: super(_SqliteLockRetry, self).ensure(desired))

    async def delete(self, name: str) -> Outcome:
        return await self._again(lambda: super(_SqliteLockRetry, self).delete(name))

    @staticmethod
    async def _again(call: Callable[[], Awaitable[Outcome]]) -> Outcome:
        outcome = await call()
        for _ in range(2):
            if not _locked(outcome):
                break
            outcome = await call()
        return outcome


class OctaviaHarness:
    def __init__(self, api: OctaviaAPI) -> None:
        self.api = api
        self.driver = _SqliteLockRetry(api.url, project_id=PROJECT, vip_subnet_id=SUBNET,
                                       wait_timeout=20.0)

    def desired(self, name: str, members: Sequence[Member], ports: Sequence[int] = (80,),
                vip_octet: int = 10) -> DesiredLB:
        listeners = tuple(
            Listener("TCP", p, tuple(sorted(members)), MONITOR, ("192.0.2.0/24",), "none",
                     "ROUND_ROBIN", f"default/{name}") for p in ports)
        return DesiredLB(name, (f"default/{name}",), f"198.51.100.{vip_octet}", listeners)

    async def drift(self, lb: DesiredLB) -> None:
        """Behind vipcast's back: a listener (and its pool) deleted in Octavia."""
        found = await self.driver._find(lb.name)
        listeners = list(self.driver.lb.listeners(load_balancer_id=found.id))
        await self.driver._delete_listener(found.id, listeners[0])

    async def leftovers(self) -> set[str]:
        self.api.settle()
        return {str(r[0]) for r in self.api.rows(
            "SELECT name FROM load_balancer WHERE provisioning_status != 'DELETED' "
            "AND name LIKE '%'")}

    async def close(self) -> None:
        await empty(self.api, self.driver)
        await self.driver.close()


async def empty(api: OctaviaAPI, driver: OctaviaDriver, deadline: float = 60.0) -> None:
    """Delete every load balancer ``driver`` lists and wait until the server's database holds
    none that is not DELETED, so that the next test on this session's server starts from an
    empty project. One pass is not enough: two deletes in a row meet the settler writing the
    first one's PENDING_DELETE, and SQLite refuses the second at once (the 500 of
    _SqliteLockRetry) -- a fire-and-forget clean-up left that load balancer to the next test
    (CI: "two" of the quota test in test_providers_sync_names_...'s ``live() == {}``). So the
    passes repeat until nothing is live; what still is after ``deadline`` s fails the fixture,
    named with the last answers."""
    api.paused = False
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    answers: dict[str, object] = {}
    while True:
        names = await driver.names()
        if isinstance(names, tuple):
            answers = {name: await driver.delete(name) for name in names}
        else:
            answers = {"(listing)": names}
        api.settle()
        left = sorted(str(r[0]) for r in api.rows(
            "SELECT name FROM load_balancer WHERE provisioning_status != 'DELETED'"))
        if not left:
            return
        if loop.time() > end:
            raise AssertionError(f"Octavia at {api.url} still holds {left} after {deadline:.0f} s "
                                 f"of deletes; last answers: {answers}")
        await asyncio.sleep(0.2)


async def make(tmp: Path) -> AsyncIterator[OctaviaHarness]:
    harness = OctaviaHarness(SERVER[0])
    try:
        yield harness
    finally:
        await harness.close()
