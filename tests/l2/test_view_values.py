"""The view's compact values: the serving map equals the dict it stands for (an entry per alive
member, an empty set for one that serves nothing), and members run in one process share equal
alive sets without changing what any of them sees."""

from __future__ import annotations

import pytest

from vipcast.lab.membership_sim import Simulation, swim_members, warm_start
from vipcast.proto.membership import Interner, Timers
from vipcast.proto.membership.view import ServingMap


def test_the_serving_map_equals_the_dict_it_stands_for() -> None:
    alive = frozenset({"a", "b", "c"})
    sets = {"a": frozenset({"192.0.2.1"}), "b": frozenset(), "gone": frozenset({"192.0.2.9"})}
    m = ServingMap(alive, sets)
    plain = {"a": frozenset({"192.0.2.1"}), "b": frozenset(), "c": frozenset()}
    assert m == plain and plain == m and dict(m) == plain
    assert len(m) == 3 and set(m) == set(alive) and "c" in m and "gone" not in m
    assert m["b"] == frozenset() and m.get("gone") is None
    with pytest.raises(KeyError):
        m["gone"]
    assert m == ServingMap(alive, {"a": frozenset({"192.0.2.1"})})
    assert m != ServingMap(alive, {"a": frozenset({"192.0.2.2"})})
    assert m != {**plain, "d": frozenset()}


def test_equal_alive_sets_are_held_once_and_the_interner_stays_bounded() -> None:
    intern = Interner(size=2)
    first = intern(frozenset({"a", "b"}))
    assert intern(frozenset({"b", "a"})) is first
    intern(frozenset({"c"}))
    intern(frozenset({"d"}))  # evicts the least recently asked for: {"a", "b"}
    again = frozenset({"a", "b"})
    assert intern(again) is again
    assert len(intern._values) == 2


def test_simulated_members_share_their_alive_set_and_see_the_same() -> None:
    members = swim_members(5, Timers.lan(5))
    warm_start(members)
    sim = Simulation(members)
    sim.start_all(announce=False)
    sim.run_until(0.5)
    alive = [m.view.alive for m in members.values()]
    assert all(a == frozenset(members) for a in alive)
    assert len({id(a) for a in alive}) == 1
    sim.kill("n00003")
    sim.run_until(2.0)
    alive = [members[name].view.alive for name in sorted(sim.up)]
    assert all(a == frozenset(members) - {"n00003"} for a in alive)
    assert len({id(a) for a in alive}) == 1
