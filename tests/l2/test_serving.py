"""Ownership follows servability: heartbeats carry the VIPs the sender can serve now (pure)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import struct

from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.desired import L2Ownership
from vipcast.core.l2owner import choose_owner, owned_here, owner_of
from vipcast.proto.membership import (
    MAX_SERVING,
    Membership,
    MembershipConfig,
    MembershipError,
    Verdict,
    View,
    decode_heartbeat,
)

KEY = b"test-key"
MEMBERS = frozenset({"a", "b", "c"})
VIP = L2Ownership("192.0.2.50", ("eth0",), "a", ("a", "b", "c"))
VIP6 = L2Ownership("2001:db8::50", ("eth0",), "b", ("b", "c", "a"))


def agent(name: str, serving: tuple[str, ...] = (), incarnation: int = 1) -> Membership:
    """An agent past its start-up wait (at t = 0.5 s), declaring ``serving``."""
    membership = Membership(MembershipConfig(name, MEMBERS, KEY), incarnation)
    membership.start(0.0)
    membership.set_serving(serving, 0.5)
    assert membership.view.settled
    return membership


def settled_views(agents: dict[str, Membership], now: float = 1.0) -> dict[str, View]:
    """Every agent hears every other's latest heartbeat at ``now``."""
    datagrams = {name: m.heartbeat() for name, m in agents.items()}
    for name, m in agents.items():
        for other, datagram in datagrams.items():
            if other != name:
                m.receive(datagram, now)
        m.expire(now)
    return {name: m.view for name, m in agents.items()}


def test_heartbeat_carries_the_serving_set_canonically() -> None:
    b = agent("b", ("192.0.2.50", "2001:DB8:0::50"))
    heartbeat = decode_heartbeat(b.heartbeat(), KEY)
    assert heartbeat is not None
    assert heartbeat.serving == {"192.0.2.50", "2001:db8::50"}


def test_owner_is_first_alive_candidate_that_can_serve() -> None:
    alive = frozenset({"a", "b", "c"})
    serving = {"a": frozenset(), "b": frozenset({"192.0.2.50"}), "c": frozenset({"192.0.2.50"})}
    assert choose_owner(VIP.candidates, alive, serving, "192.0.2.50") == "b"
    assert choose_owner(VIP.candidates, alive, {"a": frozenset()}, "192.0.2.50") is None
    assert choose_owner(VIP.candidates, alive) == "a"  # servability not considered


def test_every_node_agrees_and_the_owner_moves_when_it_cannot_serve() -> None:
    both = ("192.0.2.50", "2001:db8::50")
    agents = {n: agent(n, both) for n in sorted(MEMBERS)}
    views = settled_views(agents)
    assert {n: owner_of(VIP, v) for n, v in views.items()} == dict.fromkeys(MEMBERS, "a")
    assert {n: owner_of(VIP6, v) for n, v in views.items()} == dict.fromkeys(MEMBERS, "b")
    # a loses its last healthy backend for the v4 VIP: it drops it at once, locally ...
    assert agents["a"].set_serving(("2001:db8::50",), 1.05)
    assert owned_here([VIP, VIP6], "a", agents["a"].view) == ()
    # ... and the others move it on a's next heartbeat; nobody else changes
    views = settled_views(agents, 1.1)
    assert {n: owner_of(VIP, v) for n, v in views.items()} == dict.fromkeys(MEMBERS, "b")
    assert {n: owner_of(VIP6, v) for n, v in views.items()} == dict.fromkeys(MEMBERS, "b")
    # recovery: a takes it back (preemptive, as with liveness)
    agents["a"].set_serving(both, 1.2)
    views = settled_views(agents, 1.25)
    assert {n: owner_of(VIP, v) for n, v in views.items()} == dict.fromkeys(MEMBERS, "a")


def test_a_fresh_agent_serves_nothing_until_it_declares() -> None:
    agents = {"a": agent("a"), "b": agent("b", ("192.0.2.50",)), "c": agent("c")}
    views = settled_views(agents)
    assert {n: owner_of(VIP, v) for n, v in views.items()} == dict.fromkeys(MEMBERS, "b")


def test_nobody_serves_nobody_answers() -> None:
    agents = {n: agent(n) for n in sorted(MEMBERS)}
    views = settled_views(agents)
    assert all(owner_of(VIP, v) is None for v in views.values())


def test_leaving_clears_the_serving_set() -> None:
    a, b = agent("a"), agent("b", ("192.0.2.50",))
    a.receive(b.heartbeat(), 1.0)
    assert a.view.serving is not None and a.view.serving["b"] == {"192.0.2.50"}
    a.receive(b.leaving(), 1.01)
    assert "b" not in a.view.serving


def test_serving_change_is_a_view_change() -> None:
    a, b = agent("a"), agent("b", ("192.0.2.50",))
    assert a.receive(b.heartbeat(), 1.0).changed
    assert not a.receive(b.heartbeat(), 1.05).changed
    b.set_serving((), 1.06)
    assert a.receive(b.heartbeat(), 1.07).changed


def test_serving_set_is_capped_fail_closed() -> None:
    many = [f"198.18.{i // 256}.{i % 256}" for i in range(MAX_SERVING + 10)]
    a = agent("a", tuple(many))
    assert len(a.serving) == MAX_SERVING
    heartbeat = decode_heartbeat(a.heartbeat(), KEY)
    assert heartbeat is not None and len(heartbeat.serving) == MAX_SERVING
    assert len(a.heartbeat()) < 65_507


def test_an_agent_in_its_startup_wait_declares_nothing() -> None:
    """So the current owner keeps a VIP until the returning node can really take it."""
    fresh = Membership(MembershipConfig("a", MEMBERS, KEY), 1)
    fresh.start(10.0)
    fresh.set_serving(("192.0.2.50",), 10.0)
    heartbeat = decode_heartbeat(fresh.heartbeat(), KEY)
    assert heartbeat is not None and heartbeat.serving == frozenset()
    fresh.expire(11.0)
    heartbeat = decode_heartbeat(fresh.heartbeat(), KEY)
    assert heartbeat is not None and heartbeat.serving == {"192.0.2.50"}


def test_serving_entries_are_authenticated() -> None:
    b = agent("b", ("192.0.2.50",))
    datagram = bytearray(b.heartbeat())
    # flip the last address byte (just before the 32-byte HMAC)
    datagram[-33] ^= 1
    assert agent("a").receive(bytes(datagram), 1.0).verdict is Verdict.BAD_MAC


addresses = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)
)


@given(st.frozensets(addresses, max_size=40))
def test_serving_round_trip(serving: frozenset[str]) -> None:
    b = agent("b", tuple(serving))
    heartbeat = decode_heartbeat(b.heartbeat(), KEY)
    assert heartbeat is not None and heartbeat.serving == serving


@given(st.binary(max_size=300), st.integers(0, 3))
def test_decoder_raises_only_its_error(tail: bytes, count: int) -> None:
    """Authenticated datagrams with garbage serving sections: a value or MembershipError."""
    body = b"VCM2" + bytes([1, 1]) + b"b" + struct.pack("!QQH", 1, 1, count) + tail
    datagram = body + hmac.digest(KEY, body, hashlib.sha256)
    with contextlib.suppress(MembershipError):
        decode_heartbeat(datagram, KEY)


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
