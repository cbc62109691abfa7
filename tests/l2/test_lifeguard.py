"""Lifeguard's additions to the SWIM membership: dynamic suspicion (starts long, shrinks as
other members confirm it), local health (a member that sees its own slowness probes more
slowly), and the stall tolerance they leave: a member stalled for less than
``Timers.stall_tolerance()`` is never declared dead, a longer one is."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swim_cluster import cluster, swim

from vipcast.proto.membership import State, Timers


def test_suspicion_starts_at_its_maximum_and_shrinks_on_a_log_curve_to_its_minimum() -> None:
    t = Timers.lan(16)
    low = t.suspicion_timeout(16)
    high = low * t.suspicion_max_mult
    k = t.suspicion_confirmations
    values = [t.suspicion_after(16, c) for c in range(k + 3)]
    assert values[0] == pytest.approx(high)
    assert values[k] == pytest.approx(low)
    assert values[k + 2] == pytest.approx(low)  # never below the minimum
    assert all(a > b for a, b in itertools.pairwise(values[: k + 1]))
    # the formula: max - (max - min) * log(c + 1) / log(k + 1)
    assert values[1] == pytest.approx(high - (high - low) * math.log(2) / math.log(k + 1))


def test_without_lifeguard_the_suspicion_is_fixed_and_tiny_clusters_expect_no_confirmation() -> (
    None
):
    t = Timers.lan(16)
    assert t.swim().suspicion_after(16, 0) == pytest.approx(t.suspicion_timeout(16))
    assert t.swim().awareness_max == 1
    # 3 members: one other member could confirm, at most
    assert t.suspicion_after(3, 1) == pytest.approx(t.suspicion_timeout(3))
    assert t.suspicion_after(2, 0) == pytest.approx(t.suspicion_timeout(2))


def test_a_late_tick_raises_local_health_and_stretches_probing_then_it_recovers() -> None:
    sim = cluster(3)
    a = swim(sim, "n0")
    assert a.health == 0
    due = a.next_deadline()
    assert due is not None
    a.tick(due + 0.3)  # this member stalled
    assert a.health == 1
    sim.run_until(sim.now + 0.05)  # (the simulator drives the others; a is driven by hand)
    interval = a._probe_interval()
    assert interval == pytest.approx(2 * a.timers.probe_interval)
    # probes answered in time bring the score back to 0
    sim2 = cluster(3, seed=2)
    b = swim(sim2, "n0")
    b.health = 3
    sim2.run_until(sim2.now + 2.0)
    assert b.health == 0


def test_a_suspicion_confirmed_by_others_runs_out_sooner() -> None:
    sim = cluster(5)
    a = swim(sim, "n0")
    sim.kill("n4")
    for _ in range(400):
        sim.run_until(sim.now + 0.005)
        if a.members["n4"].state == State.SUSPECT:
            break
    assert a.members["n4"].state == State.SUSPECT
    began, _, accusers = a._accusers["n4"]
    first = a._suspects["n4"]
    assert first - began == pytest.approx(
        a.timers.suspicion_after(5, len(accusers) - 1))
    sim.run_until(sim.now + 3.0)
    assert a.members["n4"].state == State.DEAD


@settings(max_examples=10, deadline=None)
@given(st.integers(3, 8), st.integers(0, 2**32), st.floats(0.0, 1.0), st.floats(0.0, 0.9))
def test_a_member_stalled_for_less_than_the_tolerance_is_never_declared_dead(
    count: int, seed: int, start: float, fraction: float
) -> None:
    sim = cluster(count, seed=seed)
    timers = swim(sim, "n0").timers
    # the tolerance minus a network round trip (latency + jitter, both ways) and a margin
    net = 2 * (sim.network.latency + sim.network.jitter)
    longest = timers.stall_tolerance() - net - 0.005
    victim = f"n{seed % count}"
    sim.stall(victim, sim.now + start, fraction * longest)
    sim.stall(victim, sim.now + start + 1.5, longest)
    sim.run_until(sim.now + start + 4.0)
    assert sim.false_deaths == []
    assert all(len(swim(sim, n).view.alive) == count for n in sim.up)


def test_a_member_stalled_well_past_the_tolerance_is_declared_dead_and_comes_back() -> None:
    """The other side of the tolerance: a stall cannot be told from a crash while it lasts."""
    sim = cluster(5)
    timers = swim(sim, "n0").timers
    sim.stall("n3", sim.now + 0.01, 4 * timers.suspicion_after(5, 0) + 1.0)
    sim.run_until(sim.now + 6.0)
    assert {m for _, m, _ in sim.false_deaths} == {"n3"}
    assert all(len(swim(sim, n).view.alive) == 5 for n in sim.up)  # it refuted
