"""The 409 (stale ``resourceVersion``) paths exercised against the real API server (issue #8).

vipcast's only read-modify-writes on the cluster are the Lease's: :class:`LeaderElector`
takes/renews it (read, then ``replace`` carrying the read ``resourceVersion``) and releases it
on a clean stop (same pattern). Everything else cannot conflict, by construction: Service status
and ``NodeAnnouncement`` reports are *forced* server-side applies without a
``resourceVersion``, and Events are created under fresh random names -- so there is no other
read-modify-write to provoke a 409 on.

Conflicts are provoked for real: the elector's client runs a hook between the elector's read
and its write (another writer changes the Lease), so the server itself answers 409; in the race
test the candidates' writes are held at a barrier until all have read, so all but one lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.coordination_v1 import Lease

from vipcast.sources.kube.leader import ElectionConfig, LeaderElector

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import eventually

pytestmark = pytest.mark.slow

Hook = Callable[[], Awaitable[None]]


class RacingClient(AsyncClient):
    """An ``AsyncClient`` that counts the 409s the server answers and can run another writer
    (``before_replace``: one shot, on the first write ``only_if`` accepts) or wait at a barrier
    (``gate``: one shot) just before a ``replace`` goes out -- i.e. after the caller read the
    object it is about to write."""

    def __init__(self, kubeconfig: Any, namespace: str) -> None:
        super().__init__(config=KubeConfig.from_file(kubeconfig), namespace=namespace)
        self.conflicts = 0
        self.before_replace: Hook | None = None
        self.only_if: Callable[[Any], bool] = lambda obj: True
        self.gate: asyncio.Barrier | None = None

    async def replace(  # type: ignore[override]
            self, obj: Any, name: str | None = None, **kwargs: Any) -> Any:
        if self.before_replace is not None and self.only_if(obj):
            hook, self.before_replace = self.before_replace, None
            await hook()
        gate, self.gate = self.gate, None
        if gate is not None:
            with contextlib.suppress(TimeoutError, asyncio.BrokenBarrierError):
                async with asyncio.timeout(5):
                    await gate.wait()
        try:
            return await super().replace(obj, name, **kwargs)
        except ApiError as exc:
            if exc.status.code == 409:
                self.conflicts += 1
            raise

    async def create(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().create(obj, *args, **kwargs)
        except ApiError as exc:
            if exc.status.code == 409:
                self.conflicts += 1
            raise


def _config(lease: str, namespace: str, *, lease_duration: float = 10,
            renew_deadline: float = 8) -> ElectionConfig:
    # a long renew deadline: stepping down must come from what the elector read, not from it
    return ElectionConfig(name=lease, namespace=namespace, lease_duration=lease_duration,
                          renew_deadline=renew_deadline, retry_period=0.1)


@contextlib.asynccontextmanager
async def plain_client(kubeconfig: Any, namespace: str) -> AsyncIterator[AsyncClient]:
    """A client for the other writer and for reading the Lease."""
    raw = AsyncClient(config=KubeConfig.from_file(kubeconfig), namespace=namespace)
    try:
        yield raw
    finally:
        await raw.close()


@contextlib.asynccontextmanager
async def lone_candidate(
    cluster: Cluster, namespace: str, lease: str
) -> AsyncIterator[tuple[AsyncClient, RacingClient, LeaderElector]]:
    """(plain client, racing client, candidate "a" on it) for ``lease``; not yet campaigning."""
    async with plain_client(cluster.kubeconfig, namespace) as raw:
        c = RacingClient(cluster.kubeconfig, namespace)
        try:
            yield raw, c, LeaderElector(c, "a", _config(lease, namespace))
        finally:
            await c.close()


@contextlib.asynccontextmanager
async def campaigning(elector: LeaderElector) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(elector.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _lease(raw: AsyncClient, name: str, namespace: str) -> Lease:
    return await raw.get(Lease, name, namespace=namespace)


def _bump(raw: AsyncClient, name: str, namespace: str, holder: str | None = None) -> Hook:
    """Another writer: touches the Lease (a label; with ``holder``, takes it over freshly)."""

    async def write() -> None:
        lease = await _lease(raw, name, namespace)
        assert lease.metadata is not None and lease.spec is not None
        lease.metadata.labels = {**(lease.metadata.labels or {}), "touched": "yes"}
        if holder is not None:
            lease.spec.holderIdentity = holder
            lease.spec.renewTime = datetime.now(UTC)
        await raw.replace(lease)

    return write


@dataclass
class LeaderSampler:
    """Samples every elector's belief: never two leaders at once."""

    electors: list[LeaderElector]
    samples: int = 0
    most: int = 0
    seen_leaders: set[str] = field(default_factory=set)

    async def run(self) -> None:
        while True:
            leaders = [e.identity for e in self.electors if e.is_leader]
            self.samples += 1
            self.most = max(self.most, len(leaders))
            self.seen_leaders.update(leaders)
            await asyncio.sleep(0.005)


def test_renew_conflict_is_retried_with_a_fresh_read(kube_cluster: Cluster,
                                                     namespace: str) -> None:
    async def go() -> None:
        async with lone_candidate(kube_cluster, namespace, "renew") as (raw, c, a):
            sampler = LeaderSampler([a])
            async with campaigning(a):
                await eventually(lambda: asyncio.sleep(0, a.is_leader), what="a leads")
                watch = asyncio.create_task(sampler.run())
                # between a's read and its renewal, someone else writes the Lease
                c.before_replace = _bump(raw, "renew", namespace)
                await eventually(lambda: asyncio.sleep(0, c.conflicts), what="a 409 on renewal")
                bumped = (await _lease(raw, "renew", namespace)).metadata
                assert bumped is not None
                # the next attempt reads afresh and renews on top of the other write
                async def renewed() -> bool:
                    lease = await _lease(raw, "renew", namespace)
                    assert lease.metadata is not None and lease.spec is not None
                    return (lease.metadata.resourceVersion != bumped.resourceVersion
                            and lease.spec.holderIdentity == "a")

                await eventually(renewed, timeout=10, what="a renews after the conflict")
                meta = (await _lease(raw, "renew", namespace)).metadata
                assert meta is not None and meta.labels == {"touched": "yes"}
                assert a.is_leader and a.transitions == 1 and c.conflicts == 1
                watch.cancel()
                assert sampler.seen_leaders == {"a"} and sampler.most == 1

    run(go(), timeout=30)


def test_leader_that_lost_the_lease_steps_down_at_once(kube_cluster: Cluster, namespace: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with (
            lone_candidate(kube_cluster, namespace, "lost") as (raw, c, a),
            campaigning(a) as task,
        ):
            await eventually(lambda: asyncio.sleep(0, a.is_leader), what="a leads")
            # between a's read and its renewal, an intruder takes the Lease over
            c.before_replace = _bump(raw, "lost", namespace, holder="intruder")
            await eventually(lambda: asyncio.sleep(0, c.conflicts), what="a 409 on renewal")
            # a reads again, sees the intruder and steps down for that reason, not because its
            # 8 s renew deadline ran out (the deadline below is only generous)
            with caplog.at_level(logging.WARNING, logger="vipcast.sources.kube.leader"):
                await eventually(lambda: asyncio.sleep(0, not a.is_leader), timeout=20,
                                 what="a steps down")
            reasons = [r.getMessage() for r in caplog.records if "stepping down" in r.getMessage()]
            assert len(reasons) == 1 and "is held by intruder" in reasons[0], reasons
            assert not task.done()  # no crash
            # and leaves the (unexpired) Lease alone
            await asyncio.sleep(0.5)
            lease = await _lease(raw, "lost", namespace)
            assert lease.spec is not None and lease.spec.holderIdentity == "intruder"
            assert not a.is_leader and c.conflicts == 1

    run(go(), timeout=30)


def test_release_conflict_is_retried(kube_cluster: Cluster, namespace: str) -> None:
    async def go() -> None:
        async with lone_candidate(kube_cluster, namespace, "release") as (raw, c, a):
            async with campaigning(a):
                await eventually(lambda: asyncio.sleep(0, a.is_leader), what="a leads")
                # the other writer hits the release (the write that clears the holder), not a
                # renewal
                c.only_if = lambda lease: lease.spec.holderIdentity is None
                c.before_replace = _bump(raw, "release", namespace)
            # stopped: the release met a 409, read again and released
            assert c.conflicts == 1 and not a.is_leader
            lease = await _lease(raw, "release", namespace)
            assert lease.spec is not None and lease.spec.holderIdentity is None
            assert lease.metadata is not None and lease.metadata.labels == {"touched": "yes"}

    run(go(), timeout=30)


def test_racing_candidates_one_wins_each_round(kube_cluster: Cluster, namespace: str) -> None:
    """Three candidates; each round the leader stops (releases) and the other two race: both
    read the free Lease, both write with its resourceVersion, the server takes one and answers
    409 to the other. Never two leaders, and the Lease names only the winner."""

    async def go() -> None:
        async with contextlib.AsyncExitStack() as stack:
            await body(stack)

    async def body(stack: contextlib.AsyncExitStack) -> None:
        cfg = kube_cluster.kubeconfig
        raw = await stack.enter_async_context(plain_client(cfg, namespace))
        conf = _config("race", namespace, lease_duration=6, renew_deadline=4)
        clients = {name: RacingClient(cfg, namespace) for name in ("a", "b", "c")}
        for cl in clients.values():
            stack.push_async_callback(cl.close)
        electors = {name: LeaderElector(cl, name, conf) for name, cl in clients.items()}
        tasks = {name: asyncio.create_task(e.run()) for name, e in electors.items()}
        sampler = LeaderSampler(list(electors.values()))
        watch = asyncio.create_task(sampler.run())
        try:
            def leader() -> str | None:
                held = [n for n, e in electors.items() if e.is_leader]
                return held[0] if held else None

            first = await eventually(lambda: asyncio.sleep(0, leader()), what="a first leader")
            winners = [first]
            for _ in range(4):
                old = winners[-1]
                standbys = [n for n in electors if n != old]
                gate = asyncio.Barrier(len(standbys))
                for n in standbys:
                    clients[n].gate = gate
                before = sum(clients[n].conflicts for n in standbys)
                tasks[old].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tasks[old]
                new = await eventually(lambda: asyncio.sleep(0, leader()), timeout=10,
                                       what="a new leader")
                assert new in standbys
                # the loser's write was refused by the server with 409, and it does not lead
                def lost(standbys: list[str] = standbys, before: int = before) -> bool:
                    return sum(clients[n].conflicts for n in standbys) > before

                await eventually(lambda: asyncio.sleep(0, lost()), timeout=30,
                                 what="the loser's 409")
                lease = await _lease(raw, "race", namespace)
                assert lease.spec is not None and lease.spec.holderIdentity == new
                winners.append(new)
                # the old leader comes back as a fresh candidate
                electors[old] = LeaderElector(clients[old], old, conf)
                sampler.electors = list(electors.values())
                tasks[old] = asyncio.create_task(electors[old].run())
            await asyncio.sleep(0.3)
            assert sampler.most == 1 and sampler.samples > 50
            lease = await _lease(raw, "race", namespace)
            assert lease.spec is not None and lease.spec.holderIdentity == leader()
        finally:
            watch.cancel()
            for t in tasks.values():
                t.cancel()
            for t in (*tasks.values(), watch):
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    run(go(), timeout=60)
