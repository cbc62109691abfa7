"""The controller's status-write pipeline (app/controller.py WritePipeline): writes start in
submission order, never more than ``width`` in flight, and every outcome counts."""

from __future__ import annotations

import asyncio

from vipcast.app.controller import RoundReport
from vipcast.app.status_writes import WritePipeline


def test_order_width_and_counts() -> None:
    started: list[int] = []
    in_flight = 0
    most = 0

    async def write(i: int) -> bool:
        nonlocal in_flight, most
        started.append(i)
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001 * (i % 3))  # they finish out of order
        in_flight -= 1
        return i % 5 != 0  # every fifth fails

    async def run() -> RoundReport:
        report = RoundReport()
        pipe = WritePipeline(4, report)
        for i in range(20):
            await pipe.submit(write(i))
            assert len(pipe.pending) <= 4
        await pipe.drain()
        assert not pipe.pending
        return report

    report = asyncio.run(run())
    assert started == list(range(20))
    assert most == 4
    assert (report.written, report.failed_writes) == (16, 4)


def test_width_one_is_one_at_a_time_and_cancel_stops_the_rest() -> None:
    log: list[str] = []

    async def run() -> list[str]:
        never = asyncio.Event()

        async def write(i: int) -> bool:
            log.append(f"start {i}")
            if i == 2:
                await never.wait()
            log.append(f"end {i}")
            return True

        report = RoundReport()
        pipe = WritePipeline(1, report)
        await pipe.submit(write(0))
        await pipe.submit(write(1))  # waits for 0
        await pipe.submit(write(2))
        await asyncio.sleep(0.01)
        pending = list(pipe.pending)
        pipe.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        assert all(t.cancelled() for t in pending)
        assert report.written == 2
        return log

    assert asyncio.run(run()) == ["start 0", "end 0", "start 1", "end 1", "start 2"]
