"""``CNISpeaker``: another BGP speaker on the nodes (the CNI's daemon), as vipcast must know it.

A cluster whose CNI already speaks BGP to the routers (Calico's BIRD, kube-router's GoBGP,
FRR-K8s, Cilium's BGP control plane) declares that speaker here: where it runs, its AS, the
identity it presents to the routers (source address, router ID), the port it listens on, the
routers it peers with, and -- for the hand-off mode -- where vipcast hands its announcements to
it. Each ``BGPPeer`` then says how vipcast lives beside it (``spec.coexistence``, see
docs/cni.md); ``spec/cni_checks.py`` refuses the combinations that would collide.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vipcast.spec.addresses import parse_ip
from vipcast.spec.meta import LabelSelector, Model
from vipcast.spec.objects import ASN, COEXISTENCE_MODES, Coexistence, OurObject

#: the CNI's address / identifier is the node's own address (the first InternalIP of the
#: family; for a router ID, the first IPv4 InternalIP), as Calico and kube-router do by default
NODE_IP = "NodeIP"
CNI = Literal["Calico", "KubeRouter", "FRRK8s", "Cilium", "Other"]


__all__ = ["COEXISTENCE_MODES", "NODE_IP", "CNISpeaker", "Coexistence"]


class CNIRouter(Model):
    """A router the CNI's daemon peers with (as the CNI is configured, declared for checks)."""

    peer_address: str
    peer_asn: ASN | None = Field(default=None, alias="peerASN")

    @field_validator("peer_address")
    @classmethod
    def _address(cls, value: str) -> str:
        return str(parse_ip(value))


class CalicoHandOff(Model):
    """Hand-off to Calico: vipcast owns ``spec.serviceLoadBalancerIPs`` of this (existing)
    ``BGPConfiguration`` and writes one /32 or /128 entry per VIP there."""

    bgp_configuration: str = Field(default="default", alias="bgpConfiguration", min_length=1,
                                   max_length=253)


class FRRK8sHandOff(Model):
    """Hand-off to FRR-K8s: one ``FRRConfiguration`` per node in this namespace (where the
    frr-k8s daemon reads them and its password Secrets live)."""

    namespace: str = Field(default="frr-k8s-system", min_length=1, max_length=63)


class BirdIncludeHandOff(Model):
    """Hand-off to a BIRD on the node (standalone agent): vipcast writes this node's
    announcements as a BIRD ``protocol static`` into ``path`` and runs ``birdc configure``
    on ``controlSocket`` (the BIRD config includes the file and exports that protocol)."""

    path: str = Field(min_length=1, max_length=1024)
    control_socket: str = Field(default="/run/bird/bird.ctl", min_length=1, max_length=1024)
    #: the name of the static protocol in the file (the export filter matches on it)
    protocol: str = Field(default="vipcast_handoff", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

    @field_validator("path", "control_socket")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path")
        return value


class HandOff(Model):
    """Where vipcast hands its announcements to the CNI (exactly one target)."""

    calico: CalicoHandOff | None = None
    frr_k8s: FRRK8sHandOff | None = Field(default=None, alias="frrK8s")
    bird_include: BirdIncludeHandOff | None = None

    @model_validator(mode="after")
    def _one(self) -> HandOff:
        targets = [t for t in (self.calico, self.frr_k8s, self.bird_include) if t is not None]
        if len(targets) != 1:
            raise ValueError("set exactly one of calico, frrK8s, birdInclude")
        return self


class CNISpeakerSpec(Model):
    cni: CNI = "Other"
    #: nodes where the CNI's daemon runs (every node when empty)
    node_selectors: tuple[LabelSelector, ...] = ()
    #: the daemon's own AS
    asn: ASN
    #: the daemon's BGP identifier: "NodeIP" (the node's IPv4 InternalIP) or an IPv4 address
    router_id: str = Field(default=NODE_IP, alias="routerID")
    #: the source of its sessions toward the routers: "NodeIP" or an address
    source_address: str = NODE_IP
    #: where the daemon accepts BGP connections (every address of the node)
    listen_port: int = Field(default=179, ge=1, le=65535)
    #: the routers it peers with (empty: unknown, every vipcast session is checked against it)
    routers: tuple[CNIRouter, ...] = ()
    hand_off: HandOff | None = None

    @field_validator("router_id")
    @classmethod
    def _router_id(cls, value: str) -> str:
        if value == NODE_IP:
            return value
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"routerID {value!r} must be {NODE_IP!r} or an IPv4 address"
                             ) from None

    @field_validator("source_address")
    @classmethod
    def _source(cls, value: str) -> str:
        return value if value == NODE_IP else str(parse_ip(value))


class CNISpeaker(OurObject):
    """Another BGP speaker on the nodes (the CNI's daemon) that vipcast lives beside."""

    kind: Literal["CNISpeaker"] = "CNISpeaker"
    spec: CNISpeakerSpec
