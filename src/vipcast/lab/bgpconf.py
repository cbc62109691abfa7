"""What every lab BGP daemon launcher shares: the neighbor description and the path view.

A :class:`Neighbor` says how a third-party daemon (FRR, BIRD, GoBGP, ExaBGP) should peer with
someone; each launcher renders the fields its daemon supports. A :class:`BgpPath` is one
received path, normalised from the daemon's own JSON/text so tests compare the same fields
whichever daemon they ran.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Family = Literal["ipv4", "ipv6"]


@dataclass(frozen=True)
class Neighbor:
    """One BGP neighbor of a lab daemon."""

    address: str
    remote_as: int
    #: TCP port of the neighbor (default 179)
    port: int | None = None
    #: TCP MD5 (RFC 2385) password
    password: str | None = None
    #: eBGP multihop TTL
    ebgp_multihop: int | None = None
    #: GTSM (RFC 5082) maximum hops; the daemon then sends TTL 255
    ttl_security_hops: int | None = None
    bfd: bool = False
    #: FRR BFD profile name (see :class:`vipcast.lab.frr.BfdProfile`)
    bfd_profile: str | None = None
    passive: bool = False
    keepalive: int | None = None
    hold_time: int | None = None
    #: seconds between connection attempts (FRR ``timers connect``)
    connect_retry: int | None = None
    #: local address to source the session from
    local_address: str | None = None
    #: address families to activate; default: the family of ``address``
    families: tuple[Family, ...] | None = None
    description: str | None = None

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version

    @property
    def active_families(self) -> tuple[Family, ...]:
        if self.families is not None:
            return self.families
        return ("ipv6",) if self.version == 6 else ("ipv4",)


@dataclass(frozen=True)
class BgpPath:
    """One path for a prefix as a daemon holds it (the fields tests look at)."""

    prefix: str
    nexthop: str | None
    as_path: tuple[int, ...] = ()
    #: RFC 1997 communities as "ASN:VALUE" strings (well-known ones as the daemon names them)
    communities: tuple[str, ...] = ()
    #: RFC 8092 large communities as "A:B:C"
    large_communities: tuple[str, ...] = ()
    local_pref: int | None = None
    med: int | None = None
    best: bool = False
    multipath: bool = False
    #: the neighbor the path came from, when the daemon says
    peer: str | None = None
    origin: str | None = None
    #: stale (graceful restart) per the daemon
    stale: bool = False


def family_of(prefix: str) -> Family:
    return "ipv6" if ipaddress.ip_network(prefix, strict=False).version == 6 else "ipv4"
