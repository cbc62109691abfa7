"""Octavia lifecycle on the REAL Octavia API server: ERROR at create (re-created, VIP kept),
409 while PENDING (waited out), a vipcast restart mid-create (adopted, never two LBs), the
Service deleted while its LB is PENDING, a refused request named."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from harness_octavia import MONITOR, empty
from octavia_api import PROJECT, SUBNET, OctaviaAPI

from vipcast.core.external import DesiredLB, Listener, Member
from vipcast.providers.octavia.driver import OctaviaDriver
from vipcast.providers.port import Applied, Failure, Retry

pytestmark = pytest.mark.usefixtures("octavia_api")


def desired(name: str, vip: str | None, *ports: int) -> DesiredLB:
    members = (Member("10.0.0.1", 30080, "n1"), Member("10.0.0.2", 30080, "n2"))
    listeners = tuple(Listener("TCP", p, members, MONITOR, (), "none", "ROUND_ROBIN",
                               f"default/{name}") for p in ports or (80,))
    return DesiredLB(name, (f"default/{name}",), vip, listeners)


def driver(api: OctaviaAPI, wait: float = 20.0) -> OctaviaDriver:
    return OctaviaDriver(api.url, project_id=PROJECT, vip_subnet_id=SUBNET, wait_timeout=wait)


def live(api: OctaviaAPI, name: str) -> list[tuple[object, ...]]:
    return api.rows("SELECT id, provisioning_status, ip_address FROM load_balancer "
                    "JOIN vip ON vip.load_balancer_id = load_balancer.id "
                    "WHERE name = ? AND provisioning_status != 'DELETED'", name)


def later(seconds: float, fn: object) -> threading.Timer:
    timer = threading.Timer(seconds, fn)  # type: ignore[arg-type]
    timer.start()
    return timer


def unpause_after_conflict(api: OctaviaAPI, drv: OctaviaDriver, bound: float = 60.0) -> None:
    end = time.monotonic() + bound
    while drv.conflicts == 0 and time.monotonic() < end:
        time.sleep(0.02)
    api.paused = False


async def cleanup(api: OctaviaAPI, drv: OctaviaDriver) -> None:
    try:
        await empty(api, drv)
    finally:
        await drv.close()


def test_error_at_create_is_deleted_and_recreated_keeping_the_vip(octavia_api: OctaviaAPI
                                                                    ) -> None:
    async def main() -> None:
        drv = driver(octavia_api)
        octavia_api.error_at_create["err"] = 1
        try:
            outcome = await drv.ensure(desired("err", None))
            assert isinstance(outcome, Applied), outcome
            assert drv.creates == 2
            (row,) = live(octavia_api, "err")
            gone = octavia_api.rows("SELECT ip_address FROM load_balancer JOIN vip ON "
                                    "vip.load_balancer_id = load_balancer.id WHERE name='err' "
                                    "AND provisioning_status = 'DELETED'")
            assert [g[0] for g in gone] == [row[2]] == [outcome.vip]
        finally:
            await cleanup(octavia_api, drv)
    asyncio.run(main())


def test_409_while_pending_is_waited_out(octavia_api: OctaviaAPI) -> None:
    async def main() -> None:
        drv = driver(octavia_api)
        try:
            assert isinstance(await drv.ensure(desired("busy", "198.51.100.20")), Applied)
            octavia_api.paused = True
            # someone else's write leaves the LB PENDING_UPDATE (immutable)
            lb = await drv._find("busy")
            drv.lb.update_load_balancer(lb.id, description="touched")
            # the provider finishes only once the driver met the 409 (on a loaded machine a
            # fixed delay could end before the driver's first write)
            timer = later(0.0, lambda: unpause_after_conflict(octavia_api, drv))
            outcome = await drv.ensure(desired("busy", "198.51.100.20", 80, 443))
            timer.join()
            assert isinstance(outcome, Applied), outcome
            assert drv.conflicts >= 1
            got = await drv.get("busy")
            assert got == desired("busy", "198.51.100.20", 80, 443)
        finally:
            await cleanup(octavia_api, drv)
    asyncio.run(main())


def test_restart_mid_create_adopts_and_never_creates_twice(octavia_api: OctaviaAPI) -> None:
    async def main() -> None:
        octavia_api.paused = True
        first = driver(octavia_api, wait=0.5)
        second = driver(octavia_api, wait=0.5)
        try:
            outcome = await first.ensure(desired("restart", "198.51.100.21"))
            assert isinstance(outcome, Retry) and outcome.failure == Failure.NOT_READY
            assert "still PENDING_CREATE" in outcome.message
            await first.close()  # vipcast dies here; a new process starts
            again = await second.ensure(desired("restart", "198.51.100.21"))
            assert isinstance(again, Retry), again
            octavia_api.paused = False
            second.wait_timeout = 20.0
            done = await second.ensure(desired("restart", "198.51.100.21"))
            assert isinstance(done, Applied), done
            assert first.creates + second.creates == 1
            assert len(live(octavia_api, "restart")) == 1
        finally:
            await cleanup(octavia_api, second)
    asyncio.run(main())


def test_service_deleted_while_its_lb_is_pending(octavia_api: OctaviaAPI) -> None:
    async def main() -> None:
        octavia_api.paused = True
        drv = driver(octavia_api, wait=0.5)
        try:
            outcome = await drv.ensure(desired("gone", "198.51.100.22"))
            assert isinstance(outcome, Retry)
            drv.wait_timeout = 20.0
            # the provider finishes only once the delete met the 409 (a fixed 1 s could end
            # before the driver's first delete on a loaded machine: no conflict then)
            timer = later(0.0, lambda: unpause_after_conflict(octavia_api, drv))
            deleted = await drv.delete("gone")
            timer.join()
            assert isinstance(deleted, Applied) and deleted.changes == 1, deleted
            assert drv.conflicts >= 1
            octavia_api.settle()
            assert live(octavia_api, "gone") == []
            assert await drv.names() == ()
            assert isinstance(await drv.delete("gone"), Applied)
        finally:
            await cleanup(octavia_api, drv)
    asyncio.run(main())


def test_a_request_octavia_refuses_is_named(octavia_api: OctaviaAPI) -> None:
    async def main() -> None:
        drv = driver(octavia_api)
        try:
            bad = desired("bad", "198.51.100.23")
            bad = DesiredLB(bad.name, bad.services, bad.vip, (
                Listener("TCP", 80, (Member("10.0.0.1", 30080, "n1"),), MONITOR,
                         ("192.0.2.0/33",), "none", "ROUND_ROBIN", "default/bad"),))
            outcome = await drv.ensure(bad)
            assert isinstance(outcome, Retry) and outcome.failure == Failure.REFUSED
            assert "400" in outcome.message
        finally:
            await cleanup(octavia_api, drv)
    asyncio.run(main())



def test_the_clean_up_outlasts_a_delete_sqlite_refused(octavia_api: OctaviaAPI) -> None:
    """While another connection writes the test server's sqlite file (as the settler does), a
    delete Octavia answers 500 "database is locked" (SQLite refuses its read-then-write at
    once) and the load balancer stays; the session's clean-up (harness_octavia.empty) deletes
    again until nothing is live, so the next test does not inherit it."""
    async def main() -> None:
        drv = driver(octavia_api)
        writer = sqlite3.connect(octavia_api.db, isolation_level=None, check_same_thread=False)
        timer: threading.Timer | None = None
        try:
            assert isinstance(await drv.ensure(desired("held", None)), Applied)
            writer.execute("BEGIN IMMEDIATE")
            refused = await drv.delete("held")
            assert isinstance(refused, Retry) and "database is locked" in refused.message, \
                refused
            assert [row[1] for row in live(octavia_api, "held")] == ["ACTIVE"]
            timer = later(1.0, writer.rollback)  # the writer finishes during the clean-up
            await empty(octavia_api, drv)
            assert live(octavia_api, "held") == []
        finally:
            if timer is not None:
                timer.join()
            writer.close()
            await cleanup(octavia_api, drv)
    asyncio.run(main())
