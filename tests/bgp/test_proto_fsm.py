"""The FSM tables: total, and the RFC 4271 §8.2.2 transitions that matter."""

from __future__ import annotations

import pytest

from vipcast.proto.bgp.constants import State
from vipcast.proto.bgp.fsm import FSM_ERROR, TRANSITIONS, Action, Event, is_fsm_error, transition

S, E, A = State, Event, Action


def test_every_pair_is_defined() -> None:
    for state in State:
        for event in Event:
            step = transition(state, event)
            assert step.next_state in State
            if is_fsm_error(state, event):
                assert step == FSM_ERROR[state]


def test_table_only_names_real_states_and_events() -> None:
    for (state, event), step in TRANSITIONS.items():
        assert isinstance(state, State) and isinstance(event, Event)
        assert all(isinstance(a, Action) for a in step.actions)


@pytest.mark.parametrize(
    ("state", "event", "next_state", "must"),
    [
        (S.IDLE, E.MANUAL_START, S.CONNECT, {A.CONNECT, A.START_CONNECT_RETRY}),
        (S.IDLE, E.MANUAL_START_PASSIVE, S.ACTIVE, {A.START_CONNECT_RETRY}),
        (S.IDLE, E.CONNECTION_MADE, S.IDLE, {A.CLOSE}),
        (S.IDLE, E.KEEPALIVE_RECEIVED, S.IDLE, set()),
        (S.CONNECT, E.CONNECTION_MADE, S.OPEN_SENT, {A.SEND_OPEN, A.START_HOLD_LARGE}),
        (S.CONNECT, E.CONNECT_RETRY_EXPIRES, S.CONNECT, {A.CONNECT}),
        (S.CONNECT, E.CONNECTION_LOST, S.ACTIVE, {A.START_CONNECT_RETRY}),
        (S.ACTIVE, E.CONNECT_RETRY_EXPIRES, S.CONNECT, {A.CONNECT}),
        (S.OPEN_SENT, E.OPEN_RECEIVED, S.OPEN_CONFIRM, {A.NEGOTIATE, A.SEND_KEEPALIVE}),
        (S.OPEN_SENT, E.HOLD_EXPIRES, S.IDLE, {A.SEND_HOLD_EXPIRED, A.SESSION_DOWN}),
        (S.OPEN_SENT, E.CONNECTION_LOST, S.ACTIVE, {A.START_CONNECT_RETRY}),
        (S.OPEN_SENT, E.KEEPALIVE_RECEIVED, S.IDLE, {A.SEND_FSM_ERROR}),
        (S.OPEN_CONFIRM, E.KEEPALIVE_RECEIVED, S.ESTABLISHED, {A.SESSION_UP, A.RESTART_HOLD}),
        (S.OPEN_CONFIRM, E.UPDATE_RECEIVED, S.IDLE, {A.SEND_FSM_ERROR}),
        (S.OPEN_CONFIRM, E.COLLISION_DUMP, S.IDLE, {A.SEND_CEASE_COLLISION}),
        (S.ESTABLISHED, E.UPDATE_RECEIVED, S.ESTABLISHED, {A.RESTART_HOLD, A.PROCESS_MESSAGE}),
        (S.ESTABLISHED, E.KEEPALIVE_EXPIRES, S.ESTABLISHED, {A.SEND_KEEPALIVE}),
        (S.ESTABLISHED, E.OPEN_RECEIVED, S.IDLE, {A.SEND_FSM_ERROR}),
        (S.ESTABLISHED, E.MESSAGE_ERROR, S.IDLE, {A.SEND_ERROR, A.SESSION_DOWN}),
        (S.ESTABLISHED, E.MANUAL_STOP, S.IDLE, {A.SEND_CEASE_SHUTDOWN, A.STOP_IDLE_HOLD}),
        (S.ESTABLISHED, E.NOTIFICATION_RECEIVED, S.IDLE, {A.SESSION_DOWN, A.START_IDLE_HOLD}),
        (S.ESTABLISHED, E.COLLISION_DUMP, S.ESTABLISHED, set()),
    ],
)
def test_transition(state: State, event: Event, next_state: State, must: set[Action]) -> None:
    step = transition(state, event)
    assert step.next_state is next_state
    assert must <= set(step.actions)


def test_down_paths_never_restart_after_a_manual_stop() -> None:
    for state in State:
        step = transition(state, E.MANUAL_STOP)
        assert A.START_IDLE_HOLD not in step.actions
        assert step.next_state is S.IDLE
