"""The edge of weight pacing (:mod:`vipcast.core.weight_pacing`): the clock and the one timer.

The agent hands every plan it is about to announce through :meth:`WeightPacer.pace`; when a
weight is held, a timer on the injectable Clock calls ``on_due`` at the deadline, and the
agent plans again from what it has in memory (the newest desired weight then goes out).
"""

from __future__ import annotations

from collections.abc import Callable

from vipcast.core.desired import NodePlan
from vipcast.core.ports import Clock, Timer
from vipcast.core.weight_pacing import DEFAULT_INTERVAL, PacingState, pace


class WeightPacer:
    def __init__(self, clock: Clock, on_due: Callable[[], None],
                 interval: float = DEFAULT_INTERVAL) -> None:
        self.clock = clock
        self.on_due = on_due
        self.interval = interval
        self.state = PacingState()
        self._timer: Timer | None = None

    def pace(self, plan: NodePlan) -> NodePlan:
        """``plan`` as it may go out now (held weights kept); arms the timer for the rest."""
        if self.interval <= 0:
            return plan
        out, self.state, deadline = pace(plan, self.state, self.clock.now(), self.interval)
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None:
            self._timer = self.clock.call_at(deadline, self._due)
        return out

    def _due(self) -> None:
        self._timer = None
        self.on_due()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
