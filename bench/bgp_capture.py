"""When a BGP session's phases happened, from a packet capture in the router's namespace.

Not a test: a helper of the benches. :class:`Capture` runs ``tcpdump`` on the router's side of
the link (TCP port 179, whole packets) and, when stopped, reads its pcap file: the TCP streams
are put back together per direction (the link is a veth: in order, no loss; a retransmission
is skipped by its sequence number), cut into BGP messages (RFC 4271 section 4.1: marker,
length, type) and each message is timed by the packet that completes it. :func:`phases` names
the moments a cold start is made of, as wall-clock times (``time.time()``, the capture's clock).
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.lab.netns import Netns
from vipcast.lab.pcap import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, link_type, records

OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4


@dataclass
class Message:
    time: float
    sender: str
    kind: int
    length: int
    #: IPv4 prefixes announced (an UPDATE's NLRI field; RFC 4271 section 4.3)
    announced: int = 0


@dataclass
class Capture:
    """``tcpdump`` on ``iface`` of ``netns`` into ``path`` until :meth:`stop`."""

    netns: Netns
    path: Path
    iface: str = "eth0"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 10.0) -> None:
        self._proc = subprocess.Popen(
            self.netns.exec_argv(["tcpdump", "-i", self.iface, "-w", str(self.path), "-U",
                                  "-s", "0", "--immediate-mode", "tcp port 179"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        assert self._proc.stderr is not None
        deadline = time.monotonic() + timeout
        line = self._proc.stderr.readline()  # "listening on eth0, ..." once it captures
        if b"listening" not in line or time.monotonic() > deadline:
            raise RuntimeError(f"tcpdump did not start: {line!r}")

    def stop(self) -> list[Message]:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None
        return messages(self.path)


def _packets(path: Path) -> list[tuple[float, str, str, int, int, bytes]]:
    """(time, source, destination, seq, flags, payload) of each TCP/IPv4 packet of a pcap."""
    data = path.read_bytes()
    linktype = link_type(data)
    out = []
    for when, frame in records(data):
        if linktype == LINKTYPE_ETHERNET:
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == LINKTYPE_LINUX_SLL:
            ip = frame[16:]
        else:
            raise ValueError(f"link type {linktype} not read here")
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        src = str(ipaddress.IPv4Address(ip[12:16]))
        dst = str(ipaddress.IPv4Address(ip[16:20]))
        tcp = ip[ihl:total]
        seq = struct.unpack("!I", tcp[4:8])[0]
        offset = (tcp[12] >> 4) * 4
        out.append((when, src, dst, seq, tcp[13], tcp[offset:]))
    return out


def messages(path: Path) -> list[Message]:
    """The BGP messages of both directions, in capture order."""
    next_seq: dict[tuple[str, str], int] = {}
    buffers: dict[tuple[str, str], bytearray] = {}
    out: list[Message] = []
    for when, src, dst, seq, flags, payload in _packets(path):
        key = (src, dst)
        if flags & 0x02:  # SYN
            next_seq[key] = (seq + 1) & 0xFFFFFFFF
            buffers[key] = bytearray()
            if not flags & 0x10:  # not a SYN-ACK
                out.append(Message(when, src, 0, 0))  # kind 0: a connection's SYN
            continue
        if not payload or key not in next_seq:
            continue
        expected = next_seq[key]
        if seq != expected:  # a retransmission (or something we cannot place)
            continue
        next_seq[key] = (seq + len(payload)) & 0xFFFFFFFF
        buffer = buffers[key]
        buffer += payload
        while len(buffer) >= 19:
            length = struct.unpack("!H", buffer[16:18])[0]
            if len(buffer) < length:
                break
            kind = buffer[18]
            out.append(Message(when, src, kind, length,
                               _announced(bytes(buffer[19:length])) if kind == UPDATE else 0))
            del buffer[:length]
    return out


def _announced(body: bytes) -> int:
    """How many prefixes an UPDATE's NLRI field announces (withdrawn routes and path
    attributes skipped by their lengths)."""
    withdrawn = int.from_bytes(body[0:2], "big")
    at = 2 + withdrawn
    attributes = int.from_bytes(body[at:at + 2], "big")
    at += 2 + attributes
    count = 0
    while at < len(body):
        at += 1 + (body[at] + 7) // 8
        count += 1
    return count


def phases(found: list[Message], speaker: str, start: float,
           routes: int | None = None) -> dict[str, float | None]:
    """Seconds from ``start`` (the speaker process's start, wall clock) to each moment:
    the SYN of the session's connection (and who sent it), the speaker's OPEN, Established
    (both sides sent a KEEPALIVE after their OPENs), the speaker's first UPDATE announcing
    routes and the one that completes ``routes`` announced (None: its last announcing any)."""

    def first(pred: object) -> Message | None:
        return next((m for m in found if pred(m)), None)  # type: ignore[operator]

    opened = first(lambda m: m.kind == OPEN and m.sender == speaker)
    # the SYN of the connection that carried the session: the last one before the OPEN
    # (a refused attempt, e.g. the router's before the speaker listens, comes earlier)
    syns = [m for m in found if m.kind == 0 and (opened is None or m.time <= opened.time)]
    syn = syns[-1] if syns else None
    keepalives = [first(lambda m, s=s: m.kind == KEEPALIVE and (m.sender == speaker) is s)
                  for s in (True, False)]
    updates = [m for m in found if m.kind == UPDATE and m.sender == speaker and m.announced]
    if routes is not None:  # up to the UPDATE that completes the ``routes`` announced
        total = 0
        for i, m in enumerate(updates):
            total += m.announced
            if total >= routes:
                updates = updates[:i + 1]
                break
    established = (max(k.time for k in keepalives if k is not None)
                   if all(k is not None for k in keepalives) else None)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - start, 4)

    return {
        "tcp_syn": rel(syn.time if syn else None),
        "syn_from_speaker": float(syn is not None and syn.sender == speaker),
        "open_sent": rel(opened.time if opened else None),
        "established": rel(established),
        "first_update": rel(updates[0].time if updates else None),
        "last_update": rel(updates[-1].time if updates else None),
        "updates": float(len(updates)),
    }
