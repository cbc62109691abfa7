"""One interface's ARP/NDP responder: reads frames from an AF_PACKET socket, answers those the
sans-IO decision says are ours, and announces newly owned VIPs (burst, then periodically).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from vipcast.obs.l2_metrics import L2Metrics
from vipcast.proto.l2 import Outcome, OwnedAddresses, announcements, claim_of, decide, owner_probes
from vipcast.runtime.l2.packet_socket import PACKET_OUTGOING

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address
#: frames read per readiness callback before yielding to the loop
READ_BATCH = 64


#: RFC 4861 §10: unsolicited NAs after a link-layer change, at most this many (§7.2.6)
MAX_NEIGHBOR_ADVERTISEMENT = 3
#: RFC 4861 §10 RETRANS_TIMER (seconds): §7.2.6 spaces unsolicited NAs by at least RetransTimer
RETRANS_TIMER = 1.0
#: Linux ``neigh/*/locktime`` default (seconds): an ARP update inside it may be ignored
ARP_LOCKTIME = 1.0


@dataclass(frozen=True)
class AnnounceSchedule:
    """Gratuitous ARP / unsolicited NA on taking a VIP: ``burst`` rounds ``burst_interval``
    apart, the first sent at once (it is what moves the traffic), then one round every
    ``period`` while the VIP stays ours.

    Defaults (docs/l2.md, "Announcement spacing"): 3 rounds = MAX_NEIGHBOR_ADVERTISEMENT;
    1.1 s apart, at least RetransTimer as RFC 4861 §7.2.6 requires of unsolicited NAs, and
    longer than the ARP cache's 1 s locktime, so that when the first round lands inside it on a
    receiver that applies locktime to gratuitous ARP, the next one lands outside it.
    """

    burst: int = MAX_NEIGHBOR_ADVERTISEMENT
    burst_interval: float = 1.1
    period: float = 5.0


class InterfaceResponder:
    def __init__(
        self,
        ifname: str,
        sock: socket.socket,
        mac: bytes,
        schedule: AnnounceSchedule,
        metrics: L2Metrics,
        on_claim: Callable[[IPAddress], None] | None = None,
    ) -> None:
        self.ifname = ifname
        self.mac = mac
        self._sock = sock
        self._schedule = schedule
        self._metrics = metrics
        self._owned = OwnedAddresses(mac)
        #: answered but not announced: handed over, answered until the new owner's claim
        self._releasing: frozenset[IPAddress] = frozenset()
        #: the last time another MAC claimed one of the addresses answered here, since this
        #: node last took it or started releasing it
        self.claims: dict[IPAddress, float] = {}
        self._on_claim = on_claim
        self._announcers: dict[IPAddress, asyncio.Task[None]] = {}
        #: when each owned address was last announced (the rate limit of :meth:`announce_again`)
        self._announced: dict[IPAddress, float] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)

    @property
    def owned(self) -> frozenset[IPAddress]:
        return self._owned.ipv4 | self._owned.ipv6

    @property
    def releasing(self) -> frozenset[IPAddress]:
        return self._releasing

    def set_owned(
        self, ips: frozenset[IPAddress], releasing: frozenset[IPAddress] = frozenset()
    ) -> None:
        """Answer for ``ips`` and ``releasing`` from now on; announce the newly owned ``ips`` at
        once (``releasing`` is answered, never announced: another node is taking it)."""
        self._owned = OwnedAddresses.of(self.mac, ips | releasing)
        started = releasing - ips - self._releasing
        self._releasing = releasing - ips
        for ip in sorted(started, key=str):
            # only an answer from now on is the new owner's claim; ask for it at once in case
            # the new owner announced before this node let go
            self.claims.pop(ip, None)
            for frame in owner_probes(self.mac, ip):
                self._send(frame)
        for ip in list(self._announcers):
            if ip not in ips:
                self._announcers.pop(ip).cancel()
                self._announced.pop(ip, None)
        for ip in sorted(ips - self._announcers.keys(), key=str):
            # another node's announcement before we took the VIP is no claim on it any more
            self.claims.pop(ip, None)
            self._start_announcing(ip, 0.0)

    def announce_again(self, ips: frozenset[IPAddress]) -> None:
        """Announce owned ``ips`` again, in a new burst, although this node kept them (another
        node may have announced them meanwhile). Rate-limited: a burst under way starts over,
        but no round goes sooner than ``burst_interval`` after the previous one, so however
        often this is called an address is announced at most once per ``burst_interval``."""
        now = self._loop.time()
        for ip in sorted(ips & self.owned - self._releasing, key=str):
            task = self._announcers.pop(ip, None)
            if task is not None:
                task.cancel()
            last = self._announced.get(ip)
            delay = 0.0 if last is None else max(0.0, last + self._schedule.burst_interval - now)
            self._start_announcing(ip, delay)

    async def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        tasks = list(self._announcers.values())
        self._announcers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._sock.close()

    def _on_readable(self) -> None:
        for _ in range(READ_BATCH):
            try:
                data, address = self._sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # interface gone or down: keep the socket, log once per burst
                log.warning("l2 %s: receive failed: %s", self.ifname, exc)
                return
            if address[2] == PACKET_OUTGOING:
                continue
            if self._releasing or self._on_claim is not None:
                self._note_claim(data)
            decision = decide(data, self._owned)
            self._metrics.frames.labels(self.ifname, decision.outcome.value).inc()
            if decision.reply is not None:
                self._send(decision.reply)
            elif decision.outcome is Outcome.MALFORMED:
                log.debug("l2 %s: malformed frame: %s", self.ifname, decision.detail)

    def _note_claim(self, data: bytes) -> None:
        claimed = claim_of(data, self.mac)
        if claimed is None or claimed not in self.owned:
            return
        self.claims[claimed] = self._loop.time()
        if claimed in self._releasing and self._on_claim is not None:
            self._on_claim(claimed)

    def _send(self, frame: bytes) -> bool:
        try:
            self._sock.send(frame)
        except OSError as exc:
            self._metrics.send_errors.labels(self.ifname).inc()
            log.debug("l2 %s: send failed: %s", self.ifname, exc)
            return False
        return True

    def _start_announcing(self, ip: IPAddress, delay: float) -> None:
        """A new burst for ``ip``: its first round now, in this call (no task switch before
        it), unless ``delay``; the rest on the schedule."""
        frames = announcements(self.mac, ip)
        rounds = 0
        if delay <= 0:
            self._send_round(ip, frames)
            rounds = 1
            delay = self._next_delay(rounds)
        self._announcers[ip] = self._loop.create_task(
            self._announce(ip, frames, delay, rounds), name=f"l2-announce-{self.ifname}-{ip}"
        )

    def _next_delay(self, rounds: int) -> float:
        burst = rounds < self._schedule.burst
        return self._schedule.burst_interval if burst else self._schedule.period

    def _send_round(self, ip: IPAddress, frames: tuple[bytes, ...]) -> None:
        self._announced[ip] = self._loop.time()
        for frame in frames:
            if self._send(frame):
                self._metrics.announcements.labels(self.ifname).inc()

    async def _announce(
        self, ip: IPAddress, frames: tuple[bytes, ...], delay: float, rounds: int
    ) -> None:
        while True:
            await asyncio.sleep(delay)
            self._send_round(ip, frames)
            rounds += 1
            delay = self._next_delay(rounds)
