"""The FRR bgpd corpus over real TCP: a running speaker on 127.0.0.1, raw peers feeding it.

Eight raw peers (127.0.0.20-27, AS 10) each bring a session to Established with the corpus's
own OPEN (its hold time raised from 9 to 240 s, so a stalled lane on a loaded machine is not
cut by the hold timer) and then send their share of the 3,234 files, one at a time. After each
file the answer on the wire must be the recorded one (``vectors/frr_corpus_outcomes.json``):

* a class that ends the session: the NOTIFICATION with that code/subcode, then the close (or,
  for a NOTIFICATION from the peer, a close and nothing sent);
* an incomplete message: no NOTIFICATION; the raw peer half-closes and the speaker closes;
* anything accepted: the session is still up, shown by a ROUTE-REFRESH probe answered with the
  speaker's route (the next file then goes on the same connection).

A missing corpus fails the test (see ``frr_corpus.corpus_dir``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

import pytest
from frr_corpus import LOCAL_ASN, PEER_ASN, PEER_OPEN_FILE, corpus, recorded

from vipcast.proto.bgp import RouteAttributes, SessionConfig, State
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker

LOG = logging.getLogger("test.frr_corpus_live")
MARKER = b"\xff" * 16
KEEPALIVE = MARKER + struct.pack("!HB", 19, 4)
#: RFC 2918 ROUTE-REFRESH for IPv4 unicast: the probe that the session is still up
PROBE = MARKER + struct.pack("!HBHBB", 23, 5, 1, 0, 1)
ROUTE = "198.51.100.0/24"
LANES = 8
#: per file: generous, the answer takes milliseconds
ANSWER_TIMEOUT = 20.0


class Crashes(logging.Handler):
    """Collects log records that carry a traceback: none may appear."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """One message, or None at EOF."""
    try:
        header = await reader.readexactly(19)
        length, kind = struct.unpack("!HB", header[16:19])
        return kind, await reader.readexactly(length - 19)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class RawPeer:
    def __init__(self, speaker: Speaker, name: str, address: str, port: int) -> None:
        self.speaker, self.name, self.address, self.port = speaker, name, address, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connections = 0

    async def establish(self, peer_open: bytes) -> None:
        """Connect and bring the session up; wait out the speaker's idle hold if refused."""
        while True:
            up = await self.speaker.wait_for(
                lambda s: s.peers()[self.name].state == State.ACTIVE, ANSWER_TIMEOUT
            )
            assert up, f"{self.name} never came back to Active"
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(self.address, 0)
            )
            writer.write(peer_open + KEEPALIVE)
            if await self._until_end_of_rib(reader):
                self.reader, self.writer = reader, writer
                self.connections += 1
                return
            writer.close()
            await writer.wait_closed()

    @staticmethod
    async def _until_end_of_rib(reader: asyncio.StreamReader) -> bool:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while (msg := await read_message(reader)) is not None:
                if msg == (2, b"\0\0\0\0"):
                    return True
                assert msg[0] != 3, f"NOTIFICATION while opening: {msg[1].hex()}"
        return False

    async def answer(self, data: bytes, classes: list[str], name: str) -> None:
        """Send one file and check the speaker's answer against its recorded classes."""
        assert self.reader is not None and self.writer is not None
        reader, writer = self.reader, self.writer
        writer.write(data)
        last = classes[-1] if classes else "keepalive"
        async with asyncio.timeout(ANSWER_TIMEOUT):
            if last.startswith("N"):
                code, subcode = (int(x) for x in last[1:].split("/"))
                got = await self._notification(reader)
                assert got == (code, subcode), (name, classes, got)
                assert await self._notification(reader) is None, name  # then the close
                await self._close()
            elif last in ("notification-received", "incomplete"):
                if last == "incomplete":
                    writer.write_eof()
                assert await self._notification(reader) is None, (name, classes)
                await self._close()
            else:
                writer.write(PROBE)
                # one UPDATE for the probe, one more for every ROUTE-REFRESH in the file
                wanted = 1 + classes.count("route-refresh")
                while wanted:
                    msg = await read_message(reader)
                    assert msg is not None and msg[0] != 3, (name, classes, msg)
                    if msg[0] == 2 and msg[1] != b"\0\0\0\0":
                        wanted -= 1

    @staticmethod
    async def _notification(reader: asyncio.StreamReader) -> tuple[int, int] | None:
        """The next NOTIFICATION's code/subcode (skipping KEEPALIVEs and UPDATEs), None at EOF."""
        while (msg := await read_message(reader)) is not None:
            if msg[0] == 3:
                return msg[1][0], msg[1][1]
        return None

    async def _close(self) -> None:
        assert self.writer is not None
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
        self.reader = self.writer = None


async def run_lane(peer: RawPeer, names: list[str], files: dict[str, bytes]) -> None:
    want = recorded()
    # the corpus OPEN with its 9 s hold time raised to 240 s: a lane stalled by a loaded
    # machine must not see its session end on the hold timer instead of the file's answer
    raw = files[PEER_OPEN_FILE]
    peer_open = raw[:22] + struct.pack("!H", 240) + raw[24:]
    for name in names:
        if peer.writer is None:
            await peer.establish(peer_open)
        classes: list[str] = want[name]["established"]  # type: ignore[assignment]
        await peer.answer(files[name], classes, name)
    if peer.writer is not None:
        await peer._close()


@pytest.mark.timeout(600)
async def test_every_corpus_file_over_tcp_gets_the_recorded_answer() -> None:
    files = corpus()
    crashes = Crashes()
    LOG.addHandler(crashes)
    speaker = Speaker(listen=[("127.0.0.1", 0)], log=LOG, backoff_base=0.05)
    await speaker.start()
    try:
        port = speaker.listen_ports[0]
        # every file that ends the session is a drop in a row: a fixed 10 ms idle hold (the
        # damping's cap at its base), or the lanes would wait the default's growing holds
        cfg = SessionConfig(
            LOCAL_ASN, PEER_ASN, "192.0.2.1", passive=True, hold_time=90,
            idle_hold_time=0.01, idle_hold_max=0.01,
        )  # fmt: skip
        lanes = [(f"corpus{i}", f"127.0.0.{20 + i}") for i in range(LANES)]
        speaker.configure([PeerSettings(name, address, cfg) for name, address in lanes])
        speaker.set_routes({name: {ROUTE: RouteAttributes()} for name, _ in lanes})
        peers = [RawPeer(speaker, name, address, port) for name, address in lanes]
        names = sorted(files)
        await asyncio.gather(
            *(run_lane(peer, names[i::LANES], files) for i, peer in enumerate(peers))
        )
        assert sum(p.connections for p in peers) >= 1
    finally:
        await speaker.stop()
        LOG.removeHandler(crashes)
    assert not crashes.records, [r.getMessage() for r in crashes.records[:5]]
