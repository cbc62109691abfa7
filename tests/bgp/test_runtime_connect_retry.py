"""An outgoing attempt toward a peer that never answers lasts until the ConnectRetry timer
starts the next one (RFC 4271 §8.2.2, Connect state: ConnectRetryTimer_Expires drops the
attempt and initiates a new one), so a peer whose path comes back is reached within one
ConnectRetryTime. Before, a fixed 5 s connect timeout ended each attempt early and the session
then waited a whole ConnectRetryTime more in Active: with ConnectRetryTime 6 s, the second
attempt came ~12 s after the first (5 + 6 + the backoff), not 6 s.

The peer is an address behind a veth whose other end has nothing (a permanent neighbour entry:
no ARP): the SYNs leave and vanish (no answer, no RST, no ICMP); ``tcpdump`` counts the
attempts by their source ports (the kernel's own SYN retransmissions keep the port). Measured
before the change: gaps of 11.8 and 12.6 s; after: ~6 s.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from vipcast.lab.netns import Topology, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow]

RETRY = 6.0
_SYN = re.compile(r"^(\d+\.\d+) IP 198\.51\.100\.1\.(\d+) > 198\.51\.100\.2\.179: Flags \[S\]")


def attempts(text: str) -> dict[int, float]:
    """Source port -> the time of its first SYN."""
    first: dict[int, float] = {}
    for line in text.splitlines():
        found = _SYN.match(line)
        if found:
            first.setdefault(int(found.group(2)), float(found.group(1)))
    return first


def test_a_silent_peer_gets_a_new_attempt_at_every_connect_retry(
    netlab: Topology, static_speaker: Any
) -> None:
    ns, sink = netlab.add_netns("n"), netlab.add_netns("sink")
    netlab.veth(ns, "d0", sink, "d0")
    ns.add_address("d0", "198.51.100.1/24")
    # the peer's MAC is known and nobody has it: the SYNs leave and vanish (no ARP failure)
    ns.ip("neigh", "add", "198.51.100.2", "lladdr", "02:00:00:00:00:02", "dev", "d0",
          "nud", "permanent")  # fmt: skip
    dump = ns.spawn(["tcpdump", "-i", "d0", "-n", "-tt", "-l", "--immediate-mode",
                     "tcp port 179"], name="tcpdump")  # fmt: skip
    wait_until(lambda: "listening on" in dump.log_text(), timeout=20, what="tcpdump")
    speaker = static_speaker(ns, netlab.workdir)
    speaker.configure(
        [{"name": "silent", "address": "198.51.100.2", "local_asn": 65001, "peer_asn": 65002,
          "router_id": "198.51.100.1", "connect_retry_time": RETRY, "families": ["ipv4"]}],
        {},
    )  # fmt: skip
    seen = wait_until(
        lambda: (found := attempts(dump.log_text())) and len(found) >= 3 and found,
        timeout=90, interval=0.2, what="three connection attempts",
        on_timeout=lambda: dump.log_text()[-3000:],
    )  # fmt: skip
    times = sorted(seen.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # each attempt ends at the ConnectRetry expiry, which starts the next one at once:
    # never before the timer (lower bound), and well before the old 5 s timeout + a whole
    # ConnectRetryTime in Active + the backoff (~12 s; a generous 3 s margin for load)
    assert all(RETRY - 0.1 <= gap < RETRY + 3.0 for gap in gaps[:2]), (gaps, times)
    assert speaker.state("silent") == "Connect"
