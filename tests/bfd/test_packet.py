"""BFD control packet codec: vectors, every drop rule of RFC 5880 §6.8.6, fuzzing."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bfd import (
    Auth,
    AuthType,
    BFDPacketError,
    ControlPacket,
    DropReason,
    State,
    decode,
)

# A Down packet as a freshly started peer sends it: v1, diag 0, Down, mult 3, len 24,
# my discr 1, your discr 0, desired tx 1 s, required rx 300 ms, echo 50 ms.
DOWN_HELLO = bytes.fromhex("20 40 03 18 00000001 00000000 000f4240 000493e0 0000c350")
# Up with Poll, diag 0, mult 3, discriminators 0x11223344 / 0x55667788, 100 ms both ways.
UP_POLL = bytes.fromhex("20 e0 03 18 11223344 55667788 000186a0 000186a0 00000000")
# Down, diag 1 (detection time expired), Final, mult 5.
DOWN_FINAL_DIAG1 = bytes.fromhex("21 50 05 18 00000007 00000009 000f4240 000f4240 00000000")


def test_vector_down_hello() -> None:
    p = decode(DOWN_HELLO)
    assert p == ControlPacket(
        state=State.DOWN,
        my_discr=1,
        your_discr=0,
        diag=0,
        detect_mult=3,
        desired_min_tx_us=1_000_000,
        required_min_rx_us=300_000,
        required_min_echo_rx_us=50_000,
    )
    assert p.encode() == DOWN_HELLO


def test_vector_up_poll() -> None:
    p = decode(UP_POLL)
    assert (p.state, p.poll, p.final) == (State.UP, True, False)
    assert (p.my_discr, p.your_discr) == (0x11223344, 0x55667788)
    assert p.desired_min_tx_us == p.required_min_rx_us == 100_000
    assert p.encode() == UP_POLL


def test_vector_final_and_diag() -> None:
    p = decode(DOWN_FINAL_DIAG1)
    assert (p.state, p.diag, p.final, p.detect_mult) == (State.DOWN, 1, True, 5)
    assert p.encode() == DOWN_FINAL_DIAG1


def test_flags_cpi_and_demand() -> None:
    p = ControlPacket(State.UP, my_discr=1, your_discr=2, control_plane_independent=True)
    assert p.encode()[1] == 0xC8
    p = ControlPacket(State.UP, my_discr=1, your_discr=2, demand=True)
    assert p.encode()[1] == 0xC2
    assert decode(p.encode()).demand


def _patch(data: bytes, offset: int, value: int) -> bytes:
    b = bytearray(data)
    b[offset] = value
    return bytes(b)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (DOWN_HELLO[:23], DropReason.TOO_SHORT),
        (b"", DropReason.TOO_SHORT),
        (_patch(DOWN_HELLO, 0, 0x40), DropReason.BAD_VERSION),  # version 2
        (_patch(DOWN_HELLO, 0, 0x00), DropReason.BAD_VERSION),  # version 0
        (_patch(DOWN_HELLO, 3, 23), DropReason.BAD_LENGTH),
        (_patch(DOWN_HELLO, 3, 28) + b"\0" * 4, DropReason.BAD_LENGTH),  # no A bit, extra
        (_patch(_patch(DOWN_HELLO, 1, 0x44), 3, 25) + b"\0", DropReason.BAD_LENGTH),
        (_patch(_patch(DOWN_HELLO, 1, 0x44), 3, 40), DropReason.TRUNCATED),
        (_patch(DOWN_HELLO, 2, 0), DropReason.ZERO_DETECT_MULT),
        (_patch(DOWN_HELLO, 1, 0x41), DropReason.MULTIPOINT),
        (DOWN_HELLO[:4] + b"\0\0\0\0" + DOWN_HELLO[8:], DropReason.ZERO_MY_DISCR),
        (_patch(DOWN_HELLO, 1, 0xC0), DropReason.ZERO_YOUR_DISCR),  # Up, your discr 0
        (_patch(DOWN_HELLO, 1, 0x80), DropReason.ZERO_YOUR_DISCR),  # Init, your discr 0
    ],
)
def test_drop_rules(data: bytes, reason: DropReason) -> None:
    with pytest.raises(BFDPacketError) as info:
        decode(data)
    assert info.value.reason is reason


def test_admin_down_with_zero_your_discr_is_accepted() -> None:
    assert decode(_patch(DOWN_HELLO, 1, 0x00)).state is State.ADMIN_DOWN


def test_trailing_bytes_beyond_length_are_ignored() -> None:
    assert decode(DOWN_HELLO + b"junk") == decode(DOWN_HELLO)


def _with_auth(section: bytes) -> bytes:
    head = bytearray(DOWN_HELLO)
    head[1] |= 0x04
    head[3] = 24 + len(section)
    return bytes(head) + section


def test_simple_password_parsed() -> None:
    p = decode(_with_auth(bytes([1, 3 + 6, 7]) + b"secret"))
    assert p.auth == Auth(AuthType.SIMPLE_PASSWORD, key_id=7, password=b"secret")
    assert p.encode() == _with_auth(bytes([1, 9, 7]) + b"secret")


def test_keyed_sha1_parsed() -> None:
    section = struct.pack("!BBBBI", 4, 28, 2, 0, 99) + bytes(range(20))
    p = decode(_with_auth(section))
    assert p.auth == Auth(AuthType.KEYED_SHA1, key_id=2, sequence=99, digest=bytes(range(20)))
    assert p.encode() == _with_auth(section)


def test_keyed_md5_parsed() -> None:
    section = struct.pack("!BBBBI", 3, 24, 1, 0, 5) + b"\xaa" * 16
    p = decode(_with_auth(section))
    assert p.auth is not None and p.auth.auth_type is AuthType.METICULOUS_KEYED_MD5


@pytest.mark.parametrize(
    "section",
    [
        bytes([1, 3, 1]),  # empty password
        bytes([1, 20, 1]) + b"x" * 17,  # password too long
        bytes([9, 4, 1, 0]),  # unknown type
        bytes([0, 4, 1, 0]),  # reserved type
        struct.pack("!BBBBI", 4, 24, 1, 0, 1) + b"\0" * 16,  # SHA1 with MD5 length
        bytes([1, 9, 7]) + b"short",  # Auth Len disagrees with the section
    ],
)
def test_bad_auth_sections(section: bytes) -> None:
    with pytest.raises(BFDPacketError) as info:
        decode(_with_auth(section))
    assert info.value.reason is DropReason.BAD_AUTH_SECTION


def test_encode_refuses_poll_and_final() -> None:
    with pytest.raises(ValueError):
        ControlPacket(State.UP, my_discr=1, your_discr=1, poll=True, final=True).encode()


# ---------------------------------------------------------------- properties

u32 = st.integers(min_value=0, max_value=0xFFFF_FFFF)
auths = st.one_of(
    st.none(),
    st.builds(
        Auth,
        auth_type=st.just(AuthType.SIMPLE_PASSWORD),
        key_id=st.integers(0, 255),
        password=st.binary(min_size=1, max_size=16),
    ),
    st.builds(
        Auth,
        auth_type=st.sampled_from([AuthType.KEYED_MD5, AuthType.METICULOUS_KEYED_MD5]),
        key_id=st.integers(0, 255),
        sequence=u32,
        digest=st.binary(min_size=16, max_size=16),
    ),
    st.builds(
        Auth,
        auth_type=st.sampled_from([AuthType.KEYED_SHA1, AuthType.METICULOUS_KEYED_SHA1]),
        key_id=st.integers(0, 255),
        sequence=u32,
        digest=st.binary(min_size=20, max_size=20),
    ),
)


@st.composite
def packets(draw: st.DrawFn) -> ControlPacket:
    state = draw(st.sampled_from(State))
    your_min = 0 if state in (State.DOWN, State.ADMIN_DOWN) else 1
    poll = draw(st.booleans())
    return ControlPacket(
        state=state,
        my_discr=draw(st.integers(1, 0xFFFF_FFFF)),
        your_discr=draw(st.integers(your_min, 0xFFFF_FFFF)),
        diag=draw(st.integers(0, 31)),
        detect_mult=draw(st.integers(1, 255)),
        desired_min_tx_us=draw(u32),
        required_min_rx_us=draw(u32),
        required_min_echo_rx_us=draw(u32),
        poll=poll,
        final=draw(st.booleans()) and not poll,
        control_plane_independent=draw(st.booleans()),
        demand=draw(st.booleans()),
        auth=draw(auths),
    )


@given(packets())
def test_roundtrip(packet: ControlPacket) -> None:
    assert decode(packet.encode()) == packet


@given(st.binary(max_size=80))
def test_decode_raises_only_the_protocol_error(data: bytes) -> None:
    try:
        packet = decode(data)
    except BFDPacketError:
        return
    assert decode(packet.encode()) == packet


@given(packets(), st.integers(0, 79), st.integers(0, 255))
def test_mutated_packets_raise_only_the_protocol_error(
    packet: ControlPacket, offset: int, value: int
) -> None:
    data = bytearray(packet.encode())
    data[offset % len(data)] = value
    with contextlib.suppress(BFDPacketError):
        decode(bytes(data))
