"""What one BGP peer reports for status, metrics and the CLI, with the counters of the sessions
it retired (after a collision or a restart) carried over."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeerStatus:
    """A snapshot of one peer for status, metrics and the CLI."""

    name: str
    address: str
    port: int
    local_asn: int
    peer_asn: int
    state: str
    uptime: float | None
    local_address: str | None
    prefixes_advertised: int
    prefixes_received: int
    updates_sent: int
    updates_received: int
    notifications_sent: int
    notifications_received: int
    established_transitions: int
    last_error: str | None
    #: the session's drops in a row (RFC 4271 §8.1.1 damping: 1 restarts at once, each more
    #: waits twice as long); back to 0 after a session Established for its stable time
    drops_in_a_row: int = 0
    #: seconds until the automatic restart while the session waits out its idle hold
    restart_in: float | None = None


@dataclass
class RetiredCounters:
    """Counters of retired sessions (after a collision or a restart), kept for status."""

    updates_sent: int = 0
    updates_received: int = 0
    notifications_sent: int = 0
    notifications_received: int = 0
    established: int = 0

    def add(self, stats: object) -> None:
        self.updates_sent += int(getattr(stats, "updates_sent", 0))
        self.updates_received += int(getattr(stats, "updates_received", 0))
        self.notifications_sent += int(getattr(stats, "notifications_sent", 0))
        self.notifications_received += int(getattr(stats, "notifications_received", 0))
        self.established += int(getattr(stats, "established_count", 0))
