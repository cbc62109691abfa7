"""The sessions a node keeps, from the spec (pure): BGP sessions and their BFD sessions."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

from vipcast.core.desired import BfdPeer, BgpSession
from vipcast.proto.bfd import SessionConfig as BfdConfig
from vipcast.proto.bgp import SessionConfig
from vipcast.spec import BGPPeer, Spec
from vipcast.spec.objects import BFDProfileSpec


def derived_router_id(node: str) -> str:
    """A stable IPv4-formatted BGP identifier from the node name (when none is configured)."""
    value = int.from_bytes(hashlib.sha256(node.encode()).digest()[:4], "big") or 1
    return str(ipaddress.IPv4Address(value))


def peer_selects_node(spec: Spec, peer: BGPPeer, node: str) -> bool:
    selectors = peer.spec.node_selectors
    if not selectors:
        return True
    obj = spec.node(node)
    labels = dict(obj.metadata.labels) if obj is not None else {}
    labels.setdefault("kubernetes.io/hostname", node)
    return any(selector.matches(labels) for selector in selectors)


def bgp_sessions(
    spec: Spec, node: str, *, router_id: str | None = None, restarting: bool = False
) -> tuple[BgpSession, ...]:
    """The BGP sessions this node keeps, from the BGPPeer objects that select it."""
    result = []
    for peer in sorted(spec.peers, key=lambda p: p.name):
        if not peer_selects_node(spec, peer, node):
            continue
        if spec.password_problem(peer) is not None:
            continue  # its passwordSecret gives no password: no session without it
        if peer.spec.coexistence == "HandOff":
            continue  # the CNI's daemon announces toward this router (core/handoff.py)
        s = peer.spec
        ident = s.router_id or router_id
        if ident is None and s.source_address and ":" not in s.source_address:
            ident = s.source_address
        ebgp = s.my_asn != s.peer_asn
        ttl: int | None = None
        if ebgp:
            ttl = 255 if s.ebgp_multi_hop else 1
        config = SessionConfig(
            local_asn=s.my_asn,
            peer_asn=s.peer_asn,
            router_id=ident or derived_router_id(node),
            hold_time=int(s.hold_time),
            keepalive_time=None if s.keepalive_time is None else int(s.keepalive_time),
            connect_retry_time=float(s.connect_time),
            passive=s.passive,
            graceful_restart=s.graceful_restart,
            restart_time=int(s.restart_time),
            restarting=restarting and s.graceful_restart,
        )
        result.append(
            BgpSession(
                name=peer.name,
                address=s.peer_address,
                port=s.peer_port,
                session=config,
                source_address=s.source_address,
                ttl=None if s.ttl_security_hops is not None else ttl,
                gtsm_hops=s.ttl_security_hops,
                md5_password=spec.peer_password(peer),
            )
        )
    return tuple(result)


def bfd_config(profile: BFDProfileSpec | BfdConfig | None, multihop: bool) -> BfdConfig:
    """The BFD session parameters of a spec profile (milliseconds) or explicit parameters."""
    if isinstance(profile, BfdConfig):
        return profile
    p = profile if profile is not None else BFDProfileSpec()
    return BfdConfig(
        desired_min_tx_us=p.transmit_interval * 1000,
        required_min_rx_us=p.receive_interval * 1000,
        detect_mult=p.detect_multiplier,
        passive=p.passive_mode,
        multihop=multihop,
        minimum_ttl=p.minimum_ttl,
        recovery_timeout_s=p.recovery_timeout / 1000,
    )


def bfd_peers(spec: Spec, names: Iterable[str]) -> tuple[BfdPeer, ...]:
    """The BFD sessions of the named BGPPeers that carry an existing ``bfdProfile``."""
    result = []
    for name in sorted(set(names)):
        peer = spec.peer(name)
        if peer is None or peer.spec.bfd_profile is None or peer.spec.coexistence == "HandOff":
            continue
        profile = spec.bfd_profile(peer.spec.bfd_profile)
        if profile is None:
            continue
        multihop = peer.spec.ebgp_multi_hop
        result.append(
            BfdPeer(
                name=name,
                address=peer.spec.peer_address,
                local=peer.spec.source_address,
                config=bfd_config(profile.spec, multihop),
                multihop=multihop,
            )
        )
    return tuple(result)
