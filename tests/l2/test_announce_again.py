"""The responder's announcement again of VIPs it kept (after this node refuted its own death):
a new burst at once, and rate-limited however often it is asked for. No network: the frames go
into one end of a datagram socket pair and are read at the other."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import IPv4Address

from prometheus_client import CollectorRegistry

from vipcast.obs.l2_metrics import L2Metrics
from vipcast.proto.l2 import decode_arp, decode_frame
from vipcast.runtime.l2.responder import AnnounceSchedule, InterfaceResponder

MAC = bytes.fromhex("020000000001")
VIP = IPv4Address("192.0.2.50")


def _drain(sock: socket.socket) -> list[bytes]:
    frames = []
    while True:
        try:
            frames.append(sock.recv(2048))
        except BlockingIOError:
            return frames


@asynccontextmanager
async def responder_owning_the_vip(
    schedule: AnnounceSchedule,
) -> AsyncIterator[tuple[InterfaceResponder, socket.socket, list[bytes]]]:
    """A responder writing into one end of a datagram socket pair, owning VIP: it, the other
    end (non-blocking, to read its frames) and the frames of its first round (0.2 s after
    taking the VIP). Both are closed after."""
    ours, wire = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    wire.setblocking(False)
    responder = InterfaceResponder("eth0", ours, MAC, schedule, L2Metrics(CollectorRegistry()))
    try:
        responder.set_owned(frozenset({VIP}))
        await asyncio.sleep(0.2)
        yield responder, wire, _drain(wire)
    finally:
        await responder.close()
        wire.close()


def test_announce_again_starts_a_burst_and_is_rate_limited() -> None:
    async def scenario() -> None:
        # rounds 30 s apart: any round within the test's waits beyond the first is a failure
        schedule = AnnounceSchedule(burst=3, burst_interval=30.0, period=60.0)
        async with responder_owning_the_vip(schedule) as (responder, wire, first):
            assert first, "taking the VIP announced nothing"
            for frame in first:
                arp = decode_arp(decode_frame(frame).payload)
                assert arp.sender_ip == VIP and arp.sender_mac == MAC and arp.is_gratuitous
            # asked again and again right after a round: nothing sooner than burst_interval
            for _ in range(20):
                responder.announce_again(frozenset({VIP}))
                await asyncio.sleep(0)
            await asyncio.sleep(0.3)
            assert _drain(wire) == []
            # a VIP not owned here is never announced
            responder.announce_again(frozenset({IPv4Address("192.0.2.51")}))
            await asyncio.sleep(0.1)
            assert _drain(wire) == []

    asyncio.run(scenario())


def test_announce_again_goes_at_once_when_the_last_round_is_old_enough() -> None:
    async def scenario() -> None:
        schedule = AnnounceSchedule(burst=1, burst_interval=0.05, period=60.0)
        async with responder_owning_the_vip(schedule) as (responder, wire, first):
            assert first
            # the periodic round is a minute away; the refutation's round goes now
            responder.announce_again(frozenset({VIP}))
            await asyncio.sleep(0.2)
            assert _drain(wire) == first

    asyncio.run(scenario())
