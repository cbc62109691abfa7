"""Ownership follows servability: members declare the VIPs they can serve now, every member
learns them through the membership protocol, and all agree on the owner."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from swim_cluster import KEY, cluster, member, swim

from vipcast.core.desired import L2Ownership
from vipcast.core.l2owner import choose_owner, owned_here, owner_of
from vipcast.lab.membership_sim import Simulation
from vipcast.proto.membership import MAX_SERVING, Kind, Rumor, Verdict, View, decode

MEMBERS = frozenset({"n0", "n1", "n2"})
VIP = L2Ownership("192.0.2.50", ("eth0",), "n0", ("n0", "n1", "n2"))
VIP6 = L2Ownership("2001:db8::50", ("eth0",), "n1", ("n1", "n2", "n0"))


def views(sim: Simulation, settle: float = 0.5) -> dict[str, View]:
    sim.run_until(sim.now + settle)
    return {name: swim(sim, name).view for name in sorted(sim.up)}


def test_owner_is_first_alive_candidate_that_can_serve() -> None:
    alive = MEMBERS
    serving = {"n0": frozenset(), "n1": frozenset({"192.0.2.50"}), "n2": frozenset({"192.0.2.50"})}
    assert choose_owner(VIP.candidates, alive, serving, "192.0.2.50") == "n1"
    assert choose_owner(VIP.candidates, alive, {"n0": frozenset()}, "192.0.2.50") is None
    assert choose_owner(VIP.candidates, alive) == "n0"  # servability not considered


def test_every_node_agrees_and_the_owner_moves_when_it_cannot_serve() -> None:
    both = ("192.0.2.50", "2001:db8::50")
    sim = cluster(3)
    for name in sorted(MEMBERS):
        sim.set_serving(name, both)
    seen = views(sim)
    assert {n: owner_of(VIP, v) for n, v in seen.items()} == dict.fromkeys(MEMBERS, "n0")
    assert {n: owner_of(VIP6, v) for n, v in seen.items()} == dict.fromkeys(MEMBERS, "n1")
    # n0 loses its last healthy backend for the v4 VIP: it drops it at once, locally ...
    sim.set_serving("n0", ("2001:db8::50",))
    assert owned_here([VIP, VIP6], "n0", swim(sim, "n0").view) == ()
    # ... and the others move it as soon as they hear; nobody else changes
    seen = views(sim)
    assert {n: owner_of(VIP, v) for n, v in seen.items()} == dict.fromkeys(MEMBERS, "n1")
    assert {n: owner_of(VIP6, v) for n, v in seen.items()} == dict.fromkeys(MEMBERS, "n1")
    # recovery: n0 takes it back (preemptive, as with liveness)
    sim.set_serving("n0", both)
    seen = views(sim)
    assert {n: owner_of(VIP, v) for n, v in seen.items()} == dict.fromkeys(MEMBERS, "n0")


def test_a_fresh_agent_serves_nothing_until_it_declares() -> None:
    sim = cluster(3)
    sim.set_serving("n1", ("192.0.2.50",))
    seen = views(sim)
    assert {n: owner_of(VIP, v) for n, v in seen.items()} == dict.fromkeys(MEMBERS, "n1")


def test_nobody_serves_nobody_answers() -> None:
    seen = views(cluster(3))
    assert all(owner_of(VIP, v) is None for v in seen.values())


def test_leaving_clears_the_serving_set() -> None:
    sim = cluster(3)
    sim.set_serving("n1", ("192.0.2.50",))
    assert swim(sim, "n0").view.serving is not None
    views(sim)
    assert swim(sim, "n0").view.serving["n1"] == {"192.0.2.50"}  # type: ignore[index]
    swim(sim, "n1").leave(sim.now)
    sim._after("n1")
    sim.kill("n1")
    view = views(sim, 0.05)["n0"]
    assert view.serving is not None and "n1" not in view.serving


def test_serving_change_is_a_view_change() -> None:
    sim = cluster(3)
    a = swim(sim, "n0")
    assert swim(sim, "n1").set_serving(("192.0.2.50",), sim.now)
    sim._after("n1")
    before = a.view
    views(sim)
    assert a.view != before or a.view.serving != before.serving


def test_serving_set_is_capped_fail_closed() -> None:
    many = [f"198.18.{i // 256}.{i % 256}" for i in range(MAX_SERVING + 10)]
    a = member("a", frozenset({"a"}), boot=1)
    a.start(0.0)
    a.set_serving(many, 0.0)
    assert len(a.serving) == MAX_SERVING


nodes = st.sampled_from(["a", "b", "c", "d", "e"])


@given(
    st.lists(nodes, min_size=1, max_size=5, unique=True),
    st.frozensets(nodes, max_size=5),
    st.dictionaries(nodes, st.frozensets(st.sampled_from(["192.0.2.50", "192.0.2.51"]))),
    st.booleans(),
)
def test_one_owner_at_most_and_only_an_alive_serving_one(
    candidates: list[str],
    alive: frozenset[str],
    serving: dict[str, frozenset[str]],
    quorum: bool,
) -> None:
    """Under one view, at most one node owns each VIP, and it is an alive candidate that
    declared the VIP; if any such candidate exists, one owns it (given a quorum)."""
    vips = [L2Ownership(ip, (), candidates[0], tuple(candidates)) for ip in ("192.0.2.50",
                                                                          "192.0.2.51")]
    view = View(alive, frozenset(), quorum, True, {n: serving.get(n, frozenset()) for n in alive})
    for vip in vips:
        owners = [n for n in "abcde" if vip in owned_here(vips, n, view)]
        able = [n for n in candidates if n in alive and vip.ip in serving.get(n, frozenset())]
        if not quorum or not able:
            assert owners == []
        else:
            assert owners == [able[0]]


def _kinds_sent(sim: Simulation, name: str, now: float) -> list[tuple[str, Kind]]:
    """Run ``name``'s timers at ``now`` and return what it sends (recipient, kind)."""
    m = swim(sim, name)
    m.tick(now)
    out = []
    for to, data in m.datagrams_to_send():
        d = decode(data, KEY, to)
        assert d is not None
        out.append((to, d.kind))
    return out


def _from_owner(sim: Simulation, rumor: Rumor | None) -> bytes:
    """A GOSSIP from n1 to n0 whose header carries n1's current serving version, with
    ``rumor`` as its only rumor (or n1's pending rumors when None)."""
    n1 = swim(sim, "n1")
    if rumor is None:
        n1._send("n0", Kind.GOSSIP)
    else:
        n1._send("n0", Kind.GOSSIP, rumors=False, first=rumor)
    return next(data for to, data in n1.datagrams_to_send() if to == "n0")


def test_the_owners_delta_is_applied_before_its_header_and_nothing_is_pulled() -> None:
    """The owner's own delta rumor rides a datagram whose header already carries the new
    version: the receiver applies the delta (and spreads it, with the delta) and pulls nothing."""
    sim = cluster(3)
    sim.run_until(sim.now + 0.5)
    n0, n1 = swim(sim, "n0"), swim(sim, "n1")
    before = n1._serving_version
    assert n0.members["n1"].serving_version == before
    n1.set_serving(("192.0.2.50",), sim.now)
    assert n1._serving_version == before + 1
    data = _from_owner(sim, None)
    head = decode(data, KEY, "n0")
    assert head is not None and head.serving_version == before + 1
    assert [(r.node, r.serving_version, r.delta is not None) for r in head.rumors] == [
        ("n1", before + 1, True)
    ]
    assert n0.receive(data, sim.now).verdict == Verdict.ACCEPTED
    assert n0.members["n1"].serving_version == before + 1
    assert n0.members["n1"].serving == {"192.0.2.50"}
    assert "n1" not in n0._wanting
    # what n0 passes on carries the delta, so the next hop needs no pull either
    n0.datagrams_to_send()
    n0._send("n2", Kind.GOSSIP)
    to_n2 = next(data for to, data in n0.datagrams_to_send() if to == "n2")
    relayed = decode(to_n2, KEY, "n2")
    assert relayed is not None
    assert [(r.serving_version, r.delta) for r in relayed.rumors if r.node == "n1"] == [
        (before + 1, (frozenset({"192.0.2.50"}), frozenset()))
    ]
    sent = _kinds_sent(sim, "n0", sim.now) + _kinds_sent(sim, "n0", sim.now + 0.5)
    assert not [k for _, k in sent if k == Kind.PULL]


def test_a_header_newer_than_the_delta_it_carries_still_leads_to_a_pull() -> None:
    """Correctness never rests on rumors: the delta brings version v, the header says v + 1,
    so the receiver applies the delta and then pulls the set from its owner."""
    sim = cluster(3)
    sim.run_until(sim.now + 0.5)
    n0, n1 = swim(sim, "n0"), swim(sim, "n1")
    before = n1._serving_version
    n1.set_serving(("192.0.2.50",), sim.now)
    first = n1._self_rumor((frozenset({"192.0.2.50"}), frozenset()))
    n1.set_serving(("192.0.2.50", "192.0.2.51"), sim.now)
    n1.datagrams_to_send()
    data = _from_owner(sim, first)
    head = decode(data, KEY, "n0")
    assert head is not None and head.serving_version == before + 2
    assert [r.serving_version for r in head.rumors] == [before + 1]
    assert n0.receive(data, sim.now).verdict == Verdict.ACCEPTED
    assert n0.members["n1"].serving_version == before + 1  # the delta was applied
    assert n0.members["n1"].wanted_version == before + 2  # and the header heard
    sent = _kinds_sent(sim, "n0", sim.now) + _kinds_sent(sim, "n0", sim.now + 0.5)
    assert ("n1", Kind.PULL) in sent
    # and the pull brings the newer set
    sim.run_until(sim.now + 1.0)
    assert n0.members["n1"].serving == {"192.0.2.50", "192.0.2.51"}
    assert n0.members["n1"].serving_version >= before + 2
