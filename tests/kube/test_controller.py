"""The controller against a real API server: allocation to status, restart keeps IPs,
only the leader writes, failures become Events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from lightkube.models.core_v1 import LoadBalancerIngress, LoadBalancerStatus, ServiceStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Service

from vipcast.app.controller import Controller, ControllerConfig
from vipcast.sources.kube.leader import ElectionConfig

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import (
    IPAddressPool,
    client,
    event_reasons,
    eventually,
    ingress_ips,
    lb_service,
    pool,
)

pytestmark = pytest.mark.slow


def _config(identity: str, lease: str) -> ControllerConfig:
    return ControllerConfig(
        identity=identity,
        # every hand-over here is a release (a cancelled leader gives its Lease up), so a long
        # Lease costs nothing; a 1.5 s renew deadline let a stall of the test's own event loop
        # (one process runs both controllers) make the leader step down under CI load
        election=ElectionConfig(name=lease, namespace="vipcast-system", lease_duration=10,
                                renew_deadline=8, retry_period=0.2),
        resync=5, debounce=0.02)


@contextlib.asynccontextmanager
async def running(ctl: Controller) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(ctl.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_allocates_writes_status_and_events(vipcast_crds: Cluster, namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(pool(f"p-{namespace}", ["198.51.100.0/30"], namespace))
        for name in ("a", "b"):
            await c.create(lb_service(name, namespace))
        await c.create(lb_service("cip", namespace, type_="ClusterIP"))
        await c.create(lb_service("other", namespace, cls="example.com/other"))
        await c.create(lb_service("c", namespace))
        await c.create(lb_service("d", namespace))
        await c.create(lb_service("e", namespace))  # 4 addresses, 5 services: one fails
        ctl = Controller(c, _config("ctl-1", f"lease-{namespace}"))
        async with running(ctl):
            async def all_written() -> dict[str, tuple[str, ...]] | None:
                ips = {n: await ingress_ips(c, n, namespace) for n in "abcde"}
                return ips if sum(1 for v in ips.values() if v) == 4 else None

            ips = await eventually(all_written, 30, what="4 services with IPs")
            starved = next(n for n, v in ips.items() if not v)

            async def warned() -> bool:
                return "PoolExhausted" in await event_reasons(c, starved, namespace)

            async def told() -> bool:
                return "IPAllocated" in await event_reasons(c, "a", namespace)

            await eventually(warned, 20, what="PoolExhausted event")
            await eventually(told, 20, what="IPAllocated event")
        got = [ip for v in ips.values() for ip in v]
        assert sorted(got) == [f"198.51.100.{i}" for i in range(4)]
        assert not await ingress_ips(c, "cip", namespace)
        assert not await ingress_ips(c, "other", namespace)
        svc = await c.get(Service, "a")
        assert svc.status.loadBalancer.ingress[0].ipMode == "VIP"
        managers = {m.manager for m in svc.metadata.managedFields}
        assert "vipcast-controller" in managers
        await c.delete(IPAddressPool, f"p-{namespace}")
        await c.close()

    run(go(), 90)


def test_new_leader_rebuilds_from_status_before_allocating(
    vipcast_crds: Cluster, namespace: str
) -> None:
    """A Service whose status already holds a pool address (written by an earlier leader)
    keeps it; a new Service never gets it."""

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(pool(f"p-{namespace}", ["203.0.113.0/31"], namespace))
        await c.create(lb_service("old", namespace))
        await c.apply(Service.Status(
            apiVersion="v1", kind="Service", metadata=ObjectMeta(name="old", namespace=namespace),
            status=ServiceStatus(loadBalancer=LoadBalancerStatus(
                ingress=[LoadBalancerIngress(ip="203.0.113.0", ipMode="VIP")]))),
            field_manager="vipcast-controller", force=True)
        await c.create(lb_service("new", namespace))
        ctl = Controller(c, _config("ctl-a", f"lease-{namespace}"))
        async with running(ctl):
            await eventually(lambda: ingress_ips(c, "new", namespace), 30, what="new's IP")
        assert await ingress_ips(c, "old", namespace) == ("203.0.113.0",)
        assert await ingress_ips(c, "new", namespace) == ("203.0.113.1",)
        # a restart (another identity) moves nothing
        ctl2 = Controller(c, _config("ctl-b", f"lease-{namespace}"))
        async with running(ctl2):
            await eventually(lambda: asyncio.sleep(0, ctl2.elector.is_leader and ctl2.rounds > 1),
                             30, what="second controller leading")
            await asyncio.sleep(0.5)
        assert await ingress_ips(c, "old", namespace) == ("203.0.113.0",)
        assert await ingress_ips(c, "new", namespace) == ("203.0.113.1",)
        await c.delete(IPAddressPool, f"p-{namespace}")
        await c.close()

    run(go(), 90)


def test_only_the_leader_writes_and_standby_takes_over(
    vipcast_crds: Cluster, namespace: str
) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(pool(f"p-{namespace}", ["192.0.2.200/29"], namespace))
        await c.create(lb_service("s1", namespace))
        one = Controller(c, _config("one", f"lease-{namespace}"))
        two = Controller(c, _config("two", f"lease-{namespace}"))
        async with running(one) as one_task:
            await eventually(lambda: ingress_ips(c, "s1", namespace), 30, what="s1's IP")
            async with running(two):
                await eventually(lambda: asyncio.sleep(0, two.synced), 20, what="two synced")
                await asyncio.sleep(1.0)
                assert one.elector.is_leader and not two.elector.is_leader
                assert two.last_report.written == 0
                # the leader stops (releases its Lease): the standby takes over and serves
                one_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await one_task
                await c.create(lb_service("s2", namespace))
                await eventually(lambda: ingress_ips(c, "s2", namespace), 30, what="s2's IP")
                assert two.elector.is_leader
        await c.delete(IPAddressPool, f"p-{namespace}")
        await c.close()

    run(go(), 120)



def test_health_endpoint_for_the_probes(vipcast_crds: Cluster, namespace: str) -> None:
    """Issue 16: the controller had no liveness/readiness endpoint for its probes."""
    import urllib.error
    import urllib.request

    from vipcast.app.controller import run_controller

    # the controller binds port 0 itself and says which port it got (a port found free by
    # the test and closed again could be taken by anyone before the controller bound it)
    bound: list[tuple[str, int]] = []
    port = 0

    def get(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        nonlocal port
        task = asyncio.create_task(run_controller(c, _config("health", f"health-{namespace}"),
                                                  health=("127.0.0.1", 0),
                                                  serving=bound.append))
        try:
            await eventually(lambda: asyncio.sleep(0, bound), 30, what="the health server")
            (host, port), = bound
            assert host == "127.0.0.1" and port != 0
            await eventually(lambda: asyncio.to_thread(lambda: get("/readyz") == 200), 30,
                             what="/readyz 200 once synced")
            assert await asyncio.to_thread(get, "/healthz") == 200
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await c.close()
        assert await asyncio.to_thread(get, "/healthz") == 0  # stopped with the controller

    run(go(), 60)
