"""The sans-IO membership view: heartbeats, expiry, replay, leaving, quorum, owner choice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.desired import L2Ownership
from vipcast.core.l2owner import choose_owner, owned_here
from vipcast.proto.membership import (
    Membership,
    MembershipConfig,
    Verdict,
    View,
    decode_heartbeat,
)

KEY = b"test-key"
MEMBERS = frozenset({"a", "b", "c"})


def agent(name: str, incarnation: int = 1, key: bytes = KEY) -> Membership:
    membership = Membership(MembershipConfig(name, MEMBERS, key), incarnation)
    membership.start(0.0)
    return membership


def test_alone_at_start_without_quorum() -> None:
    a = agent("a")
    assert a.view == View(
        frozenset({"a"}), frozenset(), quorum=False, settled=False, serving={"a": frozenset()}
    )


def test_no_quorum_before_the_startup_wait_even_with_a_majority() -> None:
    a, b = agent("a"), agent("b")
    a.receive(b.heartbeat(), now=0.1)  # b alive, but a is still settling
    assert not a.view.quorum and a.view.alive == {"a", "b"}
    assert a.next_deadline() == a.config.dead_after
    a.receive(b.heartbeat(), now=0.3)
    assert a.expire(a.config.dead_after)
    assert a.view.quorum and a.view.settled


def test_heartbeats_make_peers_alive_and_silence_kills_them() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    assert a.receive(b.heartbeat(), now=1.0).changed
    assert a.view.alive == {"a", "b"} and a.view.quorum
    a.receive(c.heartbeat(), now=1.05)
    assert a.view.alive == MEMBERS
    assert a.next_deadline() == 1.0 + a.config.dead_after
    assert not a.expire(1.2)
    assert a.expire(1.0 + a.config.dead_after)
    assert a.view.alive == {"a", "c"}
    assert a.expire(2.0)
    assert (a.view.alive, a.view.quorum) == ({"a"}, False)


def test_replay_and_forgery_are_refused() -> None:
    a, b = agent("a"), agent("b")
    first = b.heartbeat()
    assert a.receive(first, 1.0).verdict is Verdict.ACCEPTED
    assert a.receive(first, 1.1).verdict is Verdict.REPLAY
    stranger = agent("b", incarnation=99, key=b"other-key")
    assert a.receive(stranger.leaving(), 1.2).verdict is Verdict.BAD_MAC
    assert a.receive(b"garbage", 1.2).verdict is Verdict.MALFORMED
    assert a.receive(agent("a").heartbeat(), 1.2).verdict is Verdict.SELF
    assert a.view.alive == {"a", "b"}


def test_unknown_member_cannot_join() -> None:
    a = agent("a")
    intruder = Membership(MembershipConfig("z", MEMBERS | {"z"}, KEY), 1)
    assert a.receive(intruder.heartbeat(), 1.0).verdict is Verdict.UNKNOWN_MEMBER


def test_restarted_peer_with_new_incarnation_is_accepted() -> None:
    a, b = agent("a"), agent("b", incarnation=10)
    for _ in range(5):
        a.receive(b.heartbeat(), 1.0)
    reborn = agent("b", incarnation=20)
    assert a.receive(reborn.heartbeat(), 2.0).verdict is Verdict.ACCEPTED


def test_leaving_takes_effect_at_once_and_shrinks_the_quorum() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    a.receive(b.heartbeat(), 1.0)
    a.receive(c.heartbeat(), 1.0)
    assert a.receive(c.leaving(), 1.01).changed
    assert (a.view.alive, a.view.left, a.view.quorum) == ({"a", "b"}, {"c"}, True)
    # b dies: a alone out of the two voters left is not a majority
    a.expire(5.0)
    assert not a.view.quorum


def test_owner_is_first_alive_candidate_and_minority_owns_nothing() -> None:
    vip = L2Ownership("192.0.2.50", ("eth0",), "b", ("b", "a", "c"))
    other = L2Ownership("192.0.2.51", ("eth0",), "a", ("a", "c", "b"))
    assert choose_owner(vip.candidates, frozenset({"a", "c"})) == "a"
    assert choose_owner(vip.candidates, frozenset()) is None
    with_quorum = View(frozenset({"a", "c"}), frozenset(), True)
    assert owned_here([vip, other], "a", with_quorum) == (vip, other)
    assert owned_here([vip, other], "c", with_quorum) == ()
    assert owned_here([vip, other], "a", View(frozenset({"a"}), frozenset(), False)) == ()


@given(st.binary(max_size=100))
def test_receive_never_raises(data: bytes) -> None:
    assert agent("a").receive(data, 1.0).verdict is not Verdict.ACCEPTED


@given(st.integers(0, 80), st.integers(0, 255))
def test_any_bit_flip_is_refused(position: int, value: int) -> None:
    datagram = bytearray(agent("b").heartbeat())
    position %= len(datagram)
    if datagram[position] == value:
        return
    datagram[position] = value
    assert agent("a").receive(bytes(datagram), 1.0).verdict is not Verdict.ACCEPTED


def test_decode_round_trip() -> None:
    heartbeat = decode_heartbeat(agent("b", incarnation=7).heartbeat(), KEY)
    assert heartbeat is not None
    assert (heartbeat.node, heartbeat.incarnation, heartbeat.sequence) == ("b", 7, 1)
