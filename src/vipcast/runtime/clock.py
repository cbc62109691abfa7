"""Clocks for the runtime's timer-driven code (see :mod:`vipcast.core.ports`).

- :class:`LoopClock`: the running asyncio loop's monotonic time, ``call_at`` and ``sleep``
  (production).
- :class:`ManualClock`: time that moves only when told (:meth:`ManualClock.advance`), for
  tests that would otherwise sleep. Timers and sleeps registered on it fire in deadline order
  as time is advanced past them, each followed by a turn of the event loop so the tasks they
  wake run before the next one fires.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from vipcast.core.ports import Clock, Timer

__all__ = ["Clock", "LoopClock", "ManualClock", "Timer"]


class LoopClock:
    """The running event loop's clock (``loop.time()``, ``loop.call_at``, ``asyncio.sleep``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def _running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self._running().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self._running().call_at(when, callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class _ManualTimer:
    _when: float
    callback: Callable[[], None]
    _cancelled: bool = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


@dataclass
class ManualClock:
    """A clock that stands still until :meth:`advance` moves it (tests only need this)."""

    start: float = 1000.0
    _now: float = field(init=False)
    _queue: list[tuple[float, int, _ManualTimer]] = field(default_factory=list, init=False)
    _seq: itertools.count[int] = field(default_factory=itertools.count, init=False)

    def __post_init__(self) -> None:
        self._now = self.start

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._queue, (when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_at(self._now + max(0.0, seconds), wake)
        try:
            await woken
        finally:
            timer.cancel()

    def pending(self) -> int:
        """Timers and sleeps still waiting."""
        return sum(1 for _, _, t in self._queue if not t.cancelled())

    async def settle(self, turns: int = 5) -> None:
        """Let the event loop run what is ready now (no time passes)."""
        for _ in range(turns):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers in order on the way."""
        until = self._now + seconds
        await self.settle()
        while self._queue and self._queue[0][0] <= until:
            when, _, timer = heapq.heappop(self._queue)
            if timer.cancelled():
                continue
            self._now = max(self._now, when)
            timer.callback()
            await self.settle()
        self._now = until
        await self.settle()
