"""Who answers ARP for an address on a test LAN: a tcpdump capture on the bridge, read back
with vipcast's own ARP codec (``vipcast.proto.l2``)."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path

from vipcast.lab.netns import Netns, Process, wait_until
from vipcast.proto.l2 import L2Error, decode_arp, decode_frame, format_mac
from vipcast.proto.l2.ethernet import EtherType

PCAP_HEADER = 24
RECORD_HEADER = 16


@dataclass(frozen=True)
class ArpAnswer:
    at: float
    ip: str
    mac: str
    gratuitous: bool


class ArpCapture:
    """``tcpdump -i BRIDGE arp`` in ``lan`` to a file of the run's workdir, until :meth:`stop`."""

    def __init__(self, lan: Netns, bridge: str, path: Path) -> None:
        self.path = path
        self.process: Process = lan.spawn(
            ["tcpdump", "-i", bridge, "--immediate-mode", "-U", "-n", "-w", str(path),
             "arp"],
            name=f"tcpdump-{path.stem}")
        wait_until(lambda: "listening on" in self.process.log_text(), timeout=30,
                   what="tcpdump listening")

    def stop(self) -> list[ArpAnswer]:
        """Stop the capture; the ARP replies and gratuitous announcements it saw."""
        time.sleep(0.3)  # frames already on the wire reach the file
        self.process.stop(timeout=3.0)
        return answers(self.path.read_bytes())


def answers(pcap: bytes) -> list[ArpAnswer]:
    """ARP replies and gratuitous announcements in a classic pcap file's bytes."""
    if len(pcap) < PCAP_HEADER:
        return []
    order = "<" if pcap[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    found: list[ArpAnswer] = []
    offset = PCAP_HEADER
    while offset + RECORD_HEADER <= len(pcap):
        seconds, micros, length, _ = struct.unpack_from(order + "IIII", pcap, offset)
        frame = pcap[offset + RECORD_HEADER:offset + RECORD_HEADER + length]
        offset += RECORD_HEADER + length
        try:
            ethernet = decode_frame(frame)
            if ethernet.ethertype != EtherType.ARP:
                continue
            arp = decode_arp(ethernet.payload)
        except L2Error:
            continue
        if arp.op == 2 or arp.is_gratuitous:
            found.append(ArpAnswer(seconds + micros / 1e6, str(arp.sender_ip),
                                   format_mac(arp.sender_mac).lower(), arp.is_gratuitous))
    return found
