"""vipcast's own kinds (API group ``vipcast.io``), named after MetalLB's where they overlap."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from vipcast.spec.addresses import AddressRange, parse_ip, parse_range
from vipcast.spec.meta import LabelSelector, Model, ObjectMeta

API_GROUP = "vipcast.io"
API_VERSION = f"{API_GROUP}/v1beta1"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Seconds from a number or a Go-style duration (``90s``, ``1m30s``, ``300ms``)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '90s'")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a duration is a number of seconds or a string like '90s'")
    text = value.strip()
    pos, total = 0, 0.0
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * scale[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"{value!r} is not a duration (examples: '90s', '1m30s', '300ms')")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration)]
ASN = Annotated[int, Field(ge=1, le=4294967295)]


class OurObject(Model):
    """Common envelope of our kinds."""

    api_version: str
    kind: str
    metadata: ObjectMeta

    @field_validator("api_version")
    @classmethod
    def _group(cls, value: str) -> str:
        if value not in (API_VERSION, f"{API_GROUP}/v1"):
            raise ValueError(f"apiVersion must be {API_VERSION}, not {value!r}")
        return value

    @property
    def name(self) -> str:
        return self.metadata.name


# ---------------------------------------------------------------- IPAddressPool


class ServiceAllocation(Model):
    """Which services may take addresses from a pool, and its rank among pools."""

    #: lower number = tried first; unset or 0 comes after every pool with a priority (as in
    #: MetalLB, where 0 is the unset value; docs/allocation.md, "Pool order")
    priority: int | None = Field(default=None, ge=0)
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


class IPAddressPoolSpec(Model):
    addresses: tuple[str, ...] = Field(min_length=1)
    auto_assign: bool = True
    avoid_buggy_i_ps: bool = Field(default=False, alias="avoidBuggyIPs")
    service_allocation: ServiceAllocation | None = None

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        ranges = [parse_range(a) for a in value]  # raises with a clear message
        for i, a in enumerate(ranges):
            for b in ranges[i + 1 :]:
                if a.overlaps(b):
                    raise ValueError(f"{a.text!r} overlaps {b.text!r} in the same pool")
        return value

    @property
    def ranges(self) -> tuple[AddressRange, ...]:
        return tuple(parse_range(a) for a in self.addresses)


class IPAddressPool(OurObject):
    kind: Literal["IPAddressPool"] = "IPAddressPool"
    spec: IPAddressPoolSpec


# ---------------------------------------------------------------- BGP


#: how a BGPPeer lives beside a CNI's BGP speaker on the same nodes (docs/cni.md)
Coexistence = Literal["SeparateIdentity", "ThroughDaemon", "HandOff"]
COEXISTENCE_MODES: tuple[str, ...] = ("SeparateIdentity", "ThroughDaemon", "HandOff")


class SecretRef(Model):
    name: str
    namespace: str | None = None
    key: str = "password"


class BGPPeerSpec(Model):
    my_asn: ASN = Field(alias="myASN")
    peer_asn: ASN = Field(alias="peerASN")
    peer_address: str
    peer_port: int = Field(default=179, ge=1, le=65535)
    source_address: str | None = None
    router_id: str | None = Field(default=None, alias="routerID")
    hold_time: Duration = 90.0
    keepalive_time: Duration | None = None
    connect_time: Duration = 10.0
    password: str | None = Field(default=None, max_length=80)
    password_secret: SecretRef | None = None
    ebgp_multi_hop: bool = False
    #: GTSM (RFC 5082): accept only packets whose TTL shows at most this many hops
    ttl_security_hops: int | None = Field(default=None, ge=1, le=254)
    passive: bool = False
    node_selectors: tuple[LabelSelector, ...] = ()
    bfd_profile: str | None = None
    graceful_restart: bool = Field(default=False, alias="gracefulRestart")
    restart_time: Duration = 120.0
    #: false: the router does not take RFC 4360 extended communities from this session, so
    #: weighted ECMP (RFC 10005 link bandwidth) leaves its routes unweighted (check-config says so)
    extended_communities: bool = True
    #: how this session lives beside the CNI's BGP speaker (docs/cni.md): its own source
    #: address and router ID toward the router, through the node's daemon (this peer is the
    #: daemon), or no session at all (the announcements are handed to the CNI); unset: vipcast
    #: is the only speaker toward this router on the nodes it selects
    coexistence: Coexistence | None = None
    #: the CNISpeaker it lives beside (may be left out when there is exactly one)
    cni_speaker: str | None = Field(default=None, alias="cniSpeaker")

    @field_validator("peer_address")
    @classmethod
    def _peer(cls, value: str) -> str:
        return str(parse_ip(value))

    @field_validator("source_address")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_ip(value))

    @field_validator("router_id")
    @classmethod
    def _router_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"routerID {value!r} must be an IPv4 address") from None

    @field_validator("hold_time")
    @classmethod
    def _hold(cls, hold: float) -> float:
        if hold != 0 and not 3 <= hold <= 65535:
            raise ValueError("holdTime must be 0 or between 3s and 65535s (RFC 4271)")
        if hold != int(hold):
            raise ValueError("holdTime must be whole seconds")
        return hold

    @model_validator(mode="after")
    def _timers(self) -> BGPPeerSpec:
        hold = self.hold_time
        if self.keepalive_time is not None:
            if hold == 0 and self.keepalive_time != 0:
                raise ValueError("keepaliveTime must be 0 when holdTime is 0")
            if hold and not 0 < self.keepalive_time < hold:
                raise ValueError("keepaliveTime must be shorter than holdTime")
        if self.password is not None and self.password_secret is not None:
            raise ValueError("set password or passwordSecret, not both")
        if (
            self.source_address is not None
            and parse_ip(self.source_address).version != parse_ip(self.peer_address).version
        ):
            raise ValueError("sourceAddress and peerAddress must be of the same IP family")
        if self.ttl_security_hops is not None and self.ebgp_multi_hop:
            raise ValueError("ttlSecurityHops and ebgpMultiHop exclude each other")
        return self


class BGPPeer(OurObject):
    kind: Literal["BGPPeer"] = "BGPPeer"
    spec: BGPPeerSpec


_STANDARD = re.compile(r"^(\d+):(\d+)$")
_LARGE = re.compile(r"^(?:large:)?(\d+):(\d+):(\d+)$")

#: RFC 1997 / IANA well-known communities
WELL_KNOWN_COMMUNITIES: dict[str, int] = {
    "no-export": 0xFFFFFF01,
    "no-advertise": 0xFFFFFF02,
    "no-export-subconfed": 0xFFFFFF03,
    "local-as": 0xFFFFFF03,
    "no-peer": 0xFFFFFF04,
    "graceful-shutdown": 0xFFFF0000,
    "blackhole": 0xFFFF029A,
}


def parse_community(text: str) -> int | tuple[int, int, int] | None:
    """A community literal as a 32-bit value or a large-community triple; None if not a literal."""
    if text in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[text]
    if m := _STANDARD.match(text):
        high, low = int(m.group(1)), int(m.group(2))
        if high > 0xFFFF or low > 0xFFFF:
            raise ValueError(f"community {text!r}: each half must be at most 65535")
        return (high << 16) | low
    if m := _LARGE.match(text):
        parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if any(p > 0xFFFFFFFF for p in parts):
            raise ValueError(f"large community {text!r}: each part must be at most 4294967295")
        return parts
    return None


def _community_or_alias(value: str) -> str:
    if parse_community(value) is None and not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", value):
        raise ValueError(
            f"{value!r} is neither a community ('65000:100', 'large:1:2:3', 'no-export') "
            "nor an alias name"
        )
    return value


class BGPAdvertisementSpec(Model):
    ip_address_pools: tuple[str, ...] = Field(default=(), alias="ipAddressPools")
    ip_address_pool_selectors: tuple[LabelSelector, ...] = Field(
        default=(), alias="ipAddressPoolSelectors"
    )
    aggregation_length: int = Field(default=32, ge=0, le=32)
    aggregation_length_v6: int = Field(default=128, ge=0, le=128, alias="aggregationLengthV6")
    local_pref: int | None = Field(default=None, ge=0, le=4294967295)
    communities: tuple[Annotated[str, BeforeValidator(_community_or_alias)], ...] = ()
    peers: tuple[str, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    #: RFC 10005 weighted ECMP (docs/weighted-ecmp.md): "endpoints" attaches a link bandwidth
    #: community proportional to the node's ready local endpoints (Local policy) or to its
    #: ``vipcast.io/bgp-weight`` Node annotation (Cluster policy)
    weighted_ecmp: Literal["endpoints"] | None = Field(default=None, alias="weightedECMP")


class BGPAdvertisement(OurObject):
    kind: Literal["BGPAdvertisement"] = "BGPAdvertisement"
    spec: BGPAdvertisementSpec = Field(default_factory=BGPAdvertisementSpec)


class CommunityAlias(Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    value: str

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if parse_community(value) is None:
            raise ValueError(f"{value!r} is not a community ('65000:100' or 'large:1:2:3')")
        return value


class CommunitySpec(Model):
    communities: tuple[CommunityAlias, ...] = Field(min_length=1)


class Community(OurObject):
    """Named aliases for communities, used by BGPAdvertisement.communities."""

    kind: Literal["Community"] = "Community"
    spec: CommunitySpec


# ---------------------------------------------------------------- L2 and BFD


class L2AdvertisementSpec(Model):
    ip_address_pools: tuple[str, ...] = Field(default=(), alias="ipAddressPools")
    ip_address_pool_selectors: tuple[LabelSelector, ...] = Field(
        default=(), alias="ipAddressPoolSelectors"
    )
    interfaces: tuple[Annotated[str, Field(min_length=1, max_length=15)], ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()


class L2Advertisement(OurObject):
    kind: Literal["L2Advertisement"] = "L2Advertisement"
    spec: L2AdvertisementSpec = Field(default_factory=L2AdvertisementSpec)


class BFDProfileSpec(Model):
    receive_interval: int = Field(default=300, ge=10, le=60000, description="ms")
    transmit_interval: int = Field(default=300, ge=10, le=60000, description="ms")
    detect_multiplier: int = Field(default=3, ge=2, le=255)
    passive_mode: bool = False
    minimum_ttl: int = Field(default=254, ge=1, le=254)
    recovery_timeout: int = Field(
        default=5000, ge=0, le=3_600_000,
        description="ms; how long a BGP session stays up after the router replaced or ended "
        "an Up BFD session (not AdminDown) without bringing BFD Up again; 0: no bound",
    )  # fmt: skip


class BFDProfile(OurObject):
    kind: Literal["BFDProfile"] = "BFDProfile"
    spec: BFDProfileSpec = Field(default_factory=BFDProfileSpec)
