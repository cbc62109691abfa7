"""The RFC 4271 §8 finite state machine as literal tables.

``TRANSITIONS`` lists every (state, event) pair the RFC gives a meaning to; any other pair is
an FSM error, handled by ``FSM_ERROR[state]`` (RFC 4271 §8.2.1.5, subcodes from RFC 6608).
:func:`transition` is therefore total. The session executes the returned actions in order;
nothing here knows about bytes or timers' values.

Simplifications against the RFC: no DelayOpen, TCP connect success in either direction is one
event (``CONNECTION_MADE``), and a connection collision is resolved by the driver through
``COLLISION_DUMP``. Peer oscillation damping (§8.1.1 DampPeerOscillations) is the idle hold's
length, not a table row: ``START_IDLE_HOLD`` arms a hold that is 0 after the first drop and
grows with each further drop in a row (:func:`.config.idle_hold`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .constants import State


class Event(enum.Enum):
    MANUAL_START = 1
    MANUAL_STOP = 2
    AUTOMATIC_START = 3
    MANUAL_START_PASSIVE = 4
    AUTOMATIC_START_PASSIVE = 5
    CONNECT_RETRY_EXPIRES = 9
    HOLD_EXPIRES = 10
    KEEPALIVE_EXPIRES = 11
    CONNECTION_MADE = 17
    CONNECTION_LOST = 18
    OPEN_RECEIVED = 19
    MESSAGE_ERROR = 21  # header, OPEN or UPDATE error (events 21, 22, 28)
    COLLISION_DUMP = 23
    NOTIFICATION_RECEIVED = 25  # events 24 and 25
    KEEPALIVE_RECEIVED = 26
    UPDATE_RECEIVED = 27  # UPDATE or ROUTE-REFRESH


class Action(enum.Enum):
    CONNECT = "ask the driver for a TCP connection"
    CLOSE = "ask the driver to close the TCP connection"
    SEND_OPEN = "send our OPEN"
    SEND_KEEPALIVE = "send a KEEPALIVE"
    SEND_ERROR = "send the NOTIFICATION of the pending protocol error"
    SEND_FSM_ERROR = "send NOTIFICATION 5 (subcode by state)"
    SEND_HOLD_EXPIRED = "send NOTIFICATION 4"
    SEND_CEASE_SHUTDOWN = "send NOTIFICATION 6/2"
    SEND_CEASE_COLLISION = "send NOTIFICATION 6/7"
    START_CONNECT_RETRY = "(re)start the ConnectRetry timer"
    STOP_CONNECT_RETRY = "stop the ConnectRetry timer"
    START_HOLD_LARGE = "start the hold timer with the large OpenSent value"
    RESTART_HOLD = "restart the hold timer with the negotiated value"
    RESTART_KEEPALIVE = "restart the keepalive timer"
    STOP_TIMERS = "stop every timer and forget the connection"
    START_IDLE_HOLD = "arm the automatic restart"
    STOP_IDLE_HOLD = "disarm the automatic restart"
    NEGOTIATE = "adopt the negotiated parameters"
    SESSION_UP = "announce Established, send the Adj-RIB-Out"
    SESSION_DOWN = "announce that the session went down"
    PROCESS_MESSAGE = "act on the UPDATE or ROUTE-REFRESH just received"


@dataclass(frozen=True)
class Transition:
    next_state: State
    actions: tuple[Action, ...] = ()


A = Action
S = State
E = Event

_CONNECT = (A.START_CONNECT_RETRY, A.CONNECT)
_LISTEN = (A.START_CONNECT_RETRY,)
_SEND_OPEN = (A.STOP_CONNECT_RETRY, A.SEND_OPEN, A.START_HOLD_LARGE)
_DROP = (A.CLOSE, A.STOP_TIMERS, A.START_IDLE_HOLD)
_DOWN = (A.CLOSE, A.STOP_TIMERS, A.SESSION_DOWN, A.START_IDLE_HOLD)
_STOP = (A.SEND_CEASE_SHUTDOWN, A.CLOSE, A.STOP_TIMERS, A.SESSION_DOWN, A.STOP_IDLE_HOLD)
_HOLD = (A.SEND_HOLD_EXPIRED, *_DOWN)
_ERROR = (A.SEND_ERROR, *_DOWN)
_COLLISION = (A.SEND_CEASE_COLLISION, A.CLOSE, A.STOP_TIMERS, A.SESSION_DOWN, A.STOP_IDLE_HOLD)
_LOST = (A.STOP_TIMERS, A.SESSION_DOWN, A.START_IDLE_HOLD)

TRANSITIONS: dict[tuple[State, Event], Transition] = {
    # Idle: only a start leaves it; an incoming connection is refused
    (S.IDLE, E.MANUAL_START): Transition(S.CONNECT, (A.STOP_IDLE_HOLD, *_CONNECT)),
    (S.IDLE, E.AUTOMATIC_START): Transition(S.CONNECT, _CONNECT),
    (S.IDLE, E.MANUAL_START_PASSIVE): Transition(S.ACTIVE, (A.STOP_IDLE_HOLD, *_LISTEN)),
    (S.IDLE, E.AUTOMATIC_START_PASSIVE): Transition(S.ACTIVE, _LISTEN),
    (S.IDLE, E.MANUAL_STOP): Transition(S.IDLE, (A.STOP_TIMERS, A.STOP_IDLE_HOLD)),
    (S.IDLE, E.CONNECTION_MADE): Transition(S.IDLE, (A.CLOSE,)),
    (S.IDLE, E.CONNECTION_LOST): Transition(S.IDLE),
    # Connect: waiting for our outgoing connection
    (S.CONNECT, E.MANUAL_START): Transition(S.CONNECT),
    (S.CONNECT, E.AUTOMATIC_START): Transition(S.CONNECT),
    (S.CONNECT, E.MANUAL_START_PASSIVE): Transition(S.CONNECT),
    (S.CONNECT, E.AUTOMATIC_START_PASSIVE): Transition(S.CONNECT),
    (S.CONNECT, E.MANUAL_STOP): Transition(S.IDLE, (A.CLOSE, A.STOP_TIMERS, A.STOP_IDLE_HOLD)),
    (S.CONNECT, E.CONNECT_RETRY_EXPIRES): Transition(S.CONNECT, _CONNECT),
    (S.CONNECT, E.CONNECTION_MADE): Transition(S.OPEN_SENT, _SEND_OPEN),
    (S.CONNECT, E.CONNECTION_LOST): Transition(S.ACTIVE, _LISTEN),
    # Active: listening; the ConnectRetry timer sends us back to Connect
    (S.ACTIVE, E.MANUAL_START): Transition(S.ACTIVE),
    (S.ACTIVE, E.AUTOMATIC_START): Transition(S.ACTIVE),
    (S.ACTIVE, E.MANUAL_START_PASSIVE): Transition(S.ACTIVE),
    (S.ACTIVE, E.AUTOMATIC_START_PASSIVE): Transition(S.ACTIVE),
    (S.ACTIVE, E.MANUAL_STOP): Transition(S.IDLE, (A.CLOSE, A.STOP_TIMERS, A.STOP_IDLE_HOLD)),
    (S.ACTIVE, E.CONNECT_RETRY_EXPIRES): Transition(S.CONNECT, _CONNECT),
    (S.ACTIVE, E.CONNECTION_MADE): Transition(S.OPEN_SENT, _SEND_OPEN),
    (S.ACTIVE, E.CONNECTION_LOST): Transition(S.IDLE, (A.STOP_TIMERS, A.START_IDLE_HOLD)),
    # OpenSent: our OPEN is out, waiting for theirs
    (S.OPEN_SENT, E.MANUAL_START): Transition(S.OPEN_SENT),
    (S.OPEN_SENT, E.AUTOMATIC_START): Transition(S.OPEN_SENT),
    (S.OPEN_SENT, E.MANUAL_START_PASSIVE): Transition(S.OPEN_SENT),
    (S.OPEN_SENT, E.AUTOMATIC_START_PASSIVE): Transition(S.OPEN_SENT),
    (S.OPEN_SENT, E.MANUAL_STOP): Transition(S.IDLE, _STOP),
    (S.OPEN_SENT, E.HOLD_EXPIRES): Transition(S.IDLE, _HOLD),
    (S.OPEN_SENT, E.CONNECTION_LOST): Transition(
        S.ACTIVE, (A.STOP_TIMERS, A.SESSION_DOWN, A.START_CONNECT_RETRY)
    ),
    (S.OPEN_SENT, E.OPEN_RECEIVED): Transition(
        S.OPEN_CONFIRM, (A.NEGOTIATE, A.SEND_KEEPALIVE, A.RESTART_KEEPALIVE, A.RESTART_HOLD)
    ),
    (S.OPEN_SENT, E.MESSAGE_ERROR): Transition(S.IDLE, _ERROR),
    (S.OPEN_SENT, E.NOTIFICATION_RECEIVED): Transition(S.IDLE, _DOWN),
    (S.OPEN_SENT, E.COLLISION_DUMP): Transition(S.IDLE, _COLLISION),
    # OpenConfirm: OPENs exchanged, waiting for the first KEEPALIVE
    (S.OPEN_CONFIRM, E.MANUAL_START): Transition(S.OPEN_CONFIRM),
    (S.OPEN_CONFIRM, E.AUTOMATIC_START): Transition(S.OPEN_CONFIRM),
    (S.OPEN_CONFIRM, E.MANUAL_START_PASSIVE): Transition(S.OPEN_CONFIRM),
    (S.OPEN_CONFIRM, E.AUTOMATIC_START_PASSIVE): Transition(S.OPEN_CONFIRM),
    (S.OPEN_CONFIRM, E.MANUAL_STOP): Transition(S.IDLE, _STOP),
    (S.OPEN_CONFIRM, E.HOLD_EXPIRES): Transition(S.IDLE, _HOLD),
    (S.OPEN_CONFIRM, E.KEEPALIVE_EXPIRES): Transition(
        S.OPEN_CONFIRM, (A.SEND_KEEPALIVE, A.RESTART_KEEPALIVE)
    ),
    (S.OPEN_CONFIRM, E.CONNECTION_LOST): Transition(S.IDLE, _LOST),
    (S.OPEN_CONFIRM, E.MESSAGE_ERROR): Transition(S.IDLE, _ERROR),
    (S.OPEN_CONFIRM, E.NOTIFICATION_RECEIVED): Transition(S.IDLE, _DOWN),
    (S.OPEN_CONFIRM, E.COLLISION_DUMP): Transition(S.IDLE, _COLLISION),
    (S.OPEN_CONFIRM, E.KEEPALIVE_RECEIVED): Transition(
        S.ESTABLISHED, (A.RESTART_HOLD, A.SESSION_UP)
    ),
    # Established
    (S.ESTABLISHED, E.MANUAL_START): Transition(S.ESTABLISHED),
    (S.ESTABLISHED, E.AUTOMATIC_START): Transition(S.ESTABLISHED),
    (S.ESTABLISHED, E.MANUAL_START_PASSIVE): Transition(S.ESTABLISHED),
    (S.ESTABLISHED, E.AUTOMATIC_START_PASSIVE): Transition(S.ESTABLISHED),
    (S.ESTABLISHED, E.MANUAL_STOP): Transition(S.IDLE, _STOP),
    (S.ESTABLISHED, E.HOLD_EXPIRES): Transition(S.IDLE, _HOLD),
    (S.ESTABLISHED, E.KEEPALIVE_EXPIRES): Transition(
        S.ESTABLISHED, (A.SEND_KEEPALIVE, A.RESTART_KEEPALIVE)
    ),
    (S.ESTABLISHED, E.CONNECTION_LOST): Transition(S.IDLE, _LOST),
    (S.ESTABLISHED, E.MESSAGE_ERROR): Transition(S.IDLE, _ERROR),
    (S.ESTABLISHED, E.NOTIFICATION_RECEIVED): Transition(S.IDLE, _DOWN),
    # RFC 4271 §6.8: a collision with an established session is resolved against the newcomer
    (S.ESTABLISHED, E.COLLISION_DUMP): Transition(S.ESTABLISHED),
    (S.ESTABLISHED, E.KEEPALIVE_RECEIVED): Transition(S.ESTABLISHED, (A.RESTART_HOLD,)),
    (S.ESTABLISHED, E.UPDATE_RECEIVED): Transition(
        S.ESTABLISHED, (A.RESTART_HOLD, A.PROCESS_MESSAGE)
    ),
}

#: what any pair missing from TRANSITIONS does: without a connection, silently back to Idle
#: (Idle itself ignores it); with one, NOTIFICATION 5 and down
FSM_ERROR: dict[State, Transition] = {
    S.IDLE: Transition(S.IDLE),
    S.CONNECT: Transition(S.IDLE, _DROP),
    S.ACTIVE: Transition(S.IDLE, _DROP),
    S.OPEN_SENT: Transition(S.IDLE, (A.SEND_FSM_ERROR, *_DOWN)),
    S.OPEN_CONFIRM: Transition(S.IDLE, (A.SEND_FSM_ERROR, *_DOWN)),
    S.ESTABLISHED: Transition(S.IDLE, (A.SEND_FSM_ERROR, *_DOWN)),
}


def transition(state: State, event: Event) -> Transition:
    """The transition for any (state, event) pair."""
    return TRANSITIONS.get((state, event)) or FSM_ERROR[state]


def is_fsm_error(state: State, event: Event) -> bool:
    return (state, event) not in TRANSITIONS
