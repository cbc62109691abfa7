"""Framing: byte-by-byte safety and every header error."""

from __future__ import annotations

import pytest

from vipcast.proto.bgp.constants import MARKER
from vipcast.proto.bgp.errors import BGPError
from vipcast.proto.bgp.messages import Keepalive, Notification, encode_message
from vipcast.proto.bgp.wire import Framer, frame


def _drain(framer: Framer) -> list[tuple[int, bytes]]:
    out = []
    while (item := framer.next_message()) is not None:
        out.append(item)
    return out


def test_stream_fed_byte_by_byte_gives_the_same_messages() -> None:
    stream = (
        encode_message(Keepalive())
        + frame(2, b"\0\0\0\0")
        + encode_message(Notification(6, 2, b"\x02hi"))
    )
    whole = Framer()
    whole.feed(stream)
    expected = _drain(whole)
    assert [t for t, _ in expected] == [4, 2, 3]
    slow = Framer()
    got = []
    for i in range(len(stream)):
        slow.feed(stream[i : i + 1])
        got += _drain(slow)
    assert got == expected
    assert slow.buffered == 0


@pytest.mark.parametrize(
    ("raw", "code", "subcode", "data"),
    [
        (b"\xfe" + MARKER[1:] + b"\x00\x13\x04", 1, 1, b""),
        (MARKER + b"\x00\x12\x04", 1, 2, b"\x00\x12"),  # shorter than a header
        (MARKER + b"\x00\x14\x04" + b"\0", 1, 2, b"\x00\x14"),  # KEEPALIVE must be 19
        (MARKER + b"\x00\x1c\x01" + b"\0" * 9, 1, 2, b"\x00\x1c"),  # OPEN below 29
        (MARKER + b"\x10\x01\x02", 1, 2, b"\x10\x01"),  # 4097 without extended messages
        (MARKER + b"\x00\x13\x09", 1, 3, b"\x09"),  # unknown type
    ],
)
def test_header_errors(raw: bytes, code: int, subcode: int, data: bytes) -> None:
    framer = Framer()
    framer.feed(raw)
    with pytest.raises(BGPError) as info:
        framer.next_message()
    assert (info.value.code, info.value.subcode, info.value.data) == (code, subcode, data)


def test_extended_messages_raise_the_limit_except_for_open() -> None:
    framer = Framer(65535)
    big = frame(2, b"\0\0\0\0" + b"\0" * 5000)
    framer.feed(big)
    assert framer.next_message() is not None
    framer.feed(MARKER + b"\x10\x01\x01")
    with pytest.raises(BGPError):
        framer.next_message()


def test_partial_header_waits() -> None:
    framer = Framer()
    framer.feed(MARKER[:10])
    assert framer.next_message() is None
