"""The edge of node drains: feeds the pure state machine (:mod:`vipcast.core.drain`) its
events and runs its one timer on the injectable Clock.

- drain / undrain come from the Node object in the config (annotation ``vipcast.io/drain``
  or a drain label, :func:`~vipcast.core.drain.wants_drain`), seen with every plan;
- GRACE_EXPIRED comes from a timer armed when DRAINING starts;
- ROUTERS_MOVED when, DRAINING, a counter of new connections to the node's VIPs (an nftables
  counter, :mod:`vipcast.dataplane.drain_counter`) has not moved for the quiet period
  (:func:`~vipcast.core.drain.routers_moved`): the wait ends before the grace. Without a
  usable counter (no nftables, no privilege) the grace alone ends it;
- HEALTH_VERIFIED when, undraining, every service of the node's routes is servable again
  (what the planner would announce: the verified set, and the Gateways' stand-ins while the
  node's Envoy is ready; no gating without a data plane).

The driver is a plan consumer that never awaits the agent from inside ``apply`` (the agent is
publishing then): it only schedules :meth:`_settle`, one task at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from vipcast.core.desired import NodePlan
from vipcast.core.drain import (
    DEFAULT_DRAIN_LABELS,
    DEFAULT_DRAIN_TAINTS,
    DEFAULT_GRACE,
    DEFAULT_QUIET,
    PHASE_OF,
    DrainEvent,
    DrainState,
    Phase,
    deadline_of,
    routers_moved,
    step,
    wants_drain,
)
from vipcast.core.ports import Clock, Timer
from vipcast.dataplane.drain_counter import CounterError, NewConnectionCounter
from vipcast.runtime.clock import LoopClock
from vipcast.spec import Spec

if TYPE_CHECKING:
    from vipcast.app.agent import Agent, AgentOptions


class Drainable(Protocol):
    """What the driver needs of the agent."""

    def drain_inputs(self) -> tuple[Spec, NodePlan] | None: ...

    def servable_now(self) -> frozenset[str] | None: ...

    async def set_drain(self, phase: Phase, state: str) -> None: ...


class ConnectionCounter(Protocol):
    """New connections to a set of addresses (the edge: nftables)."""

    def install(self, addresses: Sequence[str]) -> None: ...

    def read(self) -> int: ...

    def remove(self) -> None: ...


def _addresses(plan: NodePlan) -> list[str]:
    """The host routes' addresses of a plan (the VIPs a router sends this node)."""
    out = []
    for route in plan.bgp:
        ip, _, length = route.prefix.partition("/")
        if length in ("32", "128"):
            out.append(ip)
    return out


class DrainDriver:
    def __init__(
        self,
        agent: Drainable,
        node: str,
        clock: Clock,
        *,
        grace: float = DEFAULT_GRACE,
        labels: tuple[str, ...] = DEFAULT_DRAIN_LABELS,
        taints: tuple[str, ...] = DEFAULT_DRAIN_TAINTS,
        counter: ConnectionCounter | None = None,
        quiet: float = DEFAULT_QUIET,
        sample_every: float = 1.0,
        log: logging.Logger | None = None,
    ) -> None:
        self.agent = agent
        self.node = node
        self.clock = clock
        self.grace = grace
        self.labels = labels
        self.taints = taints
        self.state = DrainState.SERVING
        self.entered_at = 0.0
        self._timer: Timer | None = None
        self._expired = False
        self.counter = counter
        self.quiet = quiet
        self.sample_every = sample_every
        self._moved = False
        self._watch: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._log = log or logging.getLogger("vipcast.drain")

    async def apply(self, plan: NodePlan) -> None:
        self.kick()

    def kick(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._settle())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self._stop_watch()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _events(self) -> list[DrainEvent]:
        inputs = self.agent.drain_inputs()
        if inputs is None:
            return []
        spec, base = inputs
        node = next((n for n in spec.nodes if n.metadata.name == self.node), None)
        wanted = wants_drain(node, self.labels, self.taints)
        events = [DrainEvent.DRAIN if wanted else DrainEvent.UNDRAIN]
        if self._expired:
            events.append(DrainEvent.GRACE_EXPIRED)
        if self._moved:
            events.append(DrainEvent.ROUTERS_MOVED)
        servable = self.agent.servable_now()
        if servable is None or all(s in servable for r in base.bgp for s in r.services):
            events.append(DrainEvent.HEALTH_VERIFIED)
        return events

    async def _settle(self) -> None:
        while True:
            self._again = False
            before = self.state
            for event in self._events():
                self.state = step(self.state, event)
            self._expired = self._moved = False
            if self.state is not before:
                self._entered(before)
                if self.state is DrainState.DRAINING:
                    self._start_watch()
                elif before is DrainState.DRAINING:
                    await self._stop_watch()
                await self.agent.set_drain(PHASE_OF[self.state], self.state.value)
            elif not self._again:
                return

    def _entered(self, before: DrainState) -> None:
        self.entered_at = self.clock.now()
        self._log.info("drain: %s -> %s", before.value, self.state.value)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = deadline_of(self.state, self.entered_at, self.grace)
        if deadline is not None:
            self._timer = self.clock.call_at(deadline, self._expire)

    def _start_watch(self) -> None:
        if self.counter is None or self.quiet <= 0:
            return
        inputs = self.agent.drain_inputs()
        addresses = _addresses(inputs[1]) if inputs is not None else []
        if addresses:
            self._watch = asyncio.get_running_loop().create_task(
                self._watch_counter(self.counter, addresses))

    async def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None

    async def _watch_counter(self, counter: ConnectionCounter, addresses: list[str]) -> None:
        """Sample the new-connection counter until it is quiet (ROUTERS_MOVED)."""
        try:
            counter.install(addresses)
        except (CounterError, OSError) as exc:
            self._log.warning("drain: no connection counter (%s): the grace ends the wait", exc)
            return
        samples: list[tuple[float, int]] = []
        try:
            while True:
                samples.append((self.clock.now(), counter.read()))
                if routers_moved(samples, self.quiet):
                    self._log.info(
                        "drain: routers moved (no new connection to %s for %gs, %d before)",
                        ", ".join(addresses), self.quiet, samples[-1][1])
                    self._moved = True
                    self.kick()
                    return
                await self.clock.sleep(self.sample_every)
        except (CounterError, OSError) as exc:
            self._log.warning("drain: connection counter failed (%s): the grace ends the wait",
                              exc)
        finally:
            with contextlib.suppress(CounterError, OSError):
                counter.remove()

    def _expire(self) -> None:
        self._timer = None
        self._expired = True
        self.kick()


def drain_driver(agent: Agent, options: AgentOptions) -> DrainDriver:
    """The node's drain driver on the loop's clock, wired as a plan consumer of ``agent``."""
    driver = DrainDriver(agent, options.node, LoopClock(), grace=options.drain_grace,
                         labels=options.drain_labels, taints=options.drain_taints,
                         counter=NewConnectionCounter(), quiet=options.drain_quiet)
    agent.add_consumer(driver)
    agent.config_watchers.append(driver.kick)
    return driver
