"""Who answers ARP for an address on a test LAN: a tcpdump capture on the bridge, read back
with :func:`vipcast.lab.pcap.neighbor_answers`."""

from __future__ import annotations

import time
from pathlib import Path

from vipcast.lab.netns import Netns, Process, wait_until
from vipcast.lab.pcap import NeighborAnswer, neighbor_answers


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

    def stop(self) -> list[NeighborAnswer]:
        """Stop the capture; the ARP replies and gratuitous announcements it saw."""
        time.sleep(0.3)  # frames already on the wire reach the file
        self.process.stop(timeout=3.0)
        return neighbor_answers(self.path.read_bytes())

