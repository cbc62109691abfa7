"""The replay window folded into the member record: a replay is refused, a datagram reordered
within the window is accepted as before, the window slides (and forgets what fell out of it),
and nothing counts before the sender's boot is proven fresh or after it changed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from swim_cluster import KEY, cluster, swim

from vipcast.proto.membership import Verdict, decode
from vipcast.proto.membership.members import Member
from vipcast.proto.membership.replay import UNPROVEN, WINDOW, slide


def proven(boot: int = 7) -> Member:
    m = Member("n1")
    m.adopt_boot(boot, 0)
    return m


def test_nothing_counts_before_the_boot_is_proven() -> None:
    m = Member("n1", boot=7)
    assert not m.verified and m.highest == UNPROVEN
    assert not m.accept(7, 1)
    m.prove()
    assert m.verified and m.accept(7, 1)


def test_a_replay_is_refused_and_a_reorder_within_the_window_is_accepted() -> None:
    m = proven()
    assert m.accept(7, 5)
    assert not m.accept(7, 5)
    assert m.accept(7, 3)  # late, never seen
    assert m.accept(7, 4)
    assert not m.accept(7, 3) and not m.accept(7, 4)
    assert not m.accept(7, 0) and not m.accept(7, -1)
    assert not m.accept(8, 6)  # another boot: never judged by this window
    assert m.accept(7, 6)


def test_the_window_slides_and_what_falls_out_is_refused() -> None:
    m = proven()
    assert m.accept(7, 10)
    assert m.accept(7, 10 + WINDOW)
    assert (m.highest, m.seen) == (10 + WINDOW, 1)  # 10 slid out: bit WINDOW is gone
    assert not m.accept(7, 10)  # too old now, seen or not
    assert not m.accept(7, 11 - 1)
    assert m.accept(7, 11)  # the oldest still in the window, never seen
    assert not m.accept(7, 11)
    # a jump far ahead keeps only itself
    assert m.accept(7, 10**12)
    assert (m.highest, m.seen) == (10**12, 1)
    assert not m.accept(7, 10 + WINDOW)


def test_a_new_boot_starts_a_new_window_and_the_old_one_is_retired() -> None:
    m = proven()
    assert m.accept(7, 100)
    m.adopt_boot(9, 0)
    assert m.retired == (7,)
    assert (m.highest, m.seen) == (0, 0)
    assert m.accept(9, 1) and not m.accept(7, 101)


def test_the_window_lives_in_the_record() -> None:
    """No window object per member (one per member on every member: 25 M at 5,000)."""
    m = proven()
    assert not hasattr(m, "__dict__") and not hasattr(m, "window")
    assert type(m.highest) is int and type(m.seen) is int


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2, 3 * WINDOW), max_size=60))
def test_the_folded_window_decides_as_a_plain_set_of_seen_numbers(
    sequences: list[int],
) -> None:
    """Checked against the plain rule: accepted iff positive, never seen, and not WINDOW or
    more below the highest accepted so far."""
    highest, seen_bits = 0, 0
    seen: set[int] = set()
    top = 0
    for sequence in sequences:
        expected = sequence > 0 and sequence not in seen and sequence > top - WINDOW
        window = slide(highest, seen_bits, sequence)
        assert (window is not None) == expected, (sequence, top)
        if window is not None:
            highest, seen_bits = window
            seen.add(sequence)
            top = max(top, sequence)
            assert highest == top


def test_datagrams_reordered_on_the_wire_count_once_each() -> None:
    """n1's datagrams to n0, held while n0 was cut off, arrive in reverse order: each is
    accepted once (as before the window moved into the record), and again refused."""
    sim = cluster(3)
    n0 = swim(sim, "n0")
    n1 = swim(sim, "n1")
    held: list[bytes] = []
    original = n1.datagrams_to_send

    def tap() -> list[tuple[str, bytes]]:
        out = original()
        held.extend(data for to, data in out if to == "n0")
        return out

    n1.datagrams_to_send = tap  # type: ignore[method-assign]
    sim.network.side = {"n0": 1}
    sim.run_until(sim.now + 0.15)
    sim.network.side = {}
    n1.datagrams_to_send = original  # type: ignore[method-assign]
    assert len(held) >= 3
    sequences = [d.sequence for d in (decode(data, KEY, "n0") for data in held) if d]
    assert sequences == sorted(sequences) and max(sequences) - min(sequences) < WINDOW
    verdicts = [n0.receive(data, sim.now).verdict for data in reversed(held)]
    assert set(verdicts) <= {Verdict.ACCEPTED, Verdict.STALE}
    assert verdicts.count(Verdict.ACCEPTED) >= 2
    again = {n0.receive(data, sim.now).verdict for data in held}
    assert Verdict.ACCEPTED not in again
