"""The SWIM membership protocol: wire vectors, failure detection, refutation, leave, live
member changes, and authentication (forgery and replay across restarts refused)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swim_cluster import KEY, cluster, member, swim

from vipcast.lab.membership_sim import Network, Simulation
from vipcast.proto.membership import (
    Datagram,
    Kind,
    Membership,
    Rumor,
    State,
    Timers,
    Verdict,
    View,
    WireError,
    decode,
    encode,
)
from vipcast.proto.membership.codec import MTU_PAYLOAD

NAMES = frozenset({"a", "b", "c"})

#: one PING from "a" (boot 1, sequence 7, incarnation 2, serving version 0, nonce
#: 0x0102030405060708) carrying
#: one rumor (b suspected at incarnation 3, serving version 4), HMAC-SHA256/128 under "test-key"
PING_VECTOR = bytes.fromhex(
    "5643533101"  # "VCS1", PING
    "0161"  # name "a"
    "0000000000000001" "0000000000000007" "00000002" "00000000" "0102030405060708"
    "0000"  # empty body
    "01" "0162" "00000000000000090000000302" "00000004" "00"  # rumor: b, boot 9, inc 3, suspect
)
#: HMAC-SHA256 under "test-key" over the recipient's name ("b") and the bytes above, first 16
MAC_VECTOR = "624bd02951c94d5cc302fa7cf9181a14"


def test_ping_vector() -> None:
    d = Datagram(Kind.PING, "a", 1, 7, 2, 0x0102030405060708,
                 (Rumor("b", 9, 3, State.SUSPECT, 4),))
    data = encode(d, KEY, "b")
    assert data[:-16] == PING_VECTOR
    assert data[-16:] == bytes.fromhex(MAC_VECTOR)
    assert decode(data, KEY, "b") == d
    assert decode(data, b"other-key", "b") is None
    assert decode(data, KEY, "c") is None  # meant for b: refused by everyone else


addresses = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
rumors = st.builds(
    Rumor,
    st.sampled_from(["a", "b", "node-7"]),
    st.integers(1, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.sampled_from(list(State)),
    st.integers(0, 2**32 - 1),
    st.none() | st.tuples(st.frozensets(addresses, max_size=4),
                          st.frozensets(addresses, max_size=4)),
)


@given(
    st.sampled_from(list(Kind)), st.lists(rumors, max_size=5), st.integers(0, 2**64 - 1),
    st.lists(addresses, max_size=20, unique=True),
)
def test_codec_round_trip(kind: Kind, rumor_list: list[Rumor], token: int,
                          ips: list[str]) -> None:
    fields: dict[str, object] = {}
    if kind == Kind.PING_REQ:
        fields["target"] = "c"
    elif kind == Kind.SYNC:
        fields.update(start=2, total=9, records=tuple(
            Rumor(r.node, r.boot, r.incarnation, r.state, r.serving_version) for r in rumor_list))
    elif kind == Kind.SERVING:
        fields.update(start=0, total=len(ips), version=3, addresses=tuple(ips))
    elif kind in (Kind.SYNC_REQ, Kind.PULL):
        fields["start"] = 5
    d = Datagram(kind, "b", 5, 1, 0, token, tuple(rumor_list), **fields)  # type: ignore[arg-type]
    data = encode(d, KEY, "a")
    assert len(data) <= MTU_PAYLOAD
    assert decode(data, KEY, "a") == d


@given(st.binary(max_size=200))
def test_receive_never_raises(data: bytes) -> None:
    a = member("a", NAMES, boot=1)
    a.start(0.0)
    assert a.receive(data, 1.0).verdict in (Verdict.MALFORMED, Verdict.BAD_MAC)
    assert a.receive(b"VCS1" + data, 1.0).verdict in (Verdict.MALFORMED, Verdict.BAD_MAC)


@given(st.integers(0, 60), st.integers(1, 255))
def test_any_bit_flip_is_refused(position: int, flip: int) -> None:
    b = member("b", NAMES, boot=2)
    data = bytearray(encode(Datagram(Kind.GOSSIP, "b", 2, 1, 0, 0,
                                     (Rumor("c", 3, 0, State.DEAD),)), KEY, "a"))
    data[position % len(data)] ^= flip
    a = member("a", NAMES, boot=1)
    a.start(0.0)
    assert a.receive(bytes(data), 1.0).verdict in (Verdict.MALFORMED, Verdict.BAD_MAC)
    assert b.view.alive == {"b"}


def test_authenticated_garbage_is_malformed_not_a_traceback() -> None:
    import hashlib
    import hmac
    body = b"VCS1\x06\x01b" + bytes(28) + b"\x00\x00\x01\x05zzzzz"
    data = body + hmac.digest(KEY, b"\x01a" + body, hashlib.sha256)[:16]
    with pytest.raises(WireError):
        decode(data, KEY, "a")
    a = member("a", NAMES, boot=1)
    assert a.receive(data, 0.0).verdict is Verdict.MALFORMED


def test_encode_refuses_more_than_one_mtu() -> None:
    ips = tuple(f"2001:db8::{i:x}" for i in range(100))
    with pytest.raises(ValueError, match="at most 1400"):
        encode(Datagram(Kind.SERVING, "a", 1, 1, 0, 1, total=100, addresses=ips), KEY, "b")


# -- behaviour on the simulator --------------------------------------------------------------
def test_alone_at_start_without_quorum_then_everyone_alive() -> None:
    a = member("a", NAMES, boot=1)
    a.start(0.0)
    assert a.view == View(frozenset({"a"}), frozenset(), False, False, {"a": frozenset()})
    sim = cluster(3)
    assert all(swim(sim, n).view.alive == {"n0", "n1", "n2"} for n in sim.members)


def test_a_killed_member_is_suspected_then_dead_everywhere() -> None:
    sim = cluster(5)
    killed = sim.kill("n0")
    sim.run_until(sim.now + 3.0)
    for name in sorted(sim.up):
        assert "n0" not in swim(sim, name).view.alive
        assert sim.lost_sight[(name, "n0")] > killed
    assert sim.false_deaths == []
    # a majority of 5 remains
    assert all(swim(sim, n).view.quorum for n in sim.up)


def test_a_member_cut_off_briefly_refutes_and_is_never_declared_dead() -> None:
    sim = cluster(5)
    timers = swim(sim, "n0").timers
    sim.network.side["n3"] = 1
    sim.run_until(sim.now + timers.probe_interval * 2)  # shorter than the suspicion
    sim.network.side.clear()
    sim.run_until(sim.now + 3.0)
    assert sim.false_deaths == []
    assert all(swim(sim, n).view.alive == set(sim.members) for n in sim.members)


def test_a_partitioned_member_comes_back_with_a_higher_incarnation() -> None:
    sim = cluster(5)
    sim.set_serving("n4", ["192.0.2.50"])
    sim.network.side["n4"] = 1
    sim.run_until(sim.now + 3.0)
    assert all("n4" not in swim(sim, n).view.alive for n in sim.members if n != "n4")
    assert not swim(sim, "n4").view.quorum  # the minority owns nothing
    before = swim(sim, "n4").incarnation
    sim.network.side.clear()
    sim.run_until(sim.now + 5.0)
    assert all(swim(sim, n).view.alive == set(sim.members) for n in sim.members)
    assert swim(sim, "n4").incarnation > before
    # and what it serves is known again (kept through its death, same boot and version)
    assert all(swim(sim, n).view.serving["n4"] == {"192.0.2.50"}  # type: ignore[index]
               for n in sim.members)


def test_graceful_leave_is_seen_at_once_and_shrinks_the_quorum() -> None:
    sim = cluster(3)
    swim(sim, "n0").leave(sim.now)
    sim._after("n0")
    left_at = sim.now
    sim.kill("n0")
    sim.run_until(sim.now + 0.05)
    for name in ("n1", "n2"):
        view = swim(sim, name).view
        assert view.left == {"n0"} and view.alive == {"n1", "n2"}
        assert view.quorum  # 2 of the 2 voters left
        assert sim.lost_sight[(name, "n0")] - left_at < 0.01


def test_set_members_join_and_leave_without_restart() -> None:
    sim = cluster(3)
    names = frozenset({"n0", "n1", "n2", "n3"})
    newcomer = member("n3", names, boot=77)
    sim.members["n3"] = newcomer
    sim.sent["n3"] = type(sim.sent["n0"])()
    for name in ("n0", "n1", "n2"):
        swim(sim, name).set_members(names, sim.now)
    newcomer.start(sim.now)
    sim.up.add("n3")
    sim._after("n3")
    sim.run_until(sim.now + 2.0)
    assert all(swim(sim, n).view.alive == names for n in names)
    assert all(swim(sim, n).view.quorum for n in names)
    # n2 leaves the cluster's member list (and is switched off): nobody waits for it
    sim.kill("n2")
    for name in ("n0", "n1", "n3"):
        swim(sim, name).set_members(names - {"n2"}, sim.now)
    sim.run_until(sim.now + 1.0)
    for name in ("n0", "n1", "n3"):
        view = swim(sim, name).view
        assert view.alive == {"n0", "n1", "n3"} and view.quorum
    assert sim.false_deaths == []


def test_forgery_and_strangers_are_refused() -> None:
    sim = cluster(3)
    a = swim(sim, "n0")
    stranger = member("n1", frozenset({"n0", "n1", "n2"}), boot=5, key=b"other-key")
    stranger.start(sim.now)
    stranger.leave(sim.now)
    for _, data in stranger.datagrams_to_send():
        assert a.receive(data, sim.now).verdict is Verdict.BAD_MAC
    outsider = member("x", frozenset({"n0", "x"}), boot=6)
    outsider.start(sim.now)
    outsider.tick(sim.now)
    for _, data in outsider.datagrams_to_send():
        assert a.receive(data, sim.now).verdict is Verdict.UNKNOWN_MEMBER
    assert a.view.alive == {"n0", "n1", "n2"}


def _recorder(sim: Simulation, name: str) -> list[bytes]:
    """Every datagram ``name`` sends from now on (the attacker's tap on the wire)."""
    tapped: list[bytes] = []
    m = swim(sim, name)
    original = m.datagrams_to_send

    def tap() -> list[tuple[str, bytes]]:
        out = original()
        tapped.extend(data for _, data in out)
        return out

    m.datagrams_to_send = tap  # type: ignore[method-assign]
    return tapped


def test_replay_within_a_boot_is_refused() -> None:
    sim = cluster(3)
    tapped = _recorder(sim, "n1")
    sim.run_until(sim.now + 0.5)
    a = swim(sim, "n0")
    verdicts = {a.receive(data, sim.now).verdict for data in tapped}
    assert Verdict.ACCEPTED not in verdicts
    # meant for n2: refused by its MAC; meant for n0: already seen, or an answer already used
    assert verdicts <= {Verdict.REPLAY, Verdict.STALE, Verdict.BAD_MAC}


@pytest.mark.parametrize("receiver_restarts", [False, True])
def test_datagrams_recorded_before_a_restart_are_refused_after_it(
    receiver_restarts: bool,
) -> None:
    """n1's graceful-leave datagrams are recorded; n1 restarts (new boot); replayed to n0
    (itself restarted or not), they must not make n0 think n1 left — nor count at all."""
    sim = cluster(3)
    names = frozenset(sim.members)
    tapped = _recorder(sim, "n1")
    swim(sim, "n1").leave(sim.now)
    sim._after("n1")
    sim.kill("n1")
    recorded = list(tapped)
    assert any(decode(d, KEY, "n0").kind is Kind.LEAVE  # type: ignore[union-attr]
               for d in recorded if decode(d, KEY, "n0") is not None)
    sim.run_until(sim.now + 0.2)
    # n1 comes back with a new boot nonce
    reborn = member("n1", names, boot=4242)
    sim.members["n1"] = reborn
    reborn.start(sim.now)
    sim.up.add("n1")
    sim._after("n1")
    if receiver_restarts:
        sim.kill("n0")
        fresh = member("n0", names, boot=999)
        sim.members["n0"] = fresh
        fresh.start(sim.now)
        sim.up.add("n0")
        sim._after("n0")
    sim.run_until(sim.now + 2.0)
    a = swim(sim, "n0")
    assert a.view.alive == names
    for data in recorded:
        verdict = a.receive(data, sim.now).verdict
        assert verdict is not Verdict.ACCEPTED
    sim._after("n0")
    sim.run_until(sim.now + 1.0)
    assert a.view.alive == names and a.view.left == frozenset()
    assert a.members["n1"].boot == 4242


def test_serving_sets_travel_as_deltas_and_large_ones_by_pull() -> None:
    sim = cluster(3)
    sim.set_serving("n1", ["192.0.2.50", "2001:DB8::50"])
    sim.run_until(sim.now + 0.5)
    for name in ("n0", "n2"):
        serving = swim(sim, name).view.serving
        assert serving is not None and serving["n1"] == {"192.0.2.50", "2001:db8::50"}
    many = [f"2001:db8::{i:x}" for i in range(1, 3001)]
    sim.set_serving("n2", many)
    sim.run_until(sim.now + 2.0)
    serving = swim(sim, "n0").view.serving
    assert serving is not None and serving["n2"] == frozenset(many)


def test_an_agent_in_its_startup_wait_declares_nothing() -> None:
    """So the current owner keeps a VIP until the returning node can really take it."""
    fresh = member("a", NAMES, boot=1)
    fresh.start(10.0)
    fresh.set_serving(("192.0.2.50",), 10.0)
    assert fresh.view.serving == {"a": frozenset()}
    fresh.tick(10.0 + fresh.timers.settle_after)
    assert fresh.view.settled
    assert fresh.view.serving == {"a": frozenset({"192.0.2.50"})}


def test_quorum_needs_a_majority_of_voters() -> None:
    sim = cluster(3)
    sim.kill("n1")
    sim.kill("n2")
    sim.run_until(sim.now + 3.0)
    assert swim(sim, "n0").view.alive == {"n0"}
    assert not swim(sim, "n0").view.quorum


def test_boot_must_be_a_nonzero_64_bit_number() -> None:
    with pytest.raises(ValueError):
        member("a", NAMES, boot=0)
    with pytest.raises(ValueError):
        Membership(member("a", NAMES, 1).config, boot=2**64, rng=random.Random(1))


@settings(max_examples=12, deadline=None)
@given(st.integers(3, 9), st.integers(0, 2**32), st.data())
def test_without_loss_every_death_is_detected_and_no_live_member_dies(
    count: int, seed: int, data: st.DataObject
) -> None:
    sim = cluster(count, seed=seed)
    victims = data.draw(st.sets(st.sampled_from(sorted(sim.members)), max_size=(count - 1) // 2))
    for name in victims:
        sim.kill(name)
        sim.run_until(sim.now + data.draw(st.floats(0.0, 0.3)))
    sim.run_until(sim.now + 4.0)
    for name in sim.up:
        assert swim(sim, name).view.alive == set(sim.members) - victims
    assert sim.false_deaths == []


def test_timers_for_memberlist_match_its_published_lan_defaults() -> None:
    t = Timers.memberlist_lan()
    assert (t.probe_interval, t.probe_timeout, t.indirect_checks) == (1.0, 0.5, 3)
    assert (t.suspicion_mult, t.gossip_interval, t.gossip_nodes, t.retransmit_mult) == (
        4.0, 0.2, 3, 4)
    assert t.suspicion_timeout(1000) == pytest.approx(4 * 3.0004, rel=1e-3)
    assert Network().loss == 0.0


def test_a_stall_longer_than_a_probe_neither_crashes_nor_suspects() -> None:
    """The agent's event loop stalls (GC, a big plan, a loaded machine) right after a probe
    went out, for longer than the probe's nonce lives. tick() then ran the indirect-probe step
    for a probe whose nonce had just expired and raised KeyError: in the runtime that ended the
    membership task, and from then on the node sent no gossip, no pulls, no probes of its own
    (its serving-set changes reached the others only by chance; tests/l2 saw a VIP never move).
    The protocol must go on, and a probe it could not follow is no evidence against the
    target."""
    sim = cluster(3)
    a = swim(sim, "n0")
    now = a._next_probe  # the next tick sends a probe
    a.tick(now)
    probe = a._probe
    assert probe is not None and probe.sent == now
    target = probe.target
    a.datagrams_to_send()  # lost: the target never answers this one
    stalled = now + 10 * a.timers.probe_interval
    a.tick(stalled)
    assert a.members[target].state == State.ALIVE  # not suspected for our own stall
    a.tick(stalled + a.timers.probe_timeout)
    a.tick(a._next_probe)
    assert a.next_deadline() is not None
    assert a.datagrams_to_send(), "the member keeps probing after the stall"


def test_after_its_own_stall_a_member_reads_before_it_accuses() -> None:
    """A tick far later than the deadline the member gave (it stalled) concludes nothing: the
    refutation may sit unread in the socket. The next tick concludes whatever it finds, so a
    member that keeps stalling still detects deaths (one grace per stall)."""
    sim = cluster(3)
    a = swim(sim, "n0")
    a.members["n1"].state = State.SUSPECT
    a._suspects["n1"] = sim.now + 0.001
    due = a.next_deadline()
    assert due is not None
    a.tick(due + 0.3)
    assert a.members["n1"].state == State.SUSPECT
    refuted = a.members["n1"].incarnation + 1
    a.receive(_alive_rumor_from(sim, "n1", refuted), due + 0.31)
    assert a.members["n1"].state == State.ALIVE  # read in time: no false death
    a.members["n1"].state = State.SUSPECT
    a._suspects["n1"] = due + 0.32
    late = a.next_deadline()
    assert late is not None
    now = late + 0.3
    a.tick(now)  # another stall: graced again (a new stall)
    assert a.members["n1"].state == State.SUSPECT
    for _ in range(20):  # on time from here: nothing refutes, the suspicion runs out
        now = max(now, a.next_deadline() or now)
        a.tick(now)
        if a.members["n1"].state == State.DEAD:
            break
    assert a.members["n1"].state == State.DEAD
    assert now - late < 0.3 + 0.1  # within a grace of the end of the stall


def _alive_rumor_from(sim: Simulation, name: str, incarnation: int) -> bytes:
    """A GOSSIP datagram from ``name`` to n0 carrying its refutation (incarnation raised)."""
    m = swim(sim, name)
    m.incarnation = incarnation
    m._send("n0", Kind.GOSSIP, first=m._self_rumor())
    return next(data for to, data in m.datagrams_to_send() if to == "n0")
