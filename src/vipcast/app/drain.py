"""The edge of node drains: feeds the pure state machine (:mod:`vipcast.core.drain`) its
events and runs its one timer on the injectable Clock.

- drain / undrain come from the Node object in the config (annotation ``vipcast.io/drain``
  or a drain label, :func:`~vipcast.core.drain.wants_drain`), seen with every plan;
- GRACE_EXPIRED comes from a timer armed when DRAINING starts;
- HEALTH_VERIFIED when, undraining, every service of the node's routes is servable again
  (the announcement policy's verified set; no gating without a data plane).

The driver is a plan consumer that never awaits the agent from inside ``apply`` (the agent is
publishing then): it only schedules :meth:`_settle`, one task at a time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from vipcast.core.desired import NodePlan
from vipcast.core.drain import (
    DEFAULT_DRAIN_LABELS,
    DEFAULT_GRACE,
    PHASE_OF,
    DrainEvent,
    DrainState,
    Phase,
    deadline_of,
    step,
    wants_drain,
)
from vipcast.core.pipeline import Local
from vipcast.core.ports import Clock, Timer
from vipcast.runtime.clock import LoopClock
from vipcast.spec import Spec

if TYPE_CHECKING:
    from vipcast.app.agent import Agent, AgentOptions


class Drainable(Protocol):
    """What the driver needs of the agent."""

    local: Local

    def drain_inputs(self) -> tuple[Spec, NodePlan] | None: ...

    async def set_drain(self, phase: Phase, state: str) -> None: ...


class DrainDriver:
    def __init__(
        self,
        agent: Drainable,
        node: str,
        clock: Clock,
        *,
        grace: float = DEFAULT_GRACE,
        labels: tuple[str, ...] = DEFAULT_DRAIN_LABELS,
        log: logging.Logger | None = None,
    ) -> None:
        self.agent = agent
        self.node = node
        self.clock = clock
        self.grace = grace
        self.labels = labels
        self.state = DrainState.SERVING
        self.entered_at = 0.0
        self._timer: Timer | None = None
        self._expired = False
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
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _events(self) -> list[DrainEvent]:
        inputs = self.agent.drain_inputs()
        if inputs is None:
            return []
        spec, base = inputs
        node = next((n for n in spec.nodes if n.metadata.name == self.node), None)
        events = [DrainEvent.DRAIN if wants_drain(node, self.labels) else DrainEvent.UNDRAIN]
        if self._expired:
            events.append(DrainEvent.GRACE_EXPIRED)
        servable = self.agent.local.servable
        if servable is None or all(s in servable for r in base.bgp for s in r.services):
            events.append(DrainEvent.HEALTH_VERIFIED)
        return events

    async def _settle(self) -> None:
        while True:
            self._again = False
            before = self.state
            for event in self._events():
                self.state = step(self.state, event)
            self._expired = False
            if self.state is not before:
                self._entered(before)
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

    def _expire(self) -> None:
        self._timer = None
        self._expired = True
        self.kick()


def drain_driver(agent: Agent, options: AgentOptions) -> DrainDriver:
    """The node's drain driver on the loop's clock, wired as a plan consumer of ``agent``."""
    driver = DrainDriver(agent, options.node, LoopClock(),
                         grace=options.drain_grace)
    agent.add_consumer(driver)
    agent.config_watchers.append(driver.kick)
    return driver
