"""Ports: what the runtime's timer-driven code needs from the outside world, as protocols.

The pure core never reads a clock; the runtime's drivers (BFD timers, health-check schedules,
membership heartbeats) are handed a :class:`Clock` instead of calling the event loop or
``time`` themselves. Production passes :class:`vipcast.runtime.clock.LoopClock` (the running
asyncio loop's monotonic time); tests pass :class:`vipcast.runtime.clock.ManualClock` and move
time forward themselves instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A scheduled call (``asyncio.TimerHandle`` has this shape)."""

    def when(self) -> float: ...

    def cancel(self) -> None: ...

    def cancelled(self) -> bool: ...


class Clock(Protocol):
    """Monotonic seconds, timers and sleeps on one time line."""

    def now(self) -> float:
        """Seconds on this clock's monotonic time line."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback()`` once ``now() >= when`` (in the event loop)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...
