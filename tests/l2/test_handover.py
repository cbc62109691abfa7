"""A plan change hands a VIP over without a gap and without a double answer (issue 11 item 3).

Three standalone L2 agents on a namespaced LAN read the preference order from a file and re-read
it on SIGHUP. While the client sends an ARP request for the VIP every 20 ms and a UDP request
every 10 ms, the order changes from n1,n2,n3 to n2,n1,n3. The old owner n1 hears of it first
and n2 only 0.6 s later (and once n1 answered 10 requests since): n1 must keep answering (it
is releasing) until n2 announces the VIP, then stop. A capture on the bridge shows every ARP
request answered, answered by one MAC (at most the one request crossing n2's announcement sees
both), n1 before n2 and never after; no UDP request is lost.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from l2_lan import PYTHON, VIP4, L2Lan, parse_probe

from vipcast.lab.netns import wait_until
from vipcast.lab.pcap import records
from vipcast.proto.l2 import L2Error, decode_arp, decode_frame, format_mac
from vipcast.proto.l2.ethernet import EtherType

pytestmark = [pytest.mark.netns, pytest.mark.slow]

#: broadcast ARP requests for the VIP from the client, one every PERIOD seconds for DURATION,
#: each from its own sender address (10.100.0.0 + n) so that each reply names its request
ARP_PROBER = r"""
import socket, sys, time
from ipaddress import IPv4Address
from vipcast.proto.l2 import ArpOp, ArpPacket, EthernetFrame
from vipcast.proto.l2.ethernet import BROADCAST, ZERO_MAC, EtherType
vip, me, period, duration = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind(("eth0", 0))
mac = sock.getsockname()[4]
base = int(IPv4Address(me))
end, seq = time.monotonic() + duration, 0
while time.monotonic() < end:
    seq += 1  # the sender address numbers the request: the reply's target names it
    sender = IPv4Address(base + seq)
    packet = ArpPacket(ArpOp.REQUEST, mac, sender, ZERO_MAC, IPv4Address(vip))
    sock.send(EthernetFrame(BROADCAST, mac, EtherType.ARP, packet.encode()).encode())
    time.sleep(period)
print("done", flush=True)
"""


def arp_exchanges(pcap: Path, client_mac: str) -> list[tuple[float, set[str], bool]]:
    """Per ARP request from the client for the VIP, in order: its time, the MACs that replied to
    it (a reply's target address names the request), and whether a gratuitous announcement of
    the VIP was seen between it and the next request."""
    requests: dict[str, int] = {}
    exchanges: list[tuple[float, set[str], bool]] = []
    for moment, frame_bytes in records(pcap.read_bytes()):
        try:
            frame = decode_frame(frame_bytes)
            if frame.ethertype != EtherType.ARP:
                continue
            arp = decode_arp(frame.payload)
        except L2Error:
            continue
        sender = format_mac(arp.sender_mac)
        if arp.op == 1 and sender == client_mac and str(arp.target_ip) == VIP4:
            requests[str(arp.sender_ip)] = len(exchanges)
            exchanges.append((moment, set(), False))
        elif exchanges and str(arp.sender_ip) == VIP4:
            if arp.is_gratuitous:
                moment, macs, _ = exchanges[-1]
                exchanges[-1] = (moment, macs, True)
            elif arp.op == 2 and str(arp.target_ip) in requests:
                exchanges[requests[str(arp.target_ip)]][1].add(sender)
    return exchanges


def test_plan_change_hands_over_without_gap_or_double_answer(lan: L2Lan) -> None:
    order = lan.topo.workdir / "candidates"
    order.write_text("n1,n2,n3")
    lan.agent_args = ("--candidates-file", str(order))
    lan.start_all()
    lan.wait_owner("n1")
    client_mac = lan.client.ip_json("link", "show", "dev", "eth0")[0]["address"]
    capture, pcap = lan.start_capture()
    udp = lan.start_probe(VIP4, period=0.01, duration=6.0)
    arp = lan.client.spawn(
        [PYTHON, "-c", ARP_PROBER, VIP4, "10.100.0.0", "0.02", "6.0"], name="arpprobe"
    )
    n1 = lan.macs["n1"]
    time.sleep(1.5)
    # and both probes are running, answered by n1 (a starved prober may start late)
    wait_until(lambda: bool(parse_probe(udp.log_text()).replies) and any(
        macs == {n1} for _, macs, _ in arp_exchanges(pcap, client_mac)), timeout=30,
        what="the client's UDP and ARP requests answered by n1")

    order.write_text("n2,n1,n3")
    hup_n1 = time.time()
    os.killpg(lan.agents["n1"].pid, signal.SIGHUP)  # the old owner learns first

    def released() -> list[float]:
        """The client's requests n1 answered after its plan changed (it is releasing)."""
        return [t for t, macs, _ in arp_exchanges(pcap, client_mac)
                if t > hup_n1 + 0.1 and macs == {n1}]

    time.sleep(0.6)
    # and n1 has answered at least 10 requests since (a starved prober sends fewer in 0.6 s;
    # asserted again below): if n1 stopped answering before n2 took the VIP, this times out
    wait_until(lambda: len(released()) >= 10, timeout=30,
               what="n1 answering 10 requests after its plan changed")
    for node in ("n2", "n3"):
        os.killpg(lan.agents[node].pid, signal.SIGHUP)
    lan.wait_owner("n2")

    arp.popen.wait(30)
    udp.popen.wait(30)
    capture.stop()  # drained first: every frame the bridge carried is in the file
    wait_until(lambda: "done" in arp.log_text(), timeout=5, what="ARP prober finished")

    result = parse_probe(udp.log_text())
    assert result.lost() == [], (hup_n1, result.start, result.lost())
    n2 = lan.macs["n2"]
    exchanges = arp_exchanges(pcap, client_mac)
    assert len(exchanges) > 100, len(exchanges)
    # every request answered (the last one may be cut by the end of the capture)
    unanswered = [t for t, macs, _ in exchanges[:-1] if not macs]
    assert unanswered == [], f"{len(unanswered)} requests unanswered"
    # one MAC per request, except at most the one crossing the new owner's announcement
    doubles = [(t, macs, gar) for t, macs, gar in exchanges if len(macs) > 1]
    assert len(doubles) <= 1, doubles
    assert all(gar and macs == {n1, n2} for _, macs, gar in doubles), doubles
    # n1 answers, keeps answering while releasing (after its plan changed, before n2 took
    # the VIP), then n2 and never n1 again
    answerers = [next(iter(macs)) for _, macs, _ in exchanges if len(macs) == 1]
    first_n2 = answerers.index(n2)
    assert set(answerers[:first_n2]) == {n1} and set(answerers[first_n2:]) == {n2}
    assert len(released()) >= 10, "n1 stopped answering before n2 took the VIP"
