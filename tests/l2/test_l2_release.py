"""The hand-over order on a plan change, as pure decisions: the old owner keeps answering a VIP
another live node took until that node's claim is seen, or a deadline; a VIP nobody may own,
or one that is ours again, is not released; an announcement from another MAC is a claim."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from vipcast.core.desired import L2Ownership
from vipcast.core.l2owner import Releasing, owned_by_peers
from vipcast.proto.l2 import (
    ArpOp,
    OwnedAddresses,
    announcements,
    claim_of,
    decide,
    gratuitous_arp,
    owner_probes,
)
from vipcast.proto.membership import View

VIP = "192.0.2.50"
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ownership(*candidates: str) -> L2Ownership:
    return L2Ownership(VIP, ("eth0",), candidates[0], candidates)


def view(*alive: str, quorum: bool = True) -> View:
    return View(frozenset(alive), frozenset(), quorum)


def test_a_vip_moved_to_a_live_peer_is_handed_over_not_dropped() -> None:
    # the plan changed the preference from (n1, n2) to (n2, n1): n1 loses the VIP to n2
    assert owned_by_peers([ownership("n2", "n1")], "n1", view("n1", "n2")) == {VIP}
    state = Releasing().step(
        lost_to_peer=frozenset({VIP}),
        peer_owned=frozenset({VIP}),
        claimed=frozenset(),
        now=10.0,
        timeout=3.0,
    )
    assert state.ips == {VIP} and state.next_deadline() == 13.0
    # still answered while nobody claimed it, the deadline is not moved by later steps
    later = state.step(
        lost_to_peer=frozenset({VIP}),
        peer_owned=frozenset({VIP}),
        claimed=frozenset(),
        now=12.0,
        timeout=3.0,
    )
    assert later.deadlines == {VIP: 13.0}
    # the new owner's claim ends it
    done = later.step(
        lost_to_peer=frozenset(),
        peer_owned=frozenset({VIP}),
        claimed=frozenset({VIP}),
        now=12.1,
        timeout=3.0,
    )
    assert done.ips == frozenset()


def test_release_ends_at_the_deadline_without_a_claim() -> None:
    state = Releasing({VIP: 13.0})
    kept = state.step(
        lost_to_peer=frozenset(),
        peer_owned=frozenset({VIP}),
        claimed=frozenset(),
        now=12.99,
        timeout=3.0,
    )
    assert kept.ips == {VIP}
    gone = state.step(
        lost_to_peer=frozenset(),
        peer_owned=frozenset({VIP}),
        claimed=frozenset(),
        now=13.0,
        timeout=3.0,
    )
    assert gone.ips == frozenset()


def test_no_release_when_nobody_else_owns_it() -> None:
    # no quorum, the peer dead, or the VIP gone from the plan: stop at once
    assert owned_by_peers([ownership("n2", "n1")], "n1", view("n1", "n2", quorum=False)) == set()
    assert owned_by_peers([ownership("n2", "n3")], "n1", view("n1")) == set()
    state = Releasing().step(
        lost_to_peer=frozenset({VIP}),
        peer_owned=frozenset(),
        claimed=frozenset(),
        now=1.0,
        timeout=3.0,
    )
    assert state.ips == frozenset()
    # releasing, then the new owner dies (or we own it again): the release ends
    ended = Releasing({VIP: 13.0}).step(
        lost_to_peer=frozenset(), peer_owned=frozenset(), claimed=frozenset(), now=11.0, timeout=3.0
    )
    assert ended.ips == frozenset()


def test_claims_are_announcements_from_another_mac() -> None:
    ip4, ip6 = IPv4Address(VIP), IPv6Address("2001:db8::50")
    for frame in (*announcements(MAC_B, ip4), *announcements(MAC_B, ip6)):
        assert claim_of(frame, MAC_A) in (ip4, ip6)
        assert claim_of(frame, MAC_B) is None  # our own announcement
    assert claim_of(gratuitous_arp(MAC_B, ip4, ArpOp.REPLY), MAC_A) == ip4
    assert claim_of(b"\x00" * 10, MAC_A) is None
    assert claim_of(announcements(MAC_B, ip4)[0][:20], MAC_A) is None


def test_the_owners_answer_to_a_probe_is_a_claim() -> None:
    # the releasing node (MAC_A) asks; the new owner (MAC_B) answers; that answer is its claim
    for ip in (IPv4Address(VIP), IPv6Address("2001:db8::50")):
        (probe,) = owner_probes(MAC_A, ip)
        assert claim_of(probe, MAC_B) is None  # a probe claims nothing
        answer = decide(probe, OwnedAddresses.of(MAC_B, [ip])).reply
        assert answer is not None
        assert claim_of(answer, MAC_A) == ip
        assert decide(probe, OwnedAddresses.of(MAC_B, [])).reply is None
