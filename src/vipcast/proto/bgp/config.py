"""What one session is configured with, and what it counts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .constants import SUPPORTED_FAMILIES, Family


@dataclass(frozen=True)
class SessionConfig:
    local_asn: int
    peer_asn: int
    router_id: str
    hold_time: int = 90
    keepalive_time: int | None = None
    connect_retry_time: float = 10.0
    #: RFC 4271 §8.1.1 DampPeerOscillations: the first drop after a stable session restarts
    #: at once; each further drop in a row waits ``idle_hold_time``, then twice as long each
    #: time, up to ``idle_hold_max``. A session Established for ``stable_time`` ends the row.
    idle_hold_time: float = 1.0
    idle_hold_max: float = 60.0
    stable_time: float = 10.0
    passive: bool = False
    families: frozenset[Family] = SUPPORTED_FAMILIES
    next_hop_v4: str | None = None
    next_hop_v6: str | None = None
    next_hop_v6_link_local: str | None = None
    graceful_restart: bool = False
    restart_time: int = 120
    restarting: bool = False
    extended_messages: bool = True
    route_refresh: bool = True
    #: the size of the UPDATEs we build (a stream of 4,096-byte messages is what routers
    #: install fastest: FRR takes 10k routes 30% faster than in one 64 KiB UPDATE); the
    #: RFC 8654 maximum is used only for what does not fit
    update_size: int = 4096

    def __post_init__(self) -> None:
        for name in ("local_asn", "peer_asn"):
            if not 0 < getattr(self, name) < 2**32:
                raise ValueError(f"{name} must be in 1..4294967295")
        if not 256 <= self.update_size <= 65535:
            raise ValueError("update_size must be in 256..65535")
        if self.hold_time != 0 and not 3 <= self.hold_time <= 65535:
            raise ValueError("hold_time must be 0 or 3..65535")
        if int(ipaddress.IPv4Address(self.router_id)) == 0:
            raise ValueError("router_id must not be 0.0.0.0")
        if not self.families <= SUPPORTED_FAMILIES:
            raise ValueError(f"unsupported families: {set(self.families - SUPPORTED_FAMILIES)}")
        if self.keepalive_time is not None and self.keepalive_time < 1:
            raise ValueError("keepalive_time must be at least 1 second")
        if self.connect_retry_time <= 0 or self.idle_hold_time <= 0:
            raise ValueError("connect_retry_time and idle_hold_time must be positive")
        if self.idle_hold_max < self.idle_hold_time:
            raise ValueError("idle_hold_max must be at least idle_hold_time")
        if self.stable_time < 0:
            raise ValueError("stable_time must not be negative")
        if not 0 <= self.restart_time <= 4095:
            raise ValueError("restart_time must be in 0..4095")
        for addr in (self.next_hop_v4, self.next_hop_v6, self.next_hop_v6_link_local):
            if addr is not None:
                ipaddress.ip_address(addr)


def idle_hold(config: SessionConfig, drops: int) -> float:
    """The idle hold before the automatic restart after the ``drops``-th drop in a row
    (RFC 4271 §8.1.1 DampPeerOscillations; pure): 0 for the first, then ``idle_hold_time``
    doubling each time, at most ``idle_hold_max``."""
    if drops <= 1:
        return 0.0
    return min(config.idle_hold_max, config.idle_hold_time * float(2 ** min(drops - 2, 62)))


@dataclass
class SessionStats:
    messages_sent: int = 0
    messages_received: int = 0
    updates_sent: int = 0
    updates_received: int = 0
    notifications_sent: int = 0
    notifications_received: int = 0
    keepalives_sent: int = 0
    keepalives_received: int = 0
    #: prefixes currently advertised to the peer (our Adj-RIB-Out as sent)
    prefixes_advertised: int = 0
    #: announcements received, cumulative (received routes are counted, never stored)
    prefixes_received: int = 0
    withdrawals_received: int = 0
    established_count: int = 0
    last_error: str | None = None
