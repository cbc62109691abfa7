"""What the node observes about its services, reported back as values: the announcement policy.

:class:`AnnouncementPolicy` is a plan consumer (it needs the plan's NAT rules) that watches the
health checker's flips and probes each VIP port through the node's own data plane
(:class:`~vipcast.runtime.probe.AnnouncementGate`); what it observes goes back to the agent as a
:class:`~vipcast.core.pipeline.Local` value (:meth:`~vipcast.app.agent.Agent.observe`), never
as a call into another consumer. Split from :mod:`vipcast.app.node`, which wires it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from vipcast.core.desired import BackendKey, NatRule, NodePlan, VipKey
from vipcast.core.pipeline import Local, healthy_services

if TYPE_CHECKING:  # the data plane's parts: imported by the node that runs one
    from vipcast.runtime.health import HealthChecker
    from vipcast.runtime.probe import AnnouncementGate

log = logging.getLogger("vipcast.node")

#: verification probes in flight at once
PROBES_AT_ONCE = 32


class _PlanIndex:
    """What the policy looks up in one plan, built once per plan (not per check)."""

    def __init__(self, plan: NodePlan) -> None:
        self.plan = plan
        self.ports: dict[str, list[VipKey]] = {}
        self.rules: dict[str, list[NatRule]] = {}
        for r in plan.nat:
            self.ports.setdefault(r.service, []).append((r.vip, r.port, r.protocol))
            self.rules.setdefault(r.service, []).append(r)
        self.services_of: dict[BackendKey, tuple[str, ...]] = {
            (t.ip, t.port): t.services for t in plan.health
        }
        self.healthy: frozenset[str] | None = None
        #: services whose health changed since the policy last looked (see :meth:`flipped`)
        self._flipped: set[str] = set()
        self.down: frozenset[BackendKey] = frozenset()
        #: the policy's bookkeeping for this plan: servable services (None: not checked yet),
        #: those waiting for verification, the last answer
        self.servable: set[str] | None = None
        self.waiting: set[str] = set()
        self.result: frozenset[str] | None = None

    def healthy_services(self, down: frozenset[BackendKey]) -> frozenset[str]:
        """Services with a usable backend not down; after a flip only the services of the
        backends that flipped are looked at again."""
        if self.healthy is None:
            self.healthy = healthy_services(self.plan.nat, down)
        elif down != self.down:
            touched = {s for k in down ^ self.down for s in self.services_of.get(k, ())}
            gained = {s for s in touched if healthy_services(self.rules.get(s, ()), down)}
            lost = touched - gained
            gained -= self.healthy
            lost &= self.healthy
            if gained or lost:
                self.healthy = (self.healthy | gained) - lost
                self._flipped |= gained | lost
        self.down = down
        return self.healthy

    def flipped(self) -> set[str]:
        """The services whose health changed since the last call (their healthy state is
        :attr:`healthy`'s); looked at instead of comparing 10,000 names on every check."""
        out, self._flipped = self._flipped, set()
        return out


class AnnouncementPolicy:
    """What the node observes about its services: which backends are down (the health
    checker) and which services it can serve (a healthy backend, and a VIP port verified
    through the node's own data plane, :class:`~vipcast.runtime.probe.AnnouncementGate`).

    A plan consumer (it needs the plan's NAT rules) that reports back only values: each time
    what it observes changes, ``on_local(Local(...))`` (the agent's
    :meth:`~vipcast.app.agent.Agent.observe`, which re-plans from memory). It wakes on a health
    flip, a new plan or a finished probe, and every ``interval`` seconds.
    """

    def __init__(
        self,
        gate: AnnouncementGate,
        health: HealthChecker,
        *,
        verify: bool = True,
        interval: float = 0.2,
        on_local: Callable[[Local], Awaitable[None]] | None = None,
    ) -> None:
        self._gate = gate
        self._health = health
        self._verify = verify
        self._interval = interval
        self._on_local = on_local
        self._index: _PlanIndex | None = None
        self.servable: frozenset[str] = frozenset()
        self.local = Local(servable=frozenset())
        self._probes: dict[VipKey, asyncio.Task[None]] = {}
        self._probe_slots = asyncio.Semaphore(PROBES_AT_ONCE)
        #: services whose probe ended since the last check
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        health.on_change(self._wake.set)
        #: the node's Envoy is ready and ACKed the current configuration (an observation)
        self._proxy_ready = False
        #: nodes the membership says are dead (an observation, see app/liveness.py)
        self._dead_nodes: frozenset[str] = frozenset()

    async def apply(self, plan: NodePlan) -> None:
        """A new plan (new services may need probes): check again now."""
        if self._index is None or self._index.plan.nat is not plan.nat:
            self._index = _PlanIndex(plan)
            self._wake.set()

    def report_to(self, on_local: Callable[[Local], Awaitable[None]]) -> None:
        """Where changed observations go (the agent's :meth:`~vipcast.app.agent.Agent.observe`)."""
        self._on_local = on_local

    def proxy_ready(self, ready: bool) -> None:
        """The node's Envoy started or stopped serving its current configuration (an event
        from the gateway; the next check reports it): the Gateways' VIPs follow it."""
        if ready != self._proxy_ready:
            self._proxy_ready = ready
            self._wake.set()

    def dead_nodes(self, nodes: frozenset[str]) -> None:
        """The membership's view of dead nodes changed (an event from the membership; the next
        check reports it): their backends leave the Cluster-policy maps."""
        if nodes != self._dead_nodes:
            self._dead_nodes = nodes
            self._wake.set()

    def observed(self) -> Local:
        """What the node observes now, as the planner's input."""
        return Local(servable=self.servable, down=self._health.down(),
                     proxy_ready=self._proxy_ready, dead_nodes=self._dead_nodes)

    async def check(self, *, wait: bool = False) -> frozenset[str]:
        """The services servable now: a healthy backend, and a VIP port verified through the
        node's own data plane.

        Verification probes run in the background (at most :data:`PROBES_AT_ONCE` at a time)
        and count from the first check after they succeed, so a slow or failing probe never
        delays another service's change. ``wait`` awaits the probes first (start-up). After
        the first check of a plan, only the services whose health changed, whose probe ended
        or that still wait for verification are looked at.
        """
        index = self._index
        if index is None:
            return frozenset()
        healthy = index.healthy_services(self._health.down())
        flipped = index.flipped()
        if index.servable is None:
            todo: Iterable[str] = index.ports
            index.servable = set()
        else:
            todo = flipped | self._pending | index.waiting
        self._pending = set()
        self._look(index, todo, healthy)
        if wait and self._probes:
            await asyncio.gather(*self._probes.values(), return_exceptions=True)
            todo, self._pending = self._pending | index.waiting, set()
            self._look(index, todo, healthy)
        if index.result is None or index.result != index.servable:  # set equality, in C
            index.result = frozenset(index.servable)
        return index.result

    def _look(self, index: _PlanIndex, services: Iterable[str], healthy: frozenset[str]
              ) -> None:
        """Probe or forget these services' VIP ports as their health says; note which are
        servable now and which still wait for verification."""
        assert index.servable is not None
        for service in services:
            keys = index.ports.get(service, ())
            if service not in healthy:
                for key in keys:
                    running = self._probes.get(key)
                    if running is not None:
                        running.cancel()  # a success now would predate the failure
                    self._gate.invalidate(key)
                index.servable.discard(service)
                index.waiting.discard(service)
                continue
            if not keys:
                continue
            if not self._verify or any(self._gate.may_announce(k) for k in keys):
                index.servable.add(service)
                index.waiting.discard(service)
                continue
            index.servable.discard(service)
            index.waiting.add(service)
            for key in keys:
                if key not in self._probes:
                    self._start_probe(service, key)

    def _start_probe(self, service: str, key: VipKey) -> None:
        async def probe() -> None:
            async with self._probe_slots:
                vip, port, protocol = key
                result = await self._gate.verify(vip, port, protocol)
            self._pending.add(service)
            if result.ok:
                self._wake.set()
            else:
                log.info("%s: %s:%d not verified yet: %s", service, vip, port, result.error)

        task = asyncio.get_running_loop().create_task(probe(), name=f"verify {key}")
        self._probes[key] = task
        task.add_done_callback(
            lambda done: self._probes.pop(key) if self._probes.get(key) is done else None
        )

    def cancel_probes(self) -> None:
        for task in list(self._probes.values()):
            task.cancel()

    async def settle(self) -> Local:
        """Check once, awaiting the probes (start-up); the observations as the planner's input."""
        self.servable = await self.check(wait=True)
        self.local = self.observed()
        return self.local

    async def run(self) -> None:
        """Check on every wake-up (and every ``interval`` s); report what changed."""
        try:
            await self._run()
        finally:
            self.cancel_probes()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            servable = await self.check()
            if servable != self.servable:
                added, gone = servable - self.servable, self.servable - servable
                log.info(
                    "servable services changed: +%s -%s",
                    ",".join(sorted(added)) or "none", ",".join(sorted(gone)) or "none",
                )
                self.servable = servable
            local = self.observed()
            if local != self.local:
                self.local = local
                if self._on_local is not None:
                    await self._on_local(local)


