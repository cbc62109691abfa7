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
    DEFAULT_RECOVERY_S,
    TRANSITIONS,
    Action,
    Binding,
    Client,
    Input,
    bfd_input,
    expiry_input,
    initial,
    reason,
    step,
)

FAST = SessionConfig(desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3)
OURS, OLD, NEW = 0x5999D48B, 0x6BECF36B, 0x84D6B3CB


class Pair:
    """Our session, a remote played by hand, and the binding fed from both sides; one fake
    clock (``now``) for both."""

    def __init__(self, recovery_s: float = DEFAULT_RECOVERY_S) -> None:
        self.now = 0.0
        self.session = Session(FAST, OURS, lambda: 0.5)
        self.session.start(self.now)
        self.client = Client(recovery_s=recovery_s)
        self.actions: list[Action] = []
        self.changes: list[StateChanged] = []

    @property
    def binding(self) -> Binding:
        return self.client.binding

    def expire(self, at: float) -> Action:
        """The runtime's timer fires at ``at`` (the session's remote state as it is then)."""
        self.now = max(self.now, at)
        action = self.client.expire(at, self.session.remote_state)
        if action is not Action.NONE:
            self.actions.append(action)
        return action

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
        action = self.client.feed(event, self.now)
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
    assert p.actions == [Action.KEEP] and p.binding is Binding.RECOVERING
    assert p.client.deadline() == pytest.approx(p.now + DEFAULT_RECOVERY_S)
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
    assert p.actions == [Action.KEEP] and p.binding is Binding.RECOVERING


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
    assert bfd_input(p.changes[-1]) is Input.BFD_DISABLED and p.actions == [Action.KEEP]
    assert p.binding is Binding.DISABLED and p.client.deadline() is None
    p.up_with(OLD)
    assert p.binding is Binding.ARMED
    p.session.admin_down(p.now)
    p._drain()
    assert p.changes[-1].new is State.ADMIN_DOWN
    assert p.actions == [Action.KEEP, Action.KEEP] and p.binding is Binding.DISABLED


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


def test_only_an_armed_or_expired_binding_drops_and_every_other_input_is_total() -> None:
    ends = (Input.BFD_ENDED, Input.BFD_DISABLED)
    for binding, event in itertools.product(Binding, Input):
        after, action = step(binding, event)
        assert (action is Action.DROP) == (
            (binding is Binding.ARMED and event is Input.BFD_FAILED)
            or (binding is Binding.RECOVERING and event is Input.RECOVERY_EXPIRED)
        )
        assert (action is Action.KEEP) == (binding is Binding.ARMED and event in ends)
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


def test_changes_that_do_not_leave_up_are_ignored_but_init_and_admin_down() -> None:
    for old, new in ((State.INIT, State.DOWN), (State.DOWN, State.ADMIN_DOWN)):
        assert bfd_input(StateChanged(old, new, Diag.CONTROL_DETECTION_TIME_EXPIRED)) is None
    assert bfd_input(StateChanged(State.INIT, State.UP, Diag.NONE)) is Input.BFD_UP
    # the remote talks BFD to us (Init), or, while we were in Init, it went AdminDown
    assert bfd_input(StateChanged(State.DOWN, State.INIT, Diag.NONE)) is Input.BFD_INIT
    off = StateChanged(State.INIT, State.DOWN, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN,
                       remote_state=State.ADMIN_DOWN)  # fmt: skip
    assert bfd_input(off) is Input.BFD_DISABLED


#: the bindings :func:`initial` gives for BGP Established without BFD Up
_UNARMED = {Binding.WAITING, Binding.DISABLED, Binding.RECOVERING}


@given(st.lists(st.sampled_from(list(Input)), max_size=40))
def test_the_binding_always_matches_the_two_sessions(events: list[Input]) -> None:
    """Any sequence the two sessions can produce (a BFD Down only while BFD is Up, BGP Up
    only while it is down, the bound passing at any time, ...): after each step the binding is
    what :func:`initial` says for the sessions' states (the three waits alike), and BGP is
    dropped exactly when it was Established and BFD failed while Up, or the bound passed while
    recovering — the drop taking BGP down at once, as the speaker does."""
    bgp = bfd = False
    binding = initial(bgp, bfd)
    for event in events:
        possible = {
            Input.BGP_UP: not bgp, Input.BGP_DOWN: bgp, Input.BFD_UP: not bfd,
            Input.BFD_INIT: not bfd, Input.BFD_FAILED: bfd, Input.BFD_ENDED: bfd,
            Input.BFD_DISABLED: True, Input.RECOVERY_EXPIRED: True,
        }[event]  # fmt: skip
        if not possible:
            continue
        armed, recovering = bgp and bfd, binding is Binding.RECOVERING
        binding, action = step(binding, event)
        if event is Input.BGP_UP or event is Input.BGP_DOWN:
            bgp = event is Input.BGP_UP
        elif event is not Input.RECOVERY_EXPIRED and event is not Input.BFD_INIT:
            bfd = event is Input.BFD_UP
        assert (action is Action.DROP) == (
            (armed and event is Input.BFD_FAILED)
            or (recovering and event is Input.RECOVERY_EXPIRED)
        )
        assert (action is Action.KEEP) == (
            armed and event in (Input.BFD_ENDED, Input.BFD_DISABLED)
        )
        if action is Action.DROP:
            bgp = False
            binding, _ = step(binding, Input.BGP_DOWN)
        expected = initial(bgp, bfd)
        if expected is Binding.WAITING:
            assert binding in _UNARMED, (events, binding, bgp, bfd)
        else:
            assert binding is expected, (events, binding, bgp, bfd)


# ---- the bound on waiting (fake clock values in, decisions out) --------------------------


def replaced_while_armed(recovery_s: float = DEFAULT_RECOVERY_S) -> Pair:
    """Armed with OLD, then the remote starts over (NEW, Your Discriminator zero) at t=10."""
    p = Pair(recovery_s)
    p.up_with(OLD)
    p.bgp(True)
    p.now = 10.0
    p.remote(State.DOWN, NEW, 0)
    assert p.actions == [Action.KEEP] and p.binding is Binding.RECOVERING
    return p


def test_bfd_not_back_within_the_bound_drops_bgp() -> None:
    """The remote runs BFD toward us (its Down packets keep coming) but the new session never
    reaches Up (it does not hear us): at the bound, BGP is dropped as for a path failure."""
    p = replaced_while_armed()
    start = p.now
    deadline = p.client.deadline()
    assert deadline == pytest.approx(start + DEFAULT_RECOVERY_S)
    while p.now < start + 4.5:
        p.remote(State.DOWN, NEW, 0)  # a willing remote: its Down keeps our session in Init
        p.silence(0.2)
    assert p.session.state is State.INIT and p.binding is Binding.RECOVERING
    assert p.expire(deadline - 0.001) is Action.NONE  # early: nothing
    assert p.client.deadline() == deadline  # new packets do not push it back
    assert p.expire(deadline) is Action.DROP
    assert p.binding is Binding.IDLE and p.actions == [Action.KEEP, Action.DROP]
    assert p.client.deadline() is None
    assert p.expire(deadline + 1) is Action.NONE  # a stale timer changes nothing


def test_bfd_back_within_the_bound_rearms_and_a_late_timer_does_nothing() -> None:
    p = replaced_while_armed()
    deadline = p.client.deadline()
    assert deadline is not None
    p.now += 1.5
    p.up_with(NEW)
    assert p.binding is Binding.ARMED
    assert p.client.deadline() is None
    assert p.expire(deadline + 10) is Action.NONE and p.actions == [Action.KEEP]
    # armed again: a later replacement starts a new bound from its own time
    p.now = 100.0
    p.remote(State.DOWN, OLD, 0)
    assert p.binding is Binding.RECOVERING
    assert p.client.deadline() == pytest.approx(100.05 + DEFAULT_RECOVERY_S)


def test_remote_admin_down_has_no_bound_until_the_remote_talks_bfd_again() -> None:
    """AdminDown: BFD disabled on purpose (RFC 5882 3.2, 4.1), BGP on its hold timer only. If
    the remote later runs BFD to us again (our session goes Init), the bound starts then."""
    p = Pair()
    p.up_with(OLD)
    p.bgp(True)
    p.remote(State.ADMIN_DOWN, OLD, OURS, Diag.ADMINISTRATIVELY_DOWN)
    assert p.binding is Binding.DISABLED and p.client.deadline() is None
    p.silence(600.0)
    assert p.expire(p.now) is Action.NONE and p.binding is Binding.DISABLED
    p.remote(State.DOWN, NEW, 0)
    assert p.session.state is State.INIT and p.binding is Binding.RECOVERING
    deadline = p.client.deadline()
    assert deadline == pytest.approx(p.now + DEFAULT_RECOVERY_S)
    assert p.expire(deadline) is Action.DROP and p.binding is Binding.IDLE


def test_remote_admin_down_while_recovering_is_not_a_failure() -> None:
    """Our session is Down when the remote's AdminDown arrives (no state change, so no event):
    at the bound, the remote's last word AdminDown means disabled, not failed."""
    p = replaced_while_armed()
    assert p.session.state is State.DOWN
    p.remote(State.ADMIN_DOWN, NEW, 0, Diag.ADMINISTRATIVELY_DOWN)
    assert p.session.remote_state is State.ADMIN_DOWN and p.binding is Binding.RECOVERING
    deadline = p.client.deadline()
    assert deadline is not None and p.expire(deadline) is Action.NONE
    assert p.binding is Binding.DISABLED and p.client.deadline() is None
    assert expiry_input(State.ADMIN_DOWN) is Input.BFD_DISABLED
    assert expiry_input(State.DOWN) is expiry_input(State.INIT) is Input.RECOVERY_EXPIRED


def test_recovery_timeout_zero_means_no_bound() -> None:
    p = replaced_while_armed(recovery_s=0)
    assert p.client.deadline() is None
    assert p.expire(p.now + 3600) is Action.NONE and p.binding is Binding.RECOVERING


def test_established_without_bfd_ever_up_waits_without_bound() -> None:
    """RFC 5882 4.1: a neighbour that does not run BFD must not block BGP. Even a remote
    heard in Init (a one-way path) never counts here: only a session that was Up with us
    proves both sides run BFD."""
    p = Pair()
    p.bgp(True)
    p.remote(State.DOWN, NEW, 0)
    assert p.session.state is State.INIT and p.binding is Binding.WAITING
    assert p.client.deadline() is None
    p.silence(600.0)
    assert p.expire(p.now) is Action.NONE and p.actions == []
