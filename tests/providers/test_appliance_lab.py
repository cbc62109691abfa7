"""The HAProxy appliance in network namespaces (real HAProxy 2.6, real kernel, FRR router
learning the VIP from vipcast's own BGP speaker on the appliance): member churn
under steady load without failed requests or reloads; the client address reaches the backend
with PROXY v2 and with X-Forwarded-For; source ranges refuse other clients."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from vipcast.core.external import DesiredLB, HealthMonitor, Listener, Member
from vipcast.lab.appliance import VIP, Appliance, build
from vipcast.lab.backends import http_load
from vipcast.lab.netns import Topology
from vipcast.lab.workload import ClientLoad
from vipcast.providers.haproxy import runtime
from vipcast.providers.haproxy.driver import HAProxyDriver
from vipcast.providers.port import Applied

pytestmark = [pytest.mark.netns, pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="needs haproxy (scripts/setup.sh installs it)")]

MONITOR = HealthMonitor("TCP", None, None, 1.0, 1.0, 1, 2)


def lb(members: list[Member], *, client: str = "none", ranges: tuple[str, ...] = ()
       ) -> DesiredLB:
    listener = Listener("TCP", 80, tuple(sorted(members)), MONITOR, ranges,
                        client, "ROUND_ROBIN", "default/web")  # type: ignore[arg-type]
    return DesiredLB("kube_service_lab_default_web", ("default/web",), VIP, (listener,))


@pytest.fixture(scope="module")
def lab(netlab_module: Topology) -> Iterator[Appliance]:
    appliance = build(netlab_module, nodes=2, backends_per_node=2)
    appliance.announce([VIP])
    appliance.wait_route(VIP, timeout=60)
    yield appliance


def test_the_vip_reaches_the_router_by_vipcasts_speaker_on_the_appliance(lab: Appliance
                                                                          ) -> None:
    (path,) = lab.frr.route(f"{VIP}/32")
    assert path.nexthop == "10.30.0.2" and path.as_path == (64513,)
    other = "198.51.100.2"
    lab.announce([VIP, other])
    lab.wait_route(other)
    lab.announce([VIP])
    lab.wait_route(other, present=False)
    assert lab.frr.route(f"{VIP}/32")


@pytest.fixture
def driver(lab: Appliance, tmp_path: Path) -> Iterator[HAProxyDriver]:
    drv = lab.driver(tmp_path / "haproxy")
    try:
        yield drv
    finally:
        asyncio.run(drv.stop())


async def reloads_seen_by_haproxy(drv: HAProxyDriver) -> int:
    """HAProxy's own count: the master's ``show proc`` lists the current worker's reloads."""
    for _ in range(40):  # the master's CLI may answer a moment after the first worker
        try:
            text = await runtime.command(drv.master, "show proc; quit")
            break
        except runtime.RuntimeError_:
            await asyncio.sleep(0.05)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "worker":
            return int(parts[2])
    raise AssertionError(f"no worker in show proc:\n{text}")


def test_twenty_member_changes_under_load_fail_no_request_and_never_reload(
    lab: Appliance, driver: HAProxyDriver
) -> None:
    pool = lab.members
    start = [pool[0], pool[1]]
    assert isinstance(asyncio.run(driver.ensure(lb(start))), Applied)
    base_reloads = asyncio.run(reloads_seen_by_haproxy(driver))
    # the load runs from before the first change until after the last: its first answer is
    # awaited (a loaded machine can take seconds to start its interpreter, and the first
    # members leave after 0.3 s), and it is stopped only once the churn is done
    load = ClientLoad(lab.client, f"http://{VIP}/", duration=120.0, interval=0.005,
                      timeout=3.0)
    try:
        assert load.wait_started(60.0), "the load client never finished its first request"

        async def churn() -> list[int]:
            changes = []
            current, spare = list(start), [m for m in pool if m not in start]
            for i in range(20):
                if i % 2 == 0:
                    current.append(spare.pop(0))  # add one
                else:
                    spare.append(current.pop(0))  # drain and delete the oldest
                outcome = await driver.update_members(lb(current))
                assert isinstance(outcome, Applied), outcome
                changes.append(outcome.changes)
                await asyncio.sleep(0.3)
            return changes

        changes = asyncio.run(churn())
    finally:
        load.stop()
    samples = load.samples()
    failed = [f"{x.phase}: {x.error}" for x in samples if not x.ok]
    served = {x.backend for x in samples if x.ok}
    assert all(c >= 1 for c in changes), changes
    assert len(samples) >= 200, len(samples)
    assert failed == [], (len(failed), failed[:5])
    assert len(served) == len(pool), served  # every member served at some point
    assert driver.reloads == 0
    assert asyncio.run(reloads_seen_by_haproxy(driver)) == base_reloads


@pytest.mark.parametrize("mode", ["proxy-v2", "xff"])
def test_the_client_address_reaches_the_backend(
    lab: Appliance, driver: HAProxyDriver, mode: str
) -> None:
    desired = lb(lab.members[:2], client=mode)
    assert isinstance(asyncio.run(driver.ensure(desired)), Applied)
    result = http_load(lab.client, f"http://{VIP}/", count=20, deadline=20.0)
    assert result.failed == 0, result.errors
    assert result.clients == ("10.10.0.2",)
    plain = replace(desired, listeners=(replace(desired.listeners[0], client_address="none"),))
    assert isinstance(asyncio.run(driver.ensure(plain)), Applied)
    result = http_load(lab.client, f"http://{VIP}/", count=10, deadline=20.0)
    assert result.failed == 0 and result.clients == ("10.20.1.1",)  # the appliance's own


def test_source_ranges_refuse_other_clients(lab: Appliance, driver: HAProxyDriver) -> None:
    desired = lb(lab.members[:2], ranges=("10.10.0.0/24",))
    assert isinstance(asyncio.run(driver.ensure(desired)), Applied)
    allowed = http_load(lab.client, f"http://{VIP}/", count=10, deadline=20.0)
    assert allowed.ok == 10, allowed.errors
    refused = http_load(lab.outsider, f"http://{VIP}/", count=5, deadline=20.0, timeout=2.0)
    assert refused.ok == 0 and refused.failed == 5, refused


def test_a_frontend_change_reloads_hitlessly_and_keeps_runtime_members(
    lab: Appliance, driver: HAProxyDriver
) -> None:
    """A new port is a frontend change: one reload (master re-exec, listeners passed over),
    no failed request on the existing port, members added at runtime still there after."""
    base = lb(lab.members[:1])
    assert isinstance(asyncio.run(driver.ensure(base)), Applied)
    grown = lb(lab.members[:2])  # a runtime change: no reload
    assert isinstance(asyncio.run(driver.update_members(grown)), Applied)
    assert driver.reloads == 0
    second = replace(grown.listeners[0], port=8080)
    with_port = replace(grown, listeners=(grown.listeners[0], second))
    # under load from its first request (awaited: a loaded machine starts it late) until a
    # second after the reload
    load = ClientLoad(lab.client, f"http://{VIP}/", duration=120.0, interval=0.005,
                      timeout=3.0)
    try:
        assert load.wait_started(60.0), "the load client never finished its first request"
        asyncio.run(asyncio.sleep(1.0))
        assert isinstance(asyncio.run(driver.ensure(with_port)), Applied)
        asyncio.run(asyncio.sleep(1.0))
    finally:
        load.stop()
    samples = load.samples()
    failed = [f"{x.phase}: {x.error}" for x in samples if not x.ok]
    assert driver.reloads == 1
    assert len(samples) >= 2, len(samples)
    assert failed == [], (len(failed), failed[:5])
    assert asyncio.run(driver.get(with_port.name)) == with_port
    extra = http_load(lab.client, f"http://{VIP}:8080/", count=10, deadline=20.0)
    assert extra.failed == 0 and set(extra.backends) == {"n1-8081", "n1-8082"}
