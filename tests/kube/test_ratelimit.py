"""The controller's client-side status-write limit (sources/kube/ratelimit.py), on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from vipcast.sources.kube.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_qps_in_order() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=10.0, burst=3, clock=clock)
    waits = [bucket.reserve() for _ in range(6)]
    # the burst goes at once; later callers queue 0.1 s apart, each behind the one before
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])
    assert bucket.taken == 6


def test_rate_holds_over_a_window_and_refills_to_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=5.0, burst=2, clock=clock)
    clock.now += 60.0  # idle for a minute: still only `burst` tokens
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.2])
    clock.now += 0.2
    # 100 takes over 10 s of clock: never more than qps * 10 + burst granted without waiting
    granted = 0
    for _ in range(100):
        if bucket.reserve() == 0.0:
            granted += 1
        clock.now += 0.1
    assert granted <= 5 * 10 + 2


def test_no_limit_and_bad_burst() -> None:
    bucket = TokenBucket(qps=0.0, burst=1)
    assert all(bucket.reserve() == 0.0 for _ in range(1000))
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(qps=1.0, burst=0)


def test_take_sleeps_for_the_reserved_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=1000.0, burst=1, clock=clock)

    async def two() -> None:
        await bucket.take()
        await bucket.take()  # 1 ms on the real loop
    asyncio.run(two())
    assert bucket.waited == pytest.approx(0.001)
