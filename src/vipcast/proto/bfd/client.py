"""What a BFD session's state changes mean to its client (BGP), as a literal table.

RFC 5880 says how a BFD session moves; RFC 5882 says what a client does about it. This module
is the second part for one client session (a BGP peer) bound to one BFD session. It is pure:
values in, values out.

**Arming** (RFC 5882 §3.3, §4.1). A BFD Down takes the BGP session down only when the binding
is *armed*: the BGP session is Established and the BFD session is Up (in either order). A Down
while BGP is not Established changes nothing (there is no session to protect, and bringing a
BFD session up must not perturb its client), and after BGP leaves Established the binding
waits for the next Established.

**Failure or end** (RFC 5882 §3.2, §3.3, §4.2). Only a path failure drops BGP. An Up -> Down
transition is classified by :func:`bfd_input`:

* a failure (:attr:`Input.BFD_FAILED`): our Detection Time expired, or the remote's session,
  the same one we were Up with, went Down with a diagnostic that names a failure (1 detection
  time expired, 2 echo failed, 4 forwarding plane reset, 5 path down, 6/8 concatenated path
  down) or with none;
* an end (:attr:`Input.BFD_ENDED`): the remote signals AdminDown (§3.2), we took the session
  AdminDown ourselves, the Down comes from a *new* remote session (a different My
  Discriminator than the one we were Up with: the remote lost its BFD state and is bringing a
  session up again, §3.3), or the remote's Down carries diagnostic 3 "Neighbor Signaled
  Session Down" although our session was Up and never signalled Down — the remote is not
  reporting the path, its control plane is ending the session. FRR 8.4 sends exactly that
  when bgpd hands a neighbour's BFD session over to a new one at Established.

After an end BGP stays Established and the binding waits for BFD Up again (armed from then
on), for a bounded time or not at all:

* **disabled** (:attr:`Binding.DISABLED`, no bound): the end was AdminDown. BFD has been
  taken out of service on purpose; RFC 5882 §3.2 says a client with its own liveness (BGP's
  hold timer) is not told of a failure, and §4.1 that the adjacency must be allowed. If the
  remote later talks BFD to us again (our session leaves Down for Init), the wait becomes
  bounded as below;
* **recovering** (:attr:`Binding.RECOVERING`, bounded by the profile's recovery timeout,
  :data:`DEFAULT_RECOVERY_S` by default): the remote replaced or ended the session but still
  runs BFD toward us. Both systems are willing to run BFD, so RFC 5882 §4.1's reasoning
  applies: if the session cannot be brought back, the path is presumed unable to carry data,
  and once the bound passes with BFD still not Up, the binding drops BGP as for a path
  failure (:attr:`Input.RECOVERY_EXPIRED`) — unless the remote's last word by then is
  AdminDown (disabled after all).

A BGP session that reaches Established with a BFD session that never came Up waits without
bound (:attr:`Binding.WAITING`): RFC 5882 §4.1, a neighbour that does not run BFD must not
block the adjacency.

:class:`Client` is the same table with the clock values the bound needs: the caller feeds it
inputs with ``now``, arms a timer at :meth:`Client.deadline`, and calls :meth:`Client.expire`
with ``now`` and the remote's last state when it fires. ``docs/bfd.md`` has the reasoning and
the FRR 8.4 capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from vipcast.proto.bfd.constants import DEFAULT_RECOVERY_S, Diag, State
from vipcast.proto.bfd.session import StateChanged


class Binding(Enum):
    """Where one BGP session and its BFD session stand, together."""

    IDLE = "BGP not Established, BFD not Up"
    BFD_UP = "BFD Up, BGP not Established"
    WAITING = "BGP Established, BFD not Up since: waiting for BFD Up, no bound"
    DISABLED = "BGP Established, the remote took BFD AdminDown: waiting for BFD Up, no bound"
    RECOVERING = "BGP Established, the remote replaced or ended BFD: waiting, bounded"
    ARMED = "BGP Established and BFD Up: a BFD failure drops BGP"


class Input(Enum):
    """What moves a binding."""

    BGP_UP = "BGP session Established"
    BGP_DOWN = "BGP session left Established"
    BFD_UP = "BFD session Up"
    BFD_INIT = "BFD session Init: the remote talks BFD to us"
    BFD_FAILED = "BFD session Down: path failure"
    BFD_ENDED = "BFD session Down: ended or replaced by the remote, not a path failure"
    BFD_DISABLED = "BFD session AdminDown (here or at the remote), not a path failure"
    RECOVERY_EXPIRED = "BFD not Up again within the recovery timeout"


class Action(Enum):
    """What the binding asks of the BGP side."""

    NONE = "nothing"
    DROP = "drop the BGP session now"
    KEEP = "keep the BGP session (BFD ended without a path failure)"


_I, _B, _W, _A = Binding.IDLE, Binding.BFD_UP, Binding.WAITING, Binding.ARMED
_D, _R = Binding.DISABLED, Binding.RECOVERING

TRANSITIONS: dict[tuple[Binding, Input], tuple[Binding, Action]] = {
    (_I, Input.BFD_UP): (_B, Action.NONE),
    (_I, Input.BGP_UP): (_W, Action.NONE),
    # BFD went Up before BGP was Established: nothing to protect yet, whatever the cause
    (_B, Input.BGP_UP): (_A, Action.NONE),
    (_B, Input.BFD_FAILED): (_I, Action.NONE),
    (_B, Input.BFD_ENDED): (_I, Action.NONE),
    (_B, Input.BFD_DISABLED): (_I, Action.NONE),
    # Established, BFD never Up since: the neighbour may not run BFD (RFC 5882 4.1)
    (_W, Input.BFD_UP): (_A, Action.NONE),
    (_W, Input.BGP_DOWN): (_I, Action.NONE),
    # armed: a path failure drops BGP; the binding waits for the next Established
    (_A, Input.BFD_FAILED): (_I, Action.DROP),
    (_A, Input.BFD_ENDED): (_R, Action.KEEP),
    (_A, Input.BFD_DISABLED): (_D, Action.KEEP),
    (_A, Input.BGP_DOWN): (_B, Action.NONE),
    # disabled by the remote: no bound, until the remote talks BFD to us again
    (_D, Input.BFD_UP): (_A, Action.NONE),
    (_D, Input.BFD_INIT): (_R, Action.NONE),
    (_D, Input.BGP_DOWN): (_I, Action.NONE),
    # recovering: bounded; the bound passing with BFD still not Up is a path failure
    (_R, Input.BFD_UP): (_A, Action.NONE),
    (_R, Input.BFD_DISABLED): (_D, Action.NONE),
    (_R, Input.RECOVERY_EXPIRED): (_I, Action.DROP),
    (_R, Input.BGP_DOWN): (_I, Action.NONE),
}

#: remote diagnostics that report a failure of the path (RFC 5880 §4.1)
FAILURE_DIAGS = frozenset(
    int(d)
    for d in (
        Diag.CONTROL_DETECTION_TIME_EXPIRED,
        Diag.ECHO_FUNCTION_FAILED,
        Diag.FORWARDING_PLANE_RESET,
        Diag.PATH_DOWN,
        Diag.CONCATENATED_PATH_DOWN,
        Diag.REVERSE_CONCATENATED_PATH_DOWN,
    )
)


def step(binding: Binding, event: Input) -> tuple[Binding, Action]:
    """The binding after ``event`` and what to do; an event with no entry changes nothing."""
    return TRANSITIONS.get((binding, event), (binding, Action.NONE))


def initial(bgp_established: bool, bfd_up: bool) -> Binding:
    """The binding of a session pair first seen in these states."""
    if bgp_established:
        return Binding.ARMED if bfd_up else Binding.WAITING
    return Binding.BFD_UP if bfd_up else Binding.IDLE


def bfd_input(change: StateChanged) -> Input | None:
    """The binding's input for one BFD state change (None: the change does not matter)."""
    if change.new is State.UP:
        return Input.BFD_UP
    if change.new is State.INIT:
        return Input.BFD_INIT
    if change.old is not State.UP:
        # Init -> Down because the remote went AdminDown: it disabled BFD
        if change.new is State.DOWN and change.remote_state is State.ADMIN_DOWN:
            return Input.BFD_DISABLED
        return None
    if change.new is State.ADMIN_DOWN or change.remote_state is State.ADMIN_DOWN:
        return Input.BFD_DISABLED
    if change.diag is Diag.NEIGHBOR_SIGNALED_SESSION_DOWN:
        if change.remote_new:
            return Input.BFD_ENDED
        if change.remote_diag == Diag.NEIGHBOR_SIGNALED_SESSION_DOWN:
            return Input.BFD_ENDED
    return Input.BFD_FAILED


def expiry_input(remote_state: State) -> Input:
    """What the recovery timeout passing means, given the remote's last state: AdminDown
    (it disabled BFD meanwhile) is not a failure, anything else is."""
    if remote_state is State.ADMIN_DOWN:
        return Input.BFD_DISABLED
    return Input.RECOVERY_EXPIRED


@dataclass
class Client:
    """One binding with the clock values its bound needs (sans-IO, like the session).

    ``recovery_s`` bounds :attr:`Binding.RECOVERING` (0: no bound, the wait lasts as long as
    BGP does). ``since`` is the clock time the binding entered its current state.
    """

    recovery_s: float = DEFAULT_RECOVERY_S
    binding: Binding = Binding.IDLE
    since: float = 0.0

    def feed(self, event: Input, now: float) -> Action:
        """Move on ``event`` at ``now``; what the BGP side must do."""
        after, action = step(self.binding, event)
        if after is not self.binding:
            self.binding, self.since = after, now
        return action

    def deadline(self) -> float | None:
        """When :meth:`expire` must be called (None: nothing is bounded now)."""
        if self.binding is Binding.RECOVERING and self.recovery_s > 0:
            return self.since + self.recovery_s
        return None

    def expire(self, now: float, remote_state: State) -> Action:
        """The timer armed at :meth:`deadline` fired at ``now``; ``remote_state`` is the last
        state the remote sent. Early or stale calls change nothing."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return Action.NONE
        return self.feed(expiry_input(remote_state), now)


def reason(change: StateChanged) -> str:
    """Why :func:`bfd_input` called an Up -> Down change what it did, for logs and status."""
    if change.new is State.ADMIN_DOWN:
        return "taken AdminDown here"
    if change.remote_state is State.ADMIN_DOWN:
        return "the remote signalled AdminDown (RFC 5882 3.2)"
    if change.diag is Diag.CONTROL_DETECTION_TIME_EXPIRED:
        return "detection time expired"
    if change.remote_new:
        return "the remote replaced its session (new discriminator, RFC 5882 3.3)"
    if change.remote_diag == Diag.NEIGHBOR_SIGNALED_SESSION_DOWN:
        return (
            "the remote ended the session with diag 3 while ours was Up "
            "(not a path failure, RFC 5882 3.3)"
        )
    return f"the remote signalled Down (its diag {_diag_name(change.remote_diag)})"


def _diag_name(value: int) -> str:
    return Diag(value).name if value in Diag._value2member_map_ else str(value)
