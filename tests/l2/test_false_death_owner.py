"""A false death of the L2 owner (its agent not scheduled for longer than the stall tolerance,
docs/membership.md "What a stall costs"), played on the real membership protocol with the
simulator's fake clock: the next candidate takes the VIP while the owner is frozen; when the
owner runs again it refutes, and the VIP goes back to it.

Two nodes answer for the VIP only while the owner's refutation is on its way (one datagram):
a node never sees the refuted owner alive again without its serving set. Before, a death made
every member forget the dead member's serving set, so the refutation brought it back alive and
serving nothing: the node that had taken over kept the VIP (two owners) until it had pulled
the set again, a round trip that a loaded machine stretched past the pull's nonce lifetime
(tests/kube/test_e2e_l2.py saw both survivors answer ARP)."""

from __future__ import annotations

import pytest
from swim_cluster import KEY, cluster, member, swim

from vipcast.core.desired import L2Ownership
from vipcast.core.l2owner import announce_again, owner_of
from vipcast.lab.membership_sim import Simulation
from vipcast.proto.membership import Kind, decode

VIP = "192.0.2.50"
NAMES = ("n0", "n1", "n2")
OWNERSHIP = L2Ownership(VIP, (), "n0", NAMES)


def _serving_cluster(seed: int) -> Simulation:
    sim = cluster(3, seed=seed)
    for name in NAMES:
        sim.set_serving(name, [VIP])
    sim.run_until(sim.now + 1.0)
    for name in NAMES:
        assert owner_of(OWNERSHIP, swim(sim, name).view) == "n0"
    return sim


def _owners(sim: Simulation) -> set[str]:
    """The nodes that answer for the VIP now: each one that is its owner in its own view."""
    return {n for n in NAMES if owner_of(OWNERSHIP, swim(sim, n).view) == n}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_a_false_death_the_owner_is_back_with_its_set_and_only_one_node_answers(
    seed: int,
) -> None:
    sim = _serving_cluster(seed)
    timers = swim(sim, "n0").timers
    before = swim(sim, "n0").view
    stall = 4 * timers.stall_tolerance()  # well past the tolerance: a false death
    frozen_from = sim.now + 0.01
    sim.stall("n0", frozen_from, stall)
    thawed = frozen_from + stall
    sim.run_until(thawed - 0.001)
    assert {(o, m) for o, m, _ in sim.false_deaths} == {("n1", "n0"), ("n2", "n0")}
    # while n0 is frozen (it answers nothing), n1 has taken the VIP in every running view
    assert owner_of(OWNERSHIP, swim(sim, "n1").view) == "n1"
    assert owner_of(OWNERSHIP, swim(sim, "n2").view) == "n1"

    # the owner runs again: step the simulation finely and watch every view
    two_owners: list[float] = []
    step = 0.001
    while sim.now < thawed + 0.5:
        sim.run_until(sim.now + step)
        owners = _owners(sim)
        if len(owners) > 1:
            two_owners.append(sim.now)
        for name in ("n1", "n2"):
            view = swim(sim, name).view
            if "n0" in view.alive:
                # the behaviour that keeps a second owner away: n0 is never alive in a view
                # without the VIP it serves
                assert view.serving is not None and VIP in view.serving["n0"], (
                    name, sim.now - thawed, view.serving)
    assert _owners(sim) == {"n0"}
    assert all(owner_of(OWNERSHIP, swim(sim, n).view) == "n0" for n in NAMES)
    # n0 never lost the VIP in its own view, but its view says it refuted (its incarnation
    # rose): n1 announced the VIP meanwhile, so n0 must announce it again (docs/l2.md)
    after = swim(sim, "n0").view
    assert after.incarnation > before.incarnation
    assert announce_again(before, after, frozenset({VIP})) == {VIP}
    # the second owner lasts until n1 reads n0's refutation: at most one network delay after
    # n0 ran again (on the simulated LAN, well under a millisecond plus one step)
    assert len(two_owners) * step <= 2 * (sim.network.latency + sim.network.jitter) + 2 * step, (
        two_owners)


def test_a_pull_answered_later_than_the_retry_interval_still_counts() -> None:
    """On a loaded machine a round trip can take longer than ``request_timeout`` (after which
    the pull is sent again): the late answer still brings the set (it echoes a nonce of ours,
    so it is fresh), instead of being refused as stale on every try. Two members driven by
    hand; n0's set changes by more than a delta carries, so n1 has to pull it."""
    names = frozenset({"a", "b"})
    a, b = member("a", names, boot=1000), member("b", names, boot=1001)
    now = 0.0
    a.start(now)
    b.start(now)

    def exchange(until: float, hold: frozenset[Kind] = frozenset()) -> list[bytes]:
        """Deliver at once every datagram but b's of ``hold`` kinds (returned)."""
        nonlocal now
        held: list[bytes] = []
        while now < until:
            now += 0.005
            for sender, receiver in ((a, b), (b, a)):
                sender.tick(now)
                for _, data in sender.datagrams_to_send():
                    head = decode(data, KEY, receiver.node)
                    if sender is b and head is not None and head.kind in hold:
                        held.append(data)
                    else:
                        receiver.receive(data, now)
        return held

    exchange(1.0)
    assert a.view.alive == b.view.alive == names
    many = [f"2001:db8::{i:x}" for i in range(1, 40)]  # more than a delta carries
    a.set_serving(many, now)
    pulls = exchange(now + 0.1, hold=frozenset({Kind.PULL}))
    assert pulls, "b did not pull a's set"
    # the first pull reaches a, and its answer reaches b, 1.5 retry intervals later (both ran
    # their timers meanwhile and talked; b's pulls sent again are lost too)
    retries = exchange(now + 1.5 * b.timers.request_timeout, hold=frozenset({Kind.PULL}))
    assert retries, "b did not pull again"
    assert b.view.serving is not None and b.view.serving["a"] != frozenset(many)
    a.receive(pulls[0], now)
    for _, data in a.datagrams_to_send():
        b.receive(data, now)
    assert b.view.serving is not None and b.view.serving["a"] == frozenset(many)


def test_no_announcement_again_without_a_refutation() -> None:
    """A view change that is no refutation of this node (here: a peer's serving set) asks for
    no announcement beyond those of newly taken VIPs."""
    sim = _serving_cluster(1)
    before = swim(sim, "n0").view
    sim.set_serving("n2", [])
    sim.run_until(sim.now + 0.5)
    after = swim(sim, "n0").view
    assert after != before and after.incarnation == before.incarnation
    assert announce_again(before, after, frozenset({VIP})) == frozenset()
