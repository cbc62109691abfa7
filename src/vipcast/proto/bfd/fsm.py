"""The BFD session state machine (RFC 5880 §6.2, §6.8.6) as a literal table.

Keys are (local state, input); values are (next state, diagnostic to record). An input with no
entry leaves the state alone. Received packets are inputs by the remote's ``Sta`` field; the
session drops every packet while AdminDown before it reaches this table (§6.8.6).
"""

from __future__ import annotations

from enum import Enum

from vipcast.proto.bfd.constants import Diag, State


class Input(Enum):
    """What can move a session."""

    RX_ADMIN_DOWN = "received AdminDown"
    RX_DOWN = "received Down"
    RX_INIT = "received Init"
    RX_UP = "received Up"
    DETECTION_TIMEOUT = "detection time expired"
    ADMIN_DOWN = "administratively disabled"
    ADMIN_UP = "administratively enabled"


RX_INPUT: dict[State, Input] = {
    State.ADMIN_DOWN: Input.RX_ADMIN_DOWN,
    State.DOWN: Input.RX_DOWN,
    State.INIT: Input.RX_INIT,
    State.UP: Input.RX_UP,
}

_D, _I, _U, _A = State.DOWN, State.INIT, State.UP, State.ADMIN_DOWN

TRANSITIONS: dict[tuple[State, Input], tuple[State, Diag]] = {
    # Down: a three-way handshake through Init
    (_D, Input.RX_DOWN): (_I, Diag.NONE),
    (_D, Input.RX_INIT): (_U, Diag.NONE),
    # Init: the remote has seen us
    (_I, Input.RX_ADMIN_DOWN): (_D, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN),
    (_I, Input.RX_INIT): (_U, Diag.NONE),
    (_I, Input.RX_UP): (_U, Diag.NONE),
    (_I, Input.DETECTION_TIMEOUT): (_D, Diag.CONTROL_DETECTION_TIME_EXPIRED),
    # Up: only the remote's word or silence brings it down
    (_U, Input.RX_ADMIN_DOWN): (_D, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN),
    (_U, Input.RX_DOWN): (_D, Diag.NEIGHBOR_SIGNALED_SESSION_DOWN),
    (_U, Input.DETECTION_TIMEOUT): (_D, Diag.CONTROL_DETECTION_TIME_EXPIRED),
    # local administration (§6.8.16)
    (_D, Input.ADMIN_DOWN): (_A, Diag.ADMINISTRATIVELY_DOWN),
    (_I, Input.ADMIN_DOWN): (_A, Diag.ADMINISTRATIVELY_DOWN),
    (_U, Input.ADMIN_DOWN): (_A, Diag.ADMINISTRATIVELY_DOWN),
    (_A, Input.ADMIN_UP): (_D, Diag.NONE),
}


def step(state: State, event: Input) -> tuple[State, Diag] | None:
    """The transition for ``event`` in ``state``, or None when the state does not change."""
    return TRANSITIONS.get((state, event))
