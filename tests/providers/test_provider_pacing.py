"""The providers controller's pacing: resync and retry delays drawn from the ``rng`` passed
in (seeded: the same delays every run), the driver's retry_after doubled per consecutive
failing pass up to the resync, and reset by a clean pass."""

from __future__ import annotations

import random

from vipcast.app.provider_controller import JITTER, PassResult, ProviderController


def _ctl(seed: int) -> ProviderController:
    return ProviderController(None, "vipcast-system", resync=30.0, rng=random.Random(seed))


def _retry(after: float) -> PassResult:
    return PassResult(retry_after=after)


def test_same_seed_same_delays_and_jitter_only_shortens() -> None:
    results = [PassResult(), _retry(2.0), _retry(2.0), None, PassResult()]
    one, two = _ctl(7), _ctl(7)
    a = [one.next_wait(r) for r in results]
    b = [two.next_wait(r) for r in results]
    assert a == b
    assert a != [_ctl(8).next_wait(r) for r in results]
    clean = a[0]
    assert 30.0 * (1 - JITTER) <= clean <= 30.0


def test_retry_backs_off_exponentially_up_to_the_resync_then_resets() -> None:
    ctl = ProviderController(None, "ns", resync=30.0, rng=random.Random(1))
    waits = [ctl.next_wait(_retry(2.0)) for _ in range(6)]
    for attempt, wait in enumerate(waits):
        top = min(30.0, 2.0 * 2 ** attempt)
        assert top * (1 - JITTER) <= wait <= top, (attempt, wait)
    assert ctl.failed_passes == 6
    assert ctl.next_wait(PassResult()) >= 30.0 * (1 - JITTER)
    assert ctl.failed_passes == 0
    assert ctl.next_wait(_retry(2.0)) <= 2.0  # the schedule starts again


def test_a_pass_that_failed_as_a_whole_retries_soon_and_backs_off() -> None:
    ctl = ProviderController(None, "ns", resync=30.0, rng=random.Random(3))
    first, second = ctl.next_wait(None), ctl.next_wait(None)
    assert first <= 2.0 < 4.0 * (1 - JITTER) <= second <= 4.0


def test_a_driver_asking_for_more_than_the_resync_waits_the_resync() -> None:
    ctl = ProviderController(None, "ns", resync=30.0, rng=random.Random(4))
    assert 30.0 * (1 - JITTER) <= ctl.next_wait(_retry(300.0)) <= 30.0
