"""The BFD state table, entry by entry (RFC 5880 §6.8.6, §6.8.4, §6.8.16)."""

from __future__ import annotations

import pytest

from vipcast.proto.bfd import Diag, State
from vipcast.proto.bfd.fsm import Input, step

A, D, INIT, U = State.ADMIN_DOWN, State.DOWN, State.INIT, State.UP
NONE, EXPIRED, NEIGHBOR, ADMIN = (
    Diag.NONE,
    Diag.CONTROL_DETECTION_TIME_EXPIRED,
    Diag.NEIGHBOR_SIGNALED_SESSION_DOWN,
    Diag.ADMINISTRATIVELY_DOWN,
)

EXPECTED: dict[tuple[State, Input], tuple[State, Diag] | None] = {
    (D, Input.RX_ADMIN_DOWN): None,
    (D, Input.RX_DOWN): (INIT, NONE),
    (D, Input.RX_INIT): (U, NONE),
    (D, Input.RX_UP): None,
    (D, Input.DETECTION_TIMEOUT): None,
    (D, Input.ADMIN_DOWN): (A, ADMIN),
    (D, Input.ADMIN_UP): None,
    (INIT, Input.RX_ADMIN_DOWN): (D, NEIGHBOR),
    (INIT, Input.RX_DOWN): None,
    (INIT, Input.RX_INIT): (U, NONE),
    (INIT, Input.RX_UP): (U, NONE),
    (INIT, Input.DETECTION_TIMEOUT): (D, EXPIRED),
    (INIT, Input.ADMIN_DOWN): (A, ADMIN),
    (INIT, Input.ADMIN_UP): None,
    (U, Input.RX_ADMIN_DOWN): (D, NEIGHBOR),
    (U, Input.RX_DOWN): (D, NEIGHBOR),
    (U, Input.RX_INIT): None,
    (U, Input.RX_UP): None,
    (U, Input.DETECTION_TIMEOUT): (D, EXPIRED),
    (U, Input.ADMIN_DOWN): (A, ADMIN),
    (U, Input.ADMIN_UP): None,
    (A, Input.RX_ADMIN_DOWN): None,
    (A, Input.RX_DOWN): None,
    (A, Input.RX_INIT): None,
    (A, Input.RX_UP): None,
    (A, Input.DETECTION_TIMEOUT): None,
    (A, Input.ADMIN_DOWN): None,
    (A, Input.ADMIN_UP): (D, NONE),
}


def test_table_is_complete() -> None:
    assert set(EXPECTED) == {(s, i) for s in State for i in Input}


@pytest.mark.parametrize(("key", "want"), sorted(EXPECTED.items(), key=str))
def test_transition(key: tuple[State, Input], want: tuple[State, Diag] | None) -> None:
    assert step(*key) == want
