"""The hand-off (coexistence mode ``HandOff``, docs/cni.md): a node's announcements as values a
CNI takes, with no BGP session from vipcast (pure: values in, values out).

A consumer of the plan, never a loop back into the source: :func:`hand_off_targets` reads the
config once per snapshot (which hand-off peers select the node, and where their CNISpeaker
takes announcements: ``NodePlan.hand_off``); :func:`handed_routes` picks, from the node's plan
as observed (servable routes only), what goes to those peers; the renderers turn that into

- Calico's ``BGPConfiguration.spec.serviceLoadBalancerIPs`` (:func:`calico_service_lb_ips`):
  one /32 or /128 per VIP, never a CIDR wider than one address (a CIDR there makes Calico
  announce the whole range from every node);
- one FRR-K8s ``FRRConfiguration`` per node (:func:`frr_configuration`);
- a BIRD include file of static routes (:func:`bird_include`), for a BIRD on the node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vipcast.core.desired import BGPRoute, HandOffNeighbor, HandOffTarget, NodePlan
from vipcast.core.sessions import peer_selects_node
from vipcast.spec import Spec
from vipcast.spec.cni_checks import selects

FRR_K8S_API = "frrk8s.metallb.io/v1beta1"
#: label on every object vipcast writes for a hand-off
MANAGED_BY = {"app.kubernetes.io/managed-by": "vipcast"}
NODE_LABEL = "vipcast.io/node"


@dataclass(frozen=True, order=True)
class HandedRoute:
    """One prefix handed to a CNI, with the VIPs it holds and its attributes."""

    prefix: str
    #: the allocated VIPs inside the prefix that this route carries (a host route: itself)
    vips: tuple[str, ...]
    neighbors: tuple[str, ...]  # the hand-off peers (BGPPeer names) it goes to
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    local_pref: int | None = None


def hand_off_targets(spec: Spec, node: str) -> tuple[HandOffTarget, ...]:
    """The CNISpeakers this node hands announcements to, each with its HandOff peers here."""
    by_cni: dict[str, list[HandOffNeighbor]] = {}
    for peer in sorted(spec.peers, key=lambda p: p.name):
        if peer.spec.coexistence != "HandOff" or not peer_selects_node(spec, peer, node):
            continue
        cni = spec.cni_speaker_of(peer)
        if cni is None or cni.spec.hand_off is None:
            continue  # refused by check-config; nothing to hand to
        if not selects(spec, cni.spec.node_selectors, node):
            continue  # the CNI's daemon does not run here: nobody to hand to
        s = peer.spec
        profile = spec.bfd_profile(s.bfd_profile) if s.bfd_profile else None
        by_cni.setdefault(cni.name, []).append(HandOffNeighbor(
            name=peer.name, address=s.peer_address, my_asn=s.my_asn, peer_asn=s.peer_asn,
            port=s.peer_port, ebgp_multi_hop=s.ebgp_multi_hop,
            bfd_profile=profile.name if profile else None,
            bfd=profile.spec if profile else None,
            password=s.password,
            password_secret=s.password_secret.name if s.password_secret else None,
        ))
    out = []
    for name in sorted(by_cni):
        cni = next(c for c in spec.cni_speakers if c.name == name)
        target = cni.spec.hand_off
        assert target is not None
        common: dict[str, Any] = {"cni": name, "asn": cni.spec.asn,
                                  "neighbors": tuple(by_cni[name])}
        if target.calico is not None:
            out.append(HandOffTarget(kind="calico",
                                     bgp_configuration=target.calico.bgp_configuration, **common))
        elif target.frr_k8s is not None:
            out.append(HandOffTarget(kind="frrK8s", namespace=target.frr_k8s.namespace,
                                     **common))
        elif target.bird_include is not None:
            bird = target.bird_include
            out.append(HandOffTarget(kind="birdInclude", path=bird.path,
                                     control_socket=bird.control_socket,
                                     protocol=bird.protocol, **common))
    return tuple(out)


def handed_routes(plan: NodePlan, target: HandOffTarget) -> tuple[HandedRoute, ...]:
    """The node's routes toward the target's hand-off peers, sorted, with their VIPs."""
    names = {n.name for n in target.neighbors}
    vips_of: dict[str, set[str]] = {}
    for rule in plan.nat:
        vips_of.setdefault(rule.service, set()).add(rule.vip)
    out = []
    for route in plan.bgp:
        to = tuple(p for p in route.peers if p in names)
        if not to:
            continue
        out.append(HandedRoute(
            prefix=route.prefix, vips=_vips(route, vips_of), neighbors=to,
            communities=route.communities, large_communities=route.large_communities,
            local_pref=route.local_pref,
        ))
    return tuple(sorted(out))


def _vips(route: BGPRoute, vips_of: dict[str, set[str]]) -> tuple[str, ...]:
    net = ipaddress.ip_network(route.prefix)
    if net.num_addresses == 1:
        return (str(net.network_address),)
    inside = {
        ip for service in route.services for ip in vips_of.get(service, ())
        if ipaddress.ip_address(ip) in net
    }
    return tuple(sorted(inside, key=ipaddress.ip_address))


def calico_service_lb_ips(routes: Iterable[HandedRoute]) -> list[dict[str, str]]:
    """``serviceLoadBalancerIPs`` entries: every handed VIP as a /32 or /128, sorted, once."""
    hosts = {ipaddress.ip_address(ip) for r in routes for ip in r.vips}
    ordered = sorted(hosts, key=lambda a: (a.version, a))
    return [{"cidr": f"{a}/{a.max_prefixlen}"} for a in ordered]


def calico_hand_off(spec: Spec, assignments: Mapping[str, tuple[str, ...]]
                    ) -> dict[str, list[dict[str, str]]]:
    """Per Calico ``BGPConfiguration`` named by a CNISpeaker's ``handOff.calico``: the
    ``serviceLoadBalancerIPs`` entries, one /32 or /128 per allocated VIP that an
    advertisement sends to a HandOff peer of that CNISpeaker (an empty list when none does).

    Cluster-wide and per address, not per node: Calico announces each of these from every
    node (Cluster policy) or from the nodes with a local endpoint (Local), on its own.
    """
    targets: dict[str, str] = {}  # HandOff peer -> BGPConfiguration name
    out: dict[str, set[ipaddress.IPv4Address | ipaddress.IPv6Address]] = {}
    for speaker in spec.cni_speakers:
        if speaker.spec.hand_off is not None and speaker.spec.hand_off.calico is not None:
            out.setdefault(speaker.spec.hand_off.calico.bgp_configuration, set())
    for peer in spec.peers:
        cni = spec.cni_speaker_of(peer) if peer.spec.coexistence == "HandOff" else None
        if cni is not None and cni.spec.hand_off is not None and cni.spec.hand_off.calico:
            targets[peer.name] = cni.spec.hand_off.calico.bgp_configuration
    if not targets:
        return {name: [] for name in sorted(out)}
    # pool -> the BGPConfigurations its advertisements reach
    reach: dict[str, set[str]] = {}
    for adv in spec.bgp_advertisements:
        names = adv.spec.peers or tuple(p.name for p in spec.peers)
        hit = {targets[n] for n in names if n in targets}
        if not hit:
            continue
        for pool in spec.pools_selected(adv.spec.ip_address_pools,
                                        adv.spec.ip_address_pool_selectors):
            reach.setdefault(pool.name, set()).update(hit)
    ranges = [(pool.name, r) for pool in spec.pools if pool.name in reach
              for r in pool.spec.ranges]
    for ips in assignments.values():
        for ip in ips:
            address = ipaddress.ip_address(ip)
            for pool_name, r in ranges:
                if r.version == address.version and r.first <= int(address) <= r.last:
                    for name in reach[pool_name]:
                        out.setdefault(name, set()).add(address)
    return {name: [{"cidr": f"{a}/{a.max_prefixlen}"}
                   for a in sorted(addresses, key=lambda a: (a.version, a))]
            for name, addresses in sorted(out.items())}


def community_text(value: int) -> str:
    """An RFC 1997 community as ``high:low``."""
    return f"{value >> 16}:{value & 0xFFFF}"


def frr_configuration_name(node: str) -> str:
    return f"vipcast-{node}"


def frr_configuration(node: str, target: HandOffTarget,
                      routes: Iterable[HandedRoute]) -> dict[str, Any]:
    """The node's ``FRRConfiguration`` (FRR-K8s merges it with the CNI's own): one router of
    the CNI's AS, the hand-off neighbors with exactly what this node announces to each."""
    routes = tuple(routes)
    neighbors = []
    for n in target.neighbors:
        mine = [r for r in routes if n.name in r.neighbors]
        prefixes = sorted({r.prefix for r in mine})
        advertise: dict[str, Any] = {"allowed": {"mode": "filtered", "prefixes": prefixes}}
        by_community: dict[str, set[str]] = {}
        by_pref: dict[int, set[str]] = {}
        for r in mine:
            for c in r.communities:
                by_community.setdefault(community_text(c), set()).add(r.prefix)
            for lc in r.large_communities:
                by_community.setdefault("large:{}:{}:{}".format(*lc), set()).add(r.prefix)
            if r.local_pref is not None:
                by_pref.setdefault(r.local_pref, set()).add(r.prefix)
        if by_community:
            advertise["withCommunity"] = [
                {"community": c, "prefixes": sorted(p)} for c, p in sorted(by_community.items())]
        if by_pref:
            advertise["withLocalPref"] = [
                {"localPref": lp, "prefixes": sorted(p)} for lp, p in sorted(by_pref.items())]
        neighbor: dict[str, Any] = {"address": n.address, "asn": n.peer_asn,
                                    "toAdvertise": advertise}
        if n.port != 179:
            neighbor["port"] = n.port
        if n.ebgp_multi_hop:
            neighbor["ebgpMultiHop"] = True
        if n.bfd_profile is not None:
            neighbor["bfdProfile"] = n.bfd_profile
        if n.password is not None:
            neighbor["password"] = n.password
        elif n.password_secret is not None:
            neighbor["passwordSecret"] = {"name": n.password_secret,
                                          "namespace": target.namespace}
        neighbors.append(neighbor)
    router: dict[str, Any] = {"asn": target.asn, "neighbors": neighbors,
                              "prefixes": sorted({r.prefix for r in routes})}
    bgp: dict[str, Any] = {"routers": [router]}
    profiles = {n.bfd_profile: n.bfd for n in target.neighbors
                if n.bfd_profile is not None and n.bfd is not None}
    if profiles:
        bgp["bfdProfiles"] = [
            {"name": name, "receiveInterval": p.receive_interval,
             "transmitInterval": p.transmit_interval, "detectMultiplier": p.detect_multiplier,
             "passiveMode": p.passive_mode, "minimumTtl": p.minimum_ttl}
            for name, p in sorted(profiles.items())]
    return {
        "apiVersion": FRR_K8S_API,
        "kind": "FRRConfiguration",
        "metadata": {"name": frr_configuration_name(node), "namespace": target.namespace,
                     "labels": {**MANAGED_BY, NODE_LABEL: node}},
        "spec": {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": node}},
                 "bgp": bgp},
    }


def bird_include(node: str, target: HandOffTarget, routes: Iterable[HandedRoute]) -> str:
    """The BIRD 2 include file: one ``protocol static`` per family (``<protocol>`` for IPv4,
    ``<protocol>_v6`` for IPv6) with a blackhole route per handed prefix and its attributes.
    Both protocols are always present (empty when the node hands nothing), so the BIRD config
    that exports them stays valid."""
    lines = [f"# Generated by vipcast for node {node} (CNISpeaker {target.cni}); do not edit.",
             f"# Reloaded with: birdc -s {target.control_socket} configure"]
    by_family: dict[int, list[HandedRoute]] = {4: [], 6: []}
    for r in merged_by_prefix(routes):
        by_family[ipaddress.ip_network(r.prefix).version].append(r)
    for version, suffix, channel in ((4, "", "ipv4"), (6, "_v6", "ipv6")):
        lines.append(f"protocol static {target.protocol}{suffix} {{")
        lines.append(f"  {channel};")
        for r in sorted(by_family[version]):
            lines.append(f"  route {r.prefix} blackhole{_bird_attributes(r)};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def merged_by_prefix(routes: Iterable[HandedRoute]) -> tuple[HandedRoute, ...]:
    """One route per prefix: a target that cannot tell its neighbors apart (a BIRD static
    protocol goes to every session its export filter lets through) gets the union of the
    communities and the highest localPref, as the planner merges overlapping advertisements."""
    merged: dict[str, HandedRoute] = {}
    for r in sorted(routes):
        old = merged.get(r.prefix)
        if old is None:
            merged[r.prefix] = r
            continue
        prefs = [p for p in (old.local_pref, r.local_pref) if p is not None]
        merged[r.prefix] = HandedRoute(
            prefix=r.prefix, vips=tuple(sorted(set(old.vips) | set(r.vips),
                                               key=ipaddress.ip_address)),
            neighbors=tuple(sorted(set(old.neighbors) | set(r.neighbors))),
            communities=tuple(sorted(set(old.communities) | set(r.communities))),
            large_communities=tuple(sorted(set(old.large_communities)
                                           | set(r.large_communities))),
            local_pref=max(prefs) if prefs else None)
    return tuple(merged[p] for p in sorted(merged))


def _bird_attributes(route: HandedRoute) -> str:
    parts = [f"bgp_community.add(({c >> 16},{c & 0xFFFF}));" for c in route.communities]
    parts += [f"bgp_large_community.add(({a},{b},{c}));"
              for a, b, c in route.large_communities]
    if route.local_pref is not None:
        parts.append(f"bgp_local_pref = {route.local_pref};")
    return " { " + " ".join(parts) + " }" if parts else ""
