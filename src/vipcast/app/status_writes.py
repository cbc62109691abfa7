"""The controller's Service status writes of one round, pipelined.

Started in submission order, at most ``width`` in flight (each write takes its token from the
client-side limit itself, so the rate holds), each outcome counted into the round's report.
One at a time, a cold start over 50,000 Services ran at the round-trip rate of a server-side
apply plus an Event create (~40/s on the test API server), not at the configured limit
(docs/scale.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Protocol


class Counts(Protocol):
    written: int
    failed_writes: int


class WritePipeline:
    """Status writes of one round, started in submission order with at most ``width`` in
    flight; each outcome counts into the round's report (written / failed)."""

    def __init__(self, width: int, report: Counts) -> None:
        self.width = max(1, width)
        self.report = report
        self.pending: set[asyncio.Task[bool]] = set()

    async def submit(self, write: Coroutine[object, object, bool]) -> None:
        while len(self.pending) >= self.width:
            await self._reap(asyncio.FIRST_COMPLETED)
        self.pending.add(asyncio.ensure_future(write))

    async def drain(self) -> None:
        while self.pending:
            await self._reap(asyncio.ALL_COMPLETED)

    async def _reap(self, when: str) -> None:
        done, self.pending = await asyncio.wait(self.pending, return_when=when)
        for task in done:
            ok = task.result()
            self.report.written += ok
            self.report.failed_writes += not ok

    def cancel(self) -> None:
        """Stop what is still in flight (the round was cancelled or failed)."""
        for task in self.pending:
            task.cancel()
