"""The BFD client binding (RFC 5882) without sockets or clocks: what a BFD change does to BGP.

The sessions are :class:`vipcast.proto.bfd.Session` objects fed packets by hand, the way the
router sends them; the binding is the table in :mod:`vipcast.proto.bfd.client`. The FRR 8.4
sequence is the one captured in ``docs/bfd.md``: FRR's first session (no local address) is Up
with ours, BGP reaches Established, FRR's bgpd moves the neighbour to a new BFD session and
the old one sends Down with diagnostic 3 under its old discriminator; the new session starts
Down with a new discriminator and comes Up about a second later.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bfd import ControlPacket, Diag, Session, SessionConfig, State, StateChanged
from vipcast.proto.bfd.client import (
    TRANSITIONS,
    Action,
    Binding,
    Input,
    bfd_input,
    initial,
    reason,
    step,
)

FAST = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3)
OURS, OLD, NEW = 0x5999D48B, 0x6BECF36B, 0x84D6B3CB


class Pair:
    """Our session, a remote played by hand, and the binding fed from both sides."""

    def __init__(self) -> None:
        self.now = 0.0
        self.session = Session(FAST, OURS, lambda: 0.5)
        self.session.start(self.now)
        self.binding = Binding.IDLE
        self.actions: list[Action] = []
        self.changes: list[StateChanged] = []

    def remote(self, state: State, my: int, your: int = OURS, diag: int = 0) -> None:
        self.now += 0.05
        packet = ControlPacket(state=state, my_discr=my, your_discr=your, diag=diag,
                               desired_min_tx_us=100_000, required_min_rx_us=100_000)  # fmt: skip
        assert self.session.receive_control(packet, self.now, 255) is None
        self._drain()

    def silence(self, seconds: float) -> None:
        end = self.now + seconds
        while (deadline := self.session.next_deadline()) is not None and deadline <= end:
            self.now = deadline
            self.session.handle_timer(self.now)
            self._drain()
        self.now = end

    def bgp(self, established: bool) -> None:
        self._feed(Input.BGP_UP if established else Input.BGP_DOWN)

    def up_with(self, remote: int) -> None:
        self.remote(State.DOWN, remote, 0)
        self.remote(State.UP, remote)
        assert self.session.state is State.UP

    def _drain(self) -> None:
        self.session.packets_to_send()
        while (change := self.session.next_event()) is not None:
            self.changes.append(change)
            event = bfd_input(change)
            if event is not None:
                self._feed(event)

    def _feed(self, event: Input) -> None:
        self.binding, action = step(self.binding, event)
        if action is not Action.NONE:
            self.actions.append(action)


def test_frr_hands_the_session_over_at_established_and_bgp_stays() -> None:
    p = Pair()
    p.up_with(OLD)  # BFD first: BGP is still connecting
    assert p.binding is Binding.BFD_UP
    p.bgp(True)
    assert p.binding is Binding.ARMED
    # FRR's old session says Down, diag 3, under its old discriminator: not a path failure
    p.remote(State.DOWN, OLD, OURS, diag=Diag.NEIGHBOR_SIGNALED_SESSION_DOWN)
    down = p.changes[-1]
    assert (down.old, down.new) == (State.UP, State.DOWN)
    assert down.diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN
    assert bfd_input(down) is Input.BFD_ENDED and not down.remote_new
    assert "diag 3" in reason(down)
    assert p.actions == [Action.KEEP] and p.binding is Binding.WAITING
    # the new session starts Down with a new discriminator and comes Up: armed again
    p.up_with(NEW)
    assert p.binding is Binding.ARMED and p.actions == [Action.KEEP]
    # from now on a real failure (silence) drops BGP
    p.silence(1.0)
    assert p.changes[-1].diag is Diag.CONTROL_DETECTION_TIME_EXPIRED
    assert p.actions == [Action.KEEP, Action.DROP] and p.binding is Binding.IDLE


def test_frr_handover_before_our_established_changes_nothing() -> None:
    """The old session's Down can overtake the last KEEPALIVE: BGP is not up yet."""
    p = Pair()
    p.up_with(OLD)
    p.remote(State.DOWN, OLD, OURS, diag=Diag.NEIGHBOR_SIGNALED_SESSION_DOWN)
    assert p.binding is Binding.IDLE and p.actions == []
    p.bgp(True)
    assert p.binding is Binding.WAITING
    p.up_with(NEW)
    assert p.binding is Binding.ARMED and p.actions == []


def test_a_new_remote_session_replacing_an_up_one_is_not_a_failure() -> None:
    """The remote lost its BFD state (process restart) and starts over: Down from a new
    discriminator with Your Discriminator zero (RFC 5882 3.3)."""
    p = Pair()
    p.up_with(OLD)
    p.bgp(True)
    p.remote(State.DOWN, NEW, 0)
    assert p.changes[-1].remote_new and bfd_input(p.changes[-1]) is Input.BFD_ENDED
    assert "replaced" in reason(p.changes[-1])
    assert p.actions == [Action.KEEP] and p.binding is Binding.WAITING


@pytest.mark.parametrize(
    "diag",
    [Diag.NONE, Diag.CONTROL_DETECTION_TIME_EXPIRED, Diag.ECHO_FUNCTION_FAILED,
     Diag.FORWARDING_PLANE_RESET, Diag.PATH_DOWN, Diag.CONCATENATED_PATH_DOWN,
     Diag.REVERSE_CONCATENATED_PATH_DOWN],
)  # fmt: skip
def test_the_same_remote_session_going_down_for_a_failure_drops_bgp(diag: Diag) -> None:
    """E.g. the remote stops hearing us (one-way loss): its Down with diag 1 under the
    discriminator we were Up with. No diagnostic at all counts as a failure too."""
    p = Pair()
    p.up_with(OLD)
    p.bgp(True)
    p.remote(State.DOWN, OLD, 0 if diag is Diag.CONTROL_DETECTION_TIME_EXPIRED else OURS, diag)
    assert bfd_input(p.changes[-1]) is Input.BFD_FAILED
    assert p.actions == [Action.DROP] and p.binding is Binding.IDLE


def test_our_detection_time_expiring_drops_bgp() -> None:
    p = Pair()
    p.bgp(True)
    assert p.binding is Binding.WAITING
    p.up_with(OLD)
    assert p.binding is Binding.ARMED
    p.silence(0.2)
    assert p.actions == []  # within the 300 ms detection time
    p.silence(0.2)
    assert reason(p.changes[-1]) == "detection time expired"
    assert p.actions == [Action.DROP]


def test_remote_admin_down_keeps_bgp_and_local_admin_down_too() -> None:
    p = Pair()
    p.up_with(OLD)
    p.bgp(True)
    p.remote(State.ADMIN_DOWN, OLD, OURS, Diag.ADMINISTRATIVELY_DOWN)
    assert bfd_input(p.changes[-1]) is Input.BFD_ENDED and p.actions == [Action.KEEP]
    p.up_with(OLD)
    p.session.admin_down(p.now)
    p._drain()
    assert p.changes[-1].new is State.ADMIN_DOWN
    assert p.actions == [Action.KEEP, Action.KEEP] and p.binding is Binding.WAITING


def test_a_failure_before_established_does_not_touch_bgp() -> None:
    p = Pair()
    p.up_with(OLD)
    p.silence(1.0)
    assert p.changes[-1].diag is Diag.CONTROL_DETECTION_TIME_EXPIRED
    assert p.actions == [] and p.binding is Binding.IDLE


def test_bgp_going_down_disarms_until_the_next_established() -> None:
    p = Pair()
    p.up_with(OLD)
    p.bgp(True)
    p.bgp(False)
    assert p.binding is Binding.BFD_UP
    p.silence(1.0)
    assert p.actions == []
    p.bgp(True)
    assert p.binding is Binding.WAITING


def test_only_an_armed_binding_drops_and_every_other_input_is_total() -> None:
    for binding, event in itertools.product(Binding, Input):
        after, action = step(binding, event)
        assert (action is Action.DROP) == (binding is Binding.ARMED and event is Input.BFD_FAILED)
        assert (action is Action.KEEP) == (binding is Binding.ARMED and event is Input.BFD_ENDED)
        if (binding, event) not in TRANSITIONS:
            assert (after, action) == (binding, Action.NONE)
    # every binding state is reachable and left
    assert {b for b, _ in TRANSITIONS} == set(Binding)
    assert {a for a, _ in TRANSITIONS.values()} == set(Binding)


def test_initial_binding() -> None:
    assert initial(False, False) is Binding.IDLE
    assert initial(False, True) is Binding.BFD_UP
    assert initial(True, False) is Binding.WAITING
    assert initial(True, True) is Binding.ARMED


def test_changes_that_do_not_leave_up_are_ignored() -> None:
    moves = ((State.DOWN, State.INIT), (State.INIT, State.DOWN), (State.DOWN, State.ADMIN_DOWN))
    for old, new in moves:
        assert bfd_input(StateChanged(old, new, Diag.CONTROL_DETECTION_TIME_EXPIRED)) is None
    assert bfd_input(StateChanged(State.INIT, State.UP, Diag.NONE)) is Input.BFD_UP


@given(st.lists(st.sampled_from(list(Input)), max_size=40))
def test_the_binding_always_matches_the_two_sessions(events: list[Input]) -> None:
    """Any sequence the two sessions can produce (a BFD Down only while BFD is Up, BGP Up
    only while it is down, ...): after each step the binding is what :func:`initial` says
    for the sessions' states, and BGP is dropped exactly when it was Established and BFD
    failed while Up — the drop taking BGP down at once, as the speaker does."""
    bgp = bfd = False
    binding = initial(bgp, bfd)
    for event in events:
        possible = {
            Input.BGP_UP: not bgp, Input.BGP_DOWN: bgp, Input.BFD_UP: not bfd,
            Input.BFD_FAILED: bfd, Input.BFD_ENDED: bfd,
        }[event]  # fmt: skip
        if not possible:
            continue
        armed = bgp and bfd
        binding, action = step(binding, event)
        if event is Input.BGP_UP or event is Input.BGP_DOWN:
            bgp = event is Input.BGP_UP
        else:
            bfd = event is Input.BFD_UP
        assert (action is Action.DROP) == (armed and event is Input.BFD_FAILED)
        assert (action is Action.KEEP) == (armed and event is Input.BFD_ENDED)
        if action is Action.DROP:
            bgp = False
            binding, _ = step(binding, Input.BGP_DOWN)
        assert binding is initial(bgp, bfd), (events, binding, bgp, bfd)
