"""A session's answers to bad input: the NOTIFICATION (code, subcode) for each error before
and after Established, treat-as-withdraw that keeps the session."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from session_driver import A_CFG, drain, established, messages, of, open_bytes, opened

from vipcast.proto.bgp import (
    IPV4_UNICAST,
    CloseWanted,
    NotificationSent,
    RoutesReceived,
    SessionDown,
    State,
)
from vipcast.proto.bgp.capabilities import FourOctetAs
from vipcast.proto.bgp.constants import MARKER
from vipcast.proto.bgp.messages import Keepalive, Notification, RouteRefresh, encode_message
from vipcast.proto.bgp.update import Update


@pytest.mark.parametrize(
    ("raw", "code", "subcode"),
    [
        (open_bytes(capabilities=(FourOctetAs(65099),)), 2, 2),  # bad peer AS
        (open_bytes(asn=65099, capabilities=()), 2, 2),
        (open_bytes(hold_time=2), 2, 6),
        (open_bytes(router_id="0.0.0.0"), 2, 3),
        (open_bytes(version=3), 2, 1),
        (MARKER + bytes.fromhex("002001") + bytes.fromhex("04fdea005ac000020203010100"), 2, 4),
        (b"\x00" * 19, 1, 1),
        (encode_message(Keepalive()), 5, 1),  # KEEPALIVE in OpenSent
    ],
    ids=[
        "4-octet-as-mismatch",
        "my-as-mismatch",
        "hold-time-2",
        "router-id-zero",
        "version-3",
        "optional-parameter-1",
        "bad-marker",
        "keepalive-in-open-sent",
    ],
)
def test_errors_before_established(raw: bytes, code: int, subcode: int) -> None:
    s = opened()
    s.receive_data(raw, 1)
    events = drain(s)
    (sent,) = of(NotificationSent, events)
    assert (sent.notification.code, sent.notification.subcode) == (code, subcode)
    assert messages(s.data_to_send())[-1] == sent.notification
    assert of(SessionDown, events)
    assert of(CloseWanted, events)
    assert s.state is State.IDLE
    s.receive_data(encode_message(Keepalive()), 2)  # ignored once closed
    assert s.data_to_send() == b""


def test_update_in_open_confirm_is_fsm_error_2() -> None:
    s = opened()
    s.receive_data(open_bytes(), 1)
    s.data_to_send()
    s.receive_data(encode_message(Update()), 1)
    assert messages(s.data_to_send()) == [Notification(5, 2)]


def test_open_in_established_is_fsm_error_3() -> None:
    s = established()
    s.receive_data(open_bytes(), 2)
    assert messages(s.data_to_send()) == [Notification(5, 3)]


def test_malformed_update_resets_with_update_error() -> None:
    s = established()
    bad = MARKER + struct.pack("!HB", 19 + 4, 2) + b"\x00\x09\x00\x00"
    s.receive_data(bad, 2)
    (note,) = messages(s.data_to_send())
    assert isinstance(note, Notification) and note.code == 3
    assert s.state is State.IDLE


def test_treat_as_withdraw_keeps_the_session() -> None:
    s = established()
    attrs = bytes.fromhex("40010103")  # bad ORIGIN value
    body = b"\0\0" + struct.pack("!H", len(attrs)) + attrs + bytes.fromhex("18c63364")
    s.receive_data(MARKER + struct.pack("!HB", 19 + len(body), 2) + body, 2)
    assert s.state is State.ESTABLISHED
    assert drain(s) == [RoutesReceived(0, 1, True)]


def test_route_refresh_without_the_capability_is_a_bad_type() -> None:
    s = established(replace(A_CFG, route_refresh=False))
    s.receive_data(encode_message(RouteRefresh(IPV4_UNICAST)), 3)
    assert messages(s.data_to_send()) == [Notification(1, 3, b"\x05")]
