"""The announcements of a take-over on a real veth: the first round is on the wire before
``set_owned`` returns (it is what moves the traffic), then the rest of the burst and the
periodic rounds, in order, counted, and spaced at least as the schedule says (RFC 4861 §7.2.6
RetransTimer for unsolicited NAs; longer than the ARP cache's locktime). The frames are read by
a raw socket at the other end of the veth, with the kernel's receive timestamps."""

from __future__ import annotations

import asyncio
import itertools
import select
import socket
import struct
import time
from ipaddress import IPv4Address, IPv6Address

import pytest
from prometheus_client import CollectorRegistry

from vipcast.app.l2_standalone import parse_args
from vipcast.dataplane.netns_switch import inside
from vipcast.lab.netns import Topology
from vipcast.obs.l2_metrics import L2Metrics
from vipcast.proto.l2 import ArpOp, L2Error, decode_arp, decode_frame
from vipcast.proto.l2.ethernet import EtherType
from vipcast.proto.l2.ndp import IcmpType, NaFlag, decode_ipv6, decode_neighbor
from vipcast.runtime.l2.packet_socket import ETH_P_ALL, open_packet_socket
from vipcast.runtime.l2.responder import (
    ARP_LOCKTIME,
    MAX_NEIGHBOR_ADVERTISEMENT,
    RETRANS_TIMER,
    AnnounceSchedule,
    InterfaceResponder,
)

VIP4 = IPv4Address("192.0.2.50")
VIP6 = IPv6Address("2001:db8::50")
ALL_NODES = IPv6Address("ff02::1")
SO_TIMESTAMPNS = 35  # Linux; the control message carries a struct timespec
#: shorter than the default (5 s) to keep the test short, and unlike burst_interval
PERIOD = 2.0
#: the burst, then one periodic round
ROUNDS = MAX_NEIGHBOR_ADVERTISEMENT + 1


def test_the_default_schedule_follows_the_rfcs_and_the_standalone_responder_uses_it() -> None:
    schedule = AnnounceSchedule()
    assert schedule.burst == MAX_NEIGHBOR_ADVERTISEMENT == 3
    assert schedule.burst_interval >= RETRANS_TIMER
    assert schedule.burst_interval > ARP_LOCKTIME
    assert schedule.period > schedule.burst_interval
    args = parse_args(["--node", "n1", "--interface", "eth0"])
    assert AnnounceSchedule(args.burst, args.burst_interval, args.announce_period) == schedule


def _capture(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def _read(sock: socket.socket) -> list[tuple[float, bytes]]:
    """Every frame queued on ``sock`` with the kernel's receive time."""
    frames = []
    while True:
        try:
            data, ancillary, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return frames
        stamp = next(struct.unpack("qq", d[:16]) for lvl, kind, d in ancillary
                     if lvl == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS)
        frames.append((stamp[0] + stamp[1] / 1e9, data))


def _label(data: bytes, mac: bytes) -> str | None:
    """What an announcement of ours in this frame is, "other" for anything else ours sent,
    None for a frame of another sender."""
    try:
        frame = decode_frame(data)
        if frame.src != mac:
            return None
        if frame.ethertype == EtherType.ARP:
            arp = decode_arp(frame.payload)
            gratuitous = arp.sender_ip == arp.target_ip == VIP4 and arp.sender_mac == mac
            if gratuitous and frame.dst == b"\xff" * 6:
                if arp.op == ArpOp.REQUEST and arp.target_mac == bytes(6):
                    return "arp-request"
                if arp.op == ArpOp.REPLY and arp.target_mac == mac:
                    return "arp-reply"
        elif frame.ethertype == EtherType.IPV6:
            packet = decode_ipv6(frame.payload)
            advert = decode_neighbor(packet)
            if (advert.type == IcmpType.NEIGHBOR_ADVERTISEMENT and advert.target == VIP6
                    and packet.dst == ALL_NODES and frame.dst == bytes.fromhex("333300000001")
                    and advert.link_layer == mac and advert.flags & NaFlag.OVERRIDE
                    and not advert.flags & NaFlag.SOLICITED):
                return "na"
    except L2Error:
        pass
    return "other"


@pytest.mark.netns
@pytest.mark.slow
def test_a_take_over_announces_at_once_then_on_the_schedule(netlab: Topology) -> None:
    node, client = netlab.add_netns("an"), netlab.add_netns("ac")
    netlab.veth(node, "n0", client, "c0")
    for ns, ifname in ((node, "n0"), (client, "c0")):
        # no address and no IPv6 on either end: the kernel sends nothing of its own here
        ns.sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", 1)
    schedule = AnnounceSchedule(period=PERIOD)

    async def scenario() -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
        with inside(node.name):
            sock, mac = open_packet_socket("n0")
        with inside(client.name):
            capture = _capture("c0")

        def ours() -> list[tuple[float, str]]:
            return [(stamp, label) for stamp, data in _read(capture)
                    if (label := _label(data, mac)) is not None]

        responder = InterfaceResponder("n0", sock, mac, schedule, L2Metrics(CollectorRegistry()))
        try:
            responder.set_owned(frozenset({VIP4, VIP6}))
            # the event loop does not run until the first round is read: a first round left
            # to a task would never come, and the read would time out
            first: list[tuple[float, str]] = []
            deadline = time.monotonic() + 20
            while len(first) < 3 and time.monotonic() < deadline:
                select.select([capture], [], [], 0.5)
                first += ours()
            later: list[tuple[float, str]] = []
            deadline = time.monotonic() + 60
            # rounds 2-4 of both addresses (each round: two ARP frames, one NA)
            while [label for _, label in later].count("na") < ROUNDS - 1 or len(later) < 3 * (
                    ROUNDS - 1):
                assert time.monotonic() < deadline, f"rounds after the first: {later}"
                await asyncio.sleep(0.1)
                later += ours()
            return first, later
        finally:
            await responder.close()
            capture.close()

    first, later = asyncio.run(scenario())
    # round 1, before set_owned returned, in address order: IPv4 (both forms of gratuitous
    # ARP, the request first), then the unsolicited NA with Override
    assert [label for _, label in first] == ["arp-request", "arp-reply", "na"]
    # then rounds 2-4 of each address, and nothing else from the node
    assert [label for _, label in later if label not in ("arp-request", "arp-reply", "na")] == []
    v4 = [label for _, label in later if label.startswith("arp")]
    assert v4 == ["arp-request", "arp-reply"] * (ROUNDS - 1)
    assert [label for _, label in later if label == "na"] == ["na"] * (ROUNDS - 1)
    # the spacing on the wire, round 1 -> 2 -> 3 (the burst) -> 4 (periodic): at least, never
    # at most (a busy machine only spaces them more)
    rounds = first + later
    slack = 0.005
    for kind in ("arp-request", "na"):
        stamps = [stamp for stamp, label in rounds if label == kind]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert len(gaps) == ROUNDS - 1
        assert min(gaps[:2]) >= schedule.burst_interval - slack, (kind, gaps)
        assert gaps[2] >= schedule.period - slack, (kind, gaps)
