"""The one retry schedule (vipcast.core.backoff): exponential, capped, jitter only shortens."""

from __future__ import annotations

import random

import pytest

from vipcast.core.backoff import Backoff, backoff_delay


def test_doubles_up_to_the_cap_without_jitter() -> None:
    b = Backoff(base=1, cap=4, jitter=0, rng=random.Random(1))
    assert [b.next_delay() for _ in range(4)] == [1, 2, 4, 4]
    b.reset()
    assert b.next_delay() == 1


def test_jitter_stays_within_one_minus_jitter_and_one() -> None:
    b = Backoff(base=0.5, cap=30, jitter=0.2, rng=random.Random(7))
    for n in range(40):
        raw = min(30.0, 0.5 * 2**n)
        d = b.next_delay()
        assert raw * 0.8 <= d <= raw  # never above the cap


def test_seeded_rng_repeats_and_draw_edges() -> None:
    first = [Backoff(rng=random.Random(3)).next_delay() for _ in range(3)]
    assert first == [Backoff(rng=random.Random(3)).next_delay() for _ in range(3)]
    assert backoff_delay(2, base=1, cap=60, jitter=0.25, draw=0.0) == 4.0
    assert backoff_delay(2, base=1, cap=60, jitter=0.25, draw=1.0) == 3.0
    assert backoff_delay(10_000, base=1, cap=60, jitter=0, draw=0.5) == 60.0


def test_jitter_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff_delay(0, base=1, cap=2, jitter=1.5, draw=0.1)
