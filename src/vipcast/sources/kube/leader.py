"""Lease-based leader election (``coordination.k8s.io/v1``), after client-go's algorithm.

A candidate reads the Lease; it may take it when the Lease is free, already its own, or when
the holder has not renewed it for ``lease_duration`` *as observed locally* (remote timestamps
are not compared with the local clock, so clock skew between nodes does not matter). Taking and
renewing are updates carrying the read ``resourceVersion``: of two candidates racing, the API
server accepts one and answers 409 to the other. A leader that cannot renew within
``renew_deadline`` steps down -- also when the API server does not answer at all: each attempt
is cut off at the leader's remaining renew deadline. A 409 alone decides nothing (the next
attempt reads the Lease afresh), but a leader whose fresh read names another holder steps down
at once. Releasing retries its read-modify-write on 409. ``is_leader`` is the state;
``changed`` is set on each flip; ``holds()`` is what a writer checks right before each write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

log = logging.getLogger(__name__)
_RELEASE_ATTEMPTS = 3


@dataclass(frozen=True)
class ElectionConfig:
    name: str = "vipcast-controller"
    namespace: str = "vipcast-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def _now_micro() -> datetime:
    return datetime.now(UTC)


@dataclass
class LeaderElector:
    client: AsyncClient
    identity: str
    config: ElectionConfig = field(default_factory=ElectionConfig)
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    is_leader: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    transitions: int = 0
    # what we last saw of the lease, and when (local clock)
    _observed_holder: str | None = None
    _observed_renew: object = None
    _observed_at: float = 0.0
    _last_renew_ok: float = 0.0

    async def run(self) -> None:
        """Campaign and renew forever (cancel to stop; a leader releases the Lease then)."""
        try:
            while True:
                ok = await self._attempt()
                now = self.clock()
                if ok:
                    self._last_renew_ok = now
                    self._set_leader(True)
                elif self.is_leader and self._held_by_other():
                    log.warning("%s: lease %s is held by %s; stepping down", self.identity,
                                self.config.name, self._observed_holder)
                    self._set_leader(False)
                elif self.is_leader and now - self._last_renew_ok >= self.config.renew_deadline:
                    log.warning("%s: could not renew lease %s; stepping down", self.identity,
                                self.config.name)
                    self._set_leader(False)
                await asyncio.sleep(self.config.retry_period)
        finally:
            if self.is_leader:
                await asyncio.shield(self._release())
                self._set_leader(False)

    async def _attempt(self) -> bool:
        """One try, bounded so that a leader learns by its renew deadline that it failed (an
        unreachable API server may hang a request far longer than that)."""
        budget = self.config.renew_deadline
        if self.is_leader:
            budget = max(0.05, budget - (self.clock() - self._last_renew_ok))
        try:
            async with asyncio.timeout(budget):
                return await self._try_acquire_or_renew()
        except TimeoutError:
            log.warning("%s: lease %s: no answer within %.1fs", self.identity, self.config.name,
                        budget)
            return False

    def holds(self) -> bool:
        """Leading, and the last renewal is younger than the renew deadline by the local clock.

        A writer asks this right before each write: after a pause (SIGSTOP, a stalled event
        loop, a long call in a thread) ``is_leader`` may still say True while a standby has
        taken the expired Lease over; this answer is already False then, because the local
        clock ran on during the pause."""
        return self.is_leader and self.clock() - self._last_renew_ok < self.config.renew_deadline

    def _held_by_other(self) -> bool:
        """The last fresh read of the Lease names another holder: we lost it (someone took
        it over, e.g. after our renewals stalled), so we must not wait out the renew deadline
        believing we lead."""
        return self._observed_holder is not None and self._observed_holder != self.identity

    def _set_leader(self, value: bool) -> None:
        if value != self.is_leader:
            self.is_leader = value
            if value:
                self.transitions += 1
            log.info("%s: %s leader of %s", self.identity, "became" if value else "is no longer",
                     self.config.name)
            self.changed.set()

    def _spec(self, acquire: datetime | None, transitions: int) -> LeaseSpec:
        now = _now_micro()
        return LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.config.lease_duration),
            acquireTime=acquire or now,
            renewTime=now,
            leaseTransitions=transitions,
        )

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        try:
            try:
                lease = await self.client.get(Lease, cfg.name, namespace=cfg.namespace)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                await self.client.create(Lease(
                    metadata=ObjectMeta(name=cfg.name, namespace=cfg.namespace),
                    spec=self._spec(None, 0)))
                self._observe(self.identity, None)
                return True
            spec = lease.spec or LeaseSpec()
            holder = spec.holderIdentity or None
            if holder != self._observed_holder or spec.renewTime != self._observed_renew:
                self._observe(holder, spec.renewTime)
            duration = spec.leaseDurationSeconds or cfg.lease_duration
            expired = self.clock() - self._observed_at > duration
            if holder and holder != self.identity and not expired:
                return False
            mine = holder == self.identity
            transitions = (spec.leaseTransitions or 0) + (0 if mine else 1)
            lease.spec = self._spec(spec.acquireTime if mine else None, transitions)
            await self.client.replace(lease)  # carries resourceVersion: 409 if someone raced
            self._observe(self.identity, lease.spec.renewTime)
            return True
        except ApiError as exc:
            if exc.status.code not in (409, 404):
                log.warning("%s: lease %s: %s", self.identity, cfg.name, exc.status.message)
            return False
        except (httpx.HTTPError, OSError) as exc:
            log.warning("%s: lease %s: %s", self.identity, cfg.name, exc)
            return False

    def _observe(self, holder: str | None, renew: object) -> None:
        self._observed_holder = holder
        self._observed_renew = renew
        self._observed_at = self.clock()

    async def _release(self) -> None:
        """Give the Lease up on a clean stop so a standby takes over at once."""
        cfg = self.config
        for _ in range(_RELEASE_ATTEMPTS):
            try:
                lease = await self.client.get(Lease, cfg.name, namespace=cfg.namespace)
                if lease.spec and lease.spec.holderIdentity == self.identity:
                    lease.spec.holderIdentity = None
                    lease.spec.leaseDurationSeconds = 1
                    await self.client.replace(lease)
                return
            except ApiError as exc:
                if exc.status.code != 409:  # 409: written meanwhile, read it again
                    log.info("%s: releasing lease %s failed: %s", self.identity, cfg.name,
                             exc.status.message)
                    return
            except (httpx.HTTPError, OSError) as exc:
                log.info("%s: releasing lease %s failed: %s", self.identity, cfg.name, exc)
                return
        log.info("%s: releasing lease %s: conflicts %d times, left to expire", self.identity,
                 cfg.name, _RELEASE_ATTEMPTS)
