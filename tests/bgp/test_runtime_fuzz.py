"""Live fuzz: malformed messages over TCP to a running speaker.

A raw peer on 127.0.0.4 completes the OPEN exchange by hand and then sends garbage; the speaker
must answer with the right NOTIFICATION and close, while its session with another peer
(a vipcast speaker on 127.0.0.2) stays Established.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct

import pytest

from vipcast.proto.bgp import SessionConfig, State
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker
from vipcast.runtime.bgp.transport import TransportOptions

MARKER = b"\xff" * 16
LOG = logging.getLogger("test.fuzz")


def message(kind: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(asn: int, router_id: bytes, hold: int = 30) -> bytes:
    # capabilities: 4-octet AS, multiprotocol IPv4 unicast
    caps = bytes([65, 4]) + struct.pack("!I", asn) + bytes([1, 4, 0, 1, 0, 1])
    params = bytes([2, len(caps)]) + caps
    body = struct.pack("!BHH", 4, 23456 if asn > 0xFFFF else asn, hold) + router_id
    return message(1, body + bytes([len(params)]) + params)


KEEPALIVE = message(4, b"")


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(19)
    length, kind = struct.unpack("!HB", header[16:19])
    return kind, await reader.readexactly(length - 19)


#: (name, bytes sent after the OPEN exchange, expected NOTIFICATION code, subcode or None)
CASES = [
    ("bad marker", b"\x00" * 16 + struct.pack("!HB", 19, 4), 1, 1),
    ("bad length", MARKER + struct.pack("!HB", 5, 4), 1, 2),
    ("bad type", MARKER + struct.pack("!HB", 19, 99), 1, 3),
    ("keepalive too long", MARKER + struct.pack("!HB", 20, 4) + b"\x00", 1, 2),
    ("second open", open_message(65010, bytes([192, 0, 2, 44])), 5, None),
    ("update attrs overrun", message(2, b"\x00\x00\x00\x10\x40\x01\x01"), 3, None),
    ("update withdrawn overrun", message(2, b"\x00\x20\x00\x00"), 3, None),
]


async def establish_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.4", 0))
    writer.write(open_message(65010, bytes([192, 0, 2, 44])))
    kind, _ = await read_message(reader)
    assert kind == 1  # their OPEN
    writer.write(KEEPALIVE)
    kind, _ = await read_message(reader)
    assert kind == 4
    return reader, writer


async def expect_notification(reader: asyncio.StreamReader) -> tuple[int, int]:
    async with asyncio.timeout(10):
        while True:
            kind, body = await read_message(reader)
            if kind == 3:
                return body[0], body[1]


@pytest.mark.parametrize(("name", "garbage", "code", "subcode"), CASES, ids=[c[0] for c in CASES])
async def test_malformed_input_gets_notification_and_others_keep_running(
    name: str, garbage: bytes, code: int, subcode: int | None
) -> None:
    node = Speaker(listen=[("127.0.0.1", 0)], log=LOG, backoff_base=0.2)
    friend = Speaker(listen=[("127.0.0.2", 0)], log=LOG, backoff_base=0.2)
    await node.start()
    await friend.start()
    try:
        port = node.listen_ports[0]
        session = {"hold_time": 30, "connect_retry_time": 2.0, "idle_hold_time": 0.5}
        node.configure(
            [
                PeerSettings(
                    "fuzzer",
                    "127.0.0.4",
                    SessionConfig(65001, 65010, "192.0.2.1", passive=True, **session),  # type: ignore[arg-type]
                ),
                PeerSettings(
                    "friend",
                    "127.0.0.2",
                    SessionConfig(65001, 65002, "192.0.2.1", passive=True, **session),  # type: ignore[arg-type]
                ),
            ]
        )
        friend.configure(
            [
                PeerSettings(
                    "node",
                    "127.0.0.1",
                    SessionConfig(65002, 65001, "192.0.2.2", **session),  # type: ignore[arg-type]
                    port=port,
                    transport=TransportOptions(source_address="127.0.0.2"),
                )
            ]
        )
        up = lambda s: s.peers()["friend"].state == State.ESTABLISHED  # noqa: E731
        assert await node.wait_for(up, 20)
        reader, writer = await establish_raw(port)
        writer.write(garbage)
        got = await expect_notification(reader)
        assert got[0] == code, (name, got)
        if subcode is not None:
            assert got[1] == subcode, (name, got)
        writer.close()
        # the session takes connections again after its idle hold time
        active = lambda s: s.peers()["fuzzer"].state == State.ACTIVE  # noqa: E731
        assert await node.wait_for(active, 20)
        # random bytes from a fresh connection: a NOTIFICATION or a close, never a crash
        reader, writer = await establish_raw(port)
        writer.write(random.Random(name).randbytes(200))
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await expect_notification(reader)
        writer.close()
        await asyncio.sleep(0.2)
        assert node.peers()["friend"].state == State.ESTABLISHED
        assert friend.peers()["node"].state == State.ESTABLISHED
    finally:
        await friend.stop()
        await node.stop()
