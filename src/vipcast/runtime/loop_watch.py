"""Notice when the agent's event loop did not run for a while, and say who held it.

BFD at 100 ms x 3 (and node liveness every 50 ms) needs the loop to run every few tens of
milliseconds. When a tick comes back late by :data:`REPORT_OVER` or more, one warning names the
stall and splits it by CPU time: what the loop thread itself ran (our own code blocked the loop:
a long callback, a collection), what other threads of the process ran (they held the GIL), and
the rest (the process was not scheduled at all: the machine's load). A session that BFD drops
right after such a line was dropped by that stall, not by the network.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

log = logging.getLogger("vipcast.loop")

#: how often the watch wakes (seconds)
PERIOD = 0.05
#: a tick this much later than asked is reported (seconds): a third of BFD's 300 ms
REPORT_OVER = 0.1


@dataclass(frozen=True)
class Stall:
    """A late tick: how late, and the CPU time spent meanwhile (seconds)."""

    late: float
    loop_thread_cpu: float
    process_cpu: float

    @property
    def other_threads_cpu(self) -> float:
        return max(0.0, self.process_cpu - self.loop_thread_cpu)

    @property
    def not_scheduled(self) -> float:
        return max(0.0, self.late + PERIOD - self.process_cpu)

    def describe(self) -> str:
        return (f"event loop stalled {self.late * 1000:.0f} ms: its own thread ran "
                f"{self.loop_thread_cpu * 1000:.0f} ms, other threads "
                f"{self.other_threads_cpu * 1000:.0f} ms, none ran (blocked in a call, or the OS "
                f"did not schedule the process) "
                f"{self.not_scheduled * 1000:.0f} ms")


async def watch_loop(period: float = PERIOD, report_over: float = REPORT_OVER) -> None:
    """Run until cancelled, logging each stall of ``report_over`` or more."""
    loop = asyncio.get_running_loop()
    while True:
        start, thread_cpu, process_cpu = loop.time(), time.thread_time(), time.process_time()
        await asyncio.sleep(period)
        late = loop.time() - start - period
        if late >= report_over:
            stall = Stall(late, time.thread_time() - thread_cpu,
                          time.process_time() - process_cpu)
            log.warning("%s", stall.describe())
