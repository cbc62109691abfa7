"""kill -9 churn against the real API server, shared by ``tests/kube/test_churn.py`` (small) and
``bench/kube_churn.py`` (the issue's scale: 100 kills, 1,000 services).

Two controller processes run leader-elected. A churner creates Services up to a target count,
then keeps deleting a random one and creating a new one; a killer sends SIGKILL to the current
Lease holder at random moments and restarts it. An auditor watches every Service status change
and counts violations: an address held by two live Services at once (double assignment), and a
Service whose addresses change once set (a move). At the end every live Service must hold an
address and the addresses must be distinct.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx2 as httpx
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.coordination_v1 import Lease

from .harness.cluster import Cluster
from .kubetools import IPAddressPool, Service, eventually, lb_service, pool

T = TypeVar("T")


async def _retry(call: Callable[[], Awaitable[T]], attempts: int = 6) -> T | None:
    """``call()``, retried on transport errors and 5xx/429 (a loaded server); a 409/404 on a
    retry means an earlier attempt went through: None."""
    for attempt in range(attempts):
        try:
            return await call()
        except httpx.TransportError:
            pass
        except ApiError as error:
            code = error.status.code or 0
            if attempt and code in (404, 409):
                return None
            if code < 500 and code != 429:
                raise
        await asyncio.sleep(min(0.5 * 2 ** attempt, 5.0))
    return await call()


@dataclass
class ChurnFigures:
    kills: int = 0
    created: int = 0
    deleted: int = 0
    live: int = 0
    assigned: int = 0
    moves: int = 0
    double_assignments: int = 0
    wall_s: float = 0.0
    settle_s: float = 0.0
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"kills={self.kills} services_created={self.created} deleted={self.deleted} "
                f"live={self.live} assigned={self.assigned} moves={self.moves} "
                f"double_assignments={self.double_assignments} wall={self.wall_s:.1f}s "
                f"settle={self.settle_s:.1f}s")


@dataclass(frozen=True)
class ChurnPlan:
    kills: int = 10
    services: int = 40
    #: after reaching ``services``, this many delete+create pairs are spread over the run
    replacements: int = 10
    #: addresses of the pool (a CIDR with room for every live Service)
    cidr: str = "198.18.0.0/26"
    lease_duration: float = 1.0
    #: random pause before each kill, seconds (uniform)
    kill_gap: tuple[float, float] = (0.1, 1.0)
    #: Services created per second at most
    create_rate: float = 50.0
    settle_timeout: float = 120.0
    seed: int = 8


def _start(cluster: Cluster, namespace: str, identity: str, logdir: Path,
           lease_duration: float) -> subprocess.Popen[bytes]:
    log = (logdir / f"{identity}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "vipcast.cli.main", "controller",
             "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace,
             "--identity", identity, "--lease-duration", str(lease_duration),
             "--log-level", "WARNING"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


async def run_churn(cluster: Cluster, namespace: str, logdir: Path, plan: ChurnPlan,
                    progress: Callable[[str], None] | None = None) -> ChurnFigures:
    """Run one churn experiment; the controller processes are always stopped at the end."""
    rng = random.Random(plan.seed)
    figures = ChurnFigures()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    c = AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig), namespace=namespace,
                    timeout=httpx.Timeout(60.0))
    pool_name = f"p-{namespace}"
    await c.create(pool(pool_name, [plan.cidr], namespace))
    holders: dict[str, str] = {}  # ip -> live service holding it, from every watched change
    first_ip: dict[str, tuple[str, ...]] = {}
    live: set[str] = set()
    deleted: set[str] = set()
    started = time.monotonic()

    def note(kind: str, text: str) -> None:
        if kind == "move":
            figures.moves += 1
        else:
            figures.double_assignments += 1
        if len(figures.violations) < 50:
            figures.violations.append(text)

    async def audit() -> None:
        stream = c.watch(Service, namespace=namespace)
        async with aclosing(stream):  # type: ignore[type-var]
            async for kind, svc in stream:
                name = svc.metadata.name
                lb = svc.status.loadBalancer if svc.status else None
                ips = tuple(i.ip for i in (lb.ingress or []) if i.ip) if lb else ()
                if kind == "DELETED":
                    ips = ()
                for ip, who in list(holders.items()):
                    if who == name and ip not in ips:
                        del holders[ip]
                for ip in ips:
                    if holders.setdefault(ip, name) != name:
                        note("double", f"{ip} held by {holders[ip]} and {name}")
                if ips and first_ip.setdefault(name, ips) != ips:
                    note("move", f"{name} moved {first_ip[name]} -> {ips}")

    counter = 0

    async def create_one() -> None:
        nonlocal counter
        name = f"s{counter}"
        counter += 1
        await _retry(lambda: c.create(lb_service(name, namespace)))
        live.add(name)
        figures.created += 1

    async def churn(stop: asyncio.Event) -> None:
        gap = 1.0 / plan.create_rate
        while len(live) < plan.services and not stop.is_set():
            await create_one()
            await asyncio.sleep(gap)
        for _ in range(plan.replacements):
            if stop.is_set():
                return
            victim = rng.choice(sorted(live))
            live.discard(victim)
            deleted.add(victim)
            with contextlib.suppress(ApiError):
                await _retry(lambda v=victim: c.delete(Service, v, namespace=namespace))
            figures.deleted += 1
            await create_one()
            await asyncio.sleep(rng.uniform(0.05, 0.5))

    async def killer() -> None:
        for _ in range(plan.kills):
            await asyncio.sleep(rng.uniform(*plan.kill_gap))
            try:
                lease = await c.get(Lease, "vipcast-controller", namespace=namespace)
                victim = lease.spec.holderIdentity if lease.spec else None
            except (ApiError, httpx.TransportError):
                victim = None
            if victim not in procs:
                victim = rng.choice(sorted(procs))
            assert victim is not None
            os.kill(procs[victim].pid, signal.SIGKILL)
            await asyncio.to_thread(procs[victim].wait, 10)
            procs[victim] = _start(cluster, namespace, victim, logdir, plan.lease_duration)
            figures.kills += 1
            if progress is not None and figures.kills % 10 == 0:
                progress(f"{time.monotonic() - started:.0f}s: {figures.line()}")

    auditor = asyncio.create_task(audit())
    stop = asyncio.Event()
    try:
        for ident in ("ctl-a", "ctl-b"):
            procs[ident] = _start(cluster, namespace, ident, logdir, plan.lease_duration)
        churner = asyncio.create_task(churn(stop))
        try:
            await killer()
        finally:
            stop.set()
        await churner
        settle_from = time.monotonic()

        async def all_assigned() -> bool:
            if auditor.done():
                raise AssertionError(f"the status watch ended: {auditor.exception()!r}")
            return all(n in first_ip and any(h == n for h in holders.values()) for n in live)

        await eventually(all_assigned, plan.settle_timeout, every=0.5,
                         what="every live Service assigned")
        figures.settle_s = time.monotonic() - settle_from
        await asyncio.sleep(1.0)  # late writes, if any, would show up as violations
        figures.live = len(live)
        figures.assigned = len({first_ip[n] for n in live})
    finally:
        figures.wall_s = time.monotonic() - started
        auditor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await auditor
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            await asyncio.to_thread(proc.wait, 10)
        with contextlib.suppress(ApiError, httpx.TransportError):
            await _retry(lambda: c.delete(IPAddressPool, pool_name))
        await c.close()
    return figures
