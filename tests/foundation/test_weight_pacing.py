"""Weight updates without flapping (core/weight_pacing.py, runtime/weight_pacer.py): at most
one weight change per route per interval, the last weight always wins, never a withdrawal."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from vipcast.core.desired import BGPRoute, NodePlan
from vipcast.core.weight_pacing import PacingState, link_bandwidth, pace
from vipcast.proto.bgp.ext_communities import LinkBandwidth, encode_link_bandwidth
from vipcast.runtime.clock import ManualClock
from vipcast.runtime.weight_pacer import WeightPacer

INTERVAL = 5.0
OTHER = 0x0002_FDE8_0000_0001  # a route target: not a link bandwidth, never held


def route(weight: int | None, prefix: str = "192.0.2.1/32", lp: int | None = None) -> BGPRoute:
    ext = (OTHER,) if weight is None else (
        OTHER, encode_link_bandwidth(LinkBandwidth(65000, weight * 125_000.0)))
    return BGPRoute(prefix, ("r",), local_pref=lp, extended_communities=ext)


def plan(*routes: BGPRoute) -> NodePlan:
    return NodePlan(node="n1", bgp=tuple(routes))


def test_first_change_passes_then_a_burst_is_held_and_the_last_wins() -> None:
    state = PacingState()
    out, state, due = pace(plan(route(1)), state, 100.0, INTERVAL)
    assert link_bandwidth(out.bgp[0]) == link_bandwidth(route(1)) and due is None
    # after the interval: the change passes at once
    out, state, due = pace(plan(route(2)), state, 106.0, INTERVAL)
    assert link_bandwidth(out.bgp[0]) == link_bandwidth(route(2)) and due is None
    # a burst inside the hold-down: the route stays, with the weight last sent
    for t, w in ((107.0, 3), (108.0, 4), (109.0, 5)):
        out, state, due = pace(plan(route(w, lp=w)), state, t, INTERVAL)
        assert len(out.bgp) == 1 and due == 111.0
        assert link_bandwidth(out.bgp[0]) == link_bandwidth(route(2))
        assert out.bgp[0].local_pref == w  # every other attribute is the new one
    # the deadline: the newest weight goes out
    out, state, due = pace(plan(route(5, lp=5)), state, 111.0, INTERVAL)
    assert out.bgp[0] == route(5, lp=5) and due is None


def test_appearing_and_withdrawn_routes_are_never_delayed() -> None:
    state = PacingState()
    _, state, _ = pace(plan(route(1)), state, 0.0, INTERVAL)
    out, state, due = pace(plan(route(2), route(7, "192.0.2.2/32")), state, 1.0, INTERVAL)
    assert [r.prefix for r in out.bgp] == ["192.0.2.1/32", "192.0.2.2/32"]
    assert out.bgp[1] == route(7, "192.0.2.2/32") and due == 5.0  # the new one as it is
    out, state, due = pace(plan(route(7, "192.0.2.2/32")), state, 2.0, INTERVAL)
    assert [r.prefix for r in out.bgp] == ["192.0.2.2/32"] and due is None
    # withdrawn, then announced again: a new route, its weight at once
    out, state, _ = pace(plan(route(9)), state, 3.0, INTERVAL)
    assert out.bgp == (route(9),)


def test_nothing_held_returns_the_same_objects() -> None:
    p = plan(route(1), route(None, "192.0.2.9/32"))
    out, state, _ = pace(p, PacingState(), 0.0, INTERVAL)
    assert out is p
    again = plan(*p.bgp)
    out2, _, _ = pace(again, state, 1.0, INTERVAL)
    assert out2 is again and all(a is b for a, b in zip(out2.bgp, p.bgp, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 3.0), st.integers(1, 6)), min_size=1, max_size=40))
def test_a_burst_gives_at_most_one_weight_update_per_interval_and_the_last_wins(
    burst: list[tuple[float, int]],
) -> None:
    """Endpoint changes at arbitrary gaps; the edge calls again at each deadline. Each change
    of the announced route is one UPDATE: weight changes are at least INTERVAL apart, the
    route is never absent, and once the burst is over the last desired weight is out."""
    state = PacingState()
    t = 0.0
    sent: list[tuple[float, int | None]] = []
    due: float | None = None

    def emit(at: float, p: NodePlan) -> None:
        nonlocal state, due
        out, state, due = pace(p, state, at, INTERVAL)
        assert len(out.bgp) == 1  # never withdrawn
        lb = link_bandwidth(out.bgp[0])
        if not sent or sent[-1][1] != lb:
            sent.append((at, lb))

    last = 0
    for gap, weight in burst:
        target = t + gap
        while due is not None and due <= target:  # the timer fires first
            emit(due, plan(route(last)))
        t, last = target, weight
        emit(t, plan(route(weight)))
    while due is not None:
        emit(due, plan(route(last)))
    times = [at for at, _ in sent]
    assert all(b - a >= INTERVAL - 1e-9 for a, b in itertools.pairwise(times))
    assert sent[-1][1] == link_bandwidth(route(last))


def test_the_edge_timer_sends_the_held_weight_at_the_deadline() -> None:
    async def main() -> None:
        clock = ManualClock(start=0.0)
        due: list[float] = []
        pacer = WeightPacer(clock, lambda: due.append(clock.now()), INTERVAL)
        assert pacer.pace(plan(route(1))).bgp == (route(1),)
        await clock.advance(1.0)
        held = pacer.pace(plan(route(3)))
        assert link_bandwidth(held.bgp[0]) == link_bandwidth(route(1))
        held = pacer.pace(plan(route(4)))  # one timer, not two
        await clock.advance(3.0)
        assert due == []
        await clock.advance(1.5)
        assert due == [5.0]
        assert pacer.pace(plan(route(4))).bgp == (route(4),)
        await clock.advance(60.0)
        assert due == [5.0]
        # interval 0: unpaced
        assert WeightPacer(clock, lambda: None, 0.0).pace(plan(route(2))).bgp == (route(2),)
        pacer.stop()

    asyncio.run(main())


def test_replace_keeps_a_held_route_comparable() -> None:
    a = route(2)
    assert replace(a, local_pref=None) == a
