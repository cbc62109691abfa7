"""Checks of BGPPeers against the CNISpeakers they live beside: collisions and missing parts.

Every finding names the BGPPeer's (or CNISpeaker's) file, object and field. What is refused
(docs/cni.md, "What check-config refuses"):

- a ``cniSpeaker`` that does not exist, or a mode with no (or no single) CNISpeaker;
- a BGPPeer toward a router the CNI's daemon also peers with, on a node both run on, that does
  not choose a mode (the router would see two speakers and the user never decided which);
- ``SeparateIdentity``: no ``sourceAddress`` (the kernel would pick the node's address, the
  CNI's), or the same source address or router ID as the CNI's on a node both run on;
- ``ThroughDaemon``: a peer AS or port other than the daemon's, or the daemon's router ID
  (RFC 4271 §6.2: an internal peer with our own BGP Identifier is refused with an OPEN error);
- ``HandOff``: a peer selecting only nodes its CNISpeaker does not run on, a CNISpeaker without
  ``spec.handOff``, a ``myASN`` other than the daemon's AS
  (the CNI announces from its own AS), and for FRR-K8s a password Secret outside the namespace
  FRR-K8s reads its Secrets from.

Nodes are the Node objects of the config; with none, two selector sets are taken to meet when
either is empty (selects every node).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from vipcast.spec.cni import NODE_IP, CNISpeaker
from vipcast.spec.errors import Issue
from vipcast.spec.load import Spec
from vipcast.spec.meta import LabelSelector
from vipcast.spec.objects import BGPPeer


def check_cni(spec: Spec) -> list[Issue]:
    """Every coexistence problem of a spec (empty when no BGPPeer or CNISpeaker is involved)."""
    if not spec.cni_speakers and not any(
        p.spec.coexistence or p.spec.cni_speaker for p in spec.peers
    ):
        return []
    out: list[Issue] = []
    for peer in spec.peers:
        out.extend(_peer_issues(spec, peer))
    return out


def _issue(spec: Spec, kind: str, name: str, field: str, message: str) -> Issue:
    return Issue(spec.origins.get(f"{kind}/{name}", ""), kind, name, field, message)


def selects(spec: Spec, selectors: Sequence[LabelSelector], node: str) -> bool:
    """Whether node selectors select a node (``kubernetes.io/hostname`` defaults to its name,
    as for BGPPeer sessions)."""
    if not selectors:
        return True
    obj = spec.node(node)
    labels = dict(obj.metadata.labels) if obj is not None else {}
    labels.setdefault("kubernetes.io/hostname", node)
    return any(s.matches(labels) for s in selectors)


def shared_nodes(spec: Spec, peer: BGPPeer, cni: CNISpeaker) -> tuple[str, ...] | None:
    """The Node names both select (None: no Node objects, and both may select any node)."""
    if not spec.nodes:
        either_all = not peer.spec.node_selectors or not cni.spec.node_selectors
        return None if either_all else ()
    return tuple(
        n.metadata.name for n in spec.nodes
        if selects(spec, peer.spec.node_selectors, n.metadata.name)
        and selects(spec, cni.spec.node_selectors, n.metadata.name)
    )


def node_ip(spec: Spec, node: str, version: int) -> str | None:
    """The node's first InternalIP of an IP family (what ``NodeIP`` stands for)."""
    obj = spec.node(node)
    if obj is None:
        return None
    for address in obj.addresses_of("InternalIP"):
        try:
            if ipaddress.ip_address(address).version == version:
                return str(ipaddress.ip_address(address))
        except ValueError:
            continue
    return None


def cni_values(spec: Spec, cni: CNISpeaker, nodes: tuple[str, ...] | None, field: str,
               version: int) -> dict[str, str]:
    """The CNI's source address or router ID (``field``: "sourceAddress" or "routerID") on
    each shared node, by value -> the node it was found on ("" when it is one literal)."""
    declared = cni.spec.source_address if field == "sourceAddress" else cni.spec.router_id
    if declared != NODE_IP:
        return {declared: ""}
    out: dict[str, str] = {}
    for node in nodes or ():
        address = node_ip(spec, node, version)
        if address is not None:
            out.setdefault(address, node)
    return out


def _where(cni: CNISpeaker, node: str) -> str:
    return f"CNISpeaker {cni.name}" + (f" on node {node}" if node else "")


def _peer_issues(spec: Spec, peer: BGPPeer) -> Iterator[Issue]:
    s = peer.spec
    name = peer.name

    def issue(field: str, message: str) -> Issue:
        return _issue(spec, "BGPPeer", name, field, message)

    if s.cni_speaker is not None and spec.cni_speaker_of(peer) is None:
        yield issue("spec.cniSpeaker", f"unknown CNISpeaker {s.cni_speaker!r}")
        return
    if s.coexistence is None:
        yield from _undecided(spec, peer)
        return
    cni = spec.cni_speaker_of(peer)
    if cni is None:
        if not spec.cni_speakers:
            # worded as a dangling reference: the admission webhook warns instead of denying,
            # so the BGPPeer may be applied before its CNISpeaker (check-config still refuses)
            yield issue("spec.coexistence",
                        f"unknown CNISpeaker: {s.coexistence} needs one and none is declared "
                        "(declare the CNI's BGP speaker)")
        else:
            names = ", ".join(sorted(c.name for c in spec.cni_speakers))
            yield issue("spec.cniSpeaker",
                        f"several CNISpeakers ({names}): name the one this peer lives beside")
        return
    nodes = shared_nodes(spec, peer, cni)
    if s.coexistence == "SeparateIdentity":
        yield from _separate(spec, peer, cni, nodes)
    elif s.coexistence == "ThroughDaemon":
        yield from _through(spec, peer, cni, nodes)
    else:
        mine = [n.metadata.name for n in spec.nodes
                if selects(spec, peer.spec.node_selectors, n.metadata.name)]
        if nodes == () and mine:  # (a selector matching no node yet is not an error)
            yield _issue(spec, "BGPPeer", peer.name, "spec.nodeSelectors",
                         f"selects {', '.join(mine)}, where CNISpeaker {cni.name} does not "
                         "run: nothing would be handed off")
        yield from _hand_off(spec, peer, cni)


def _undecided(spec: Spec, peer: BGPPeer) -> Iterator[Issue]:
    for cni in spec.cni_speakers:
        if not any(r.peer_address == peer.spec.peer_address for r in cni.spec.routers):
            continue
        nodes = shared_nodes(spec, peer, cni)
        if nodes == ():
            continue
        on = f" on {', '.join(nodes)}" if nodes else ""
        yield _issue(spec, "BGPPeer", peer.name, "spec.coexistence",
                     f"router {peer.spec.peer_address} is also a peer of CNISpeaker "
                     f"{cni.name}{on}: choose SeparateIdentity, ThroughDaemon or HandOff")


def _router_id(peer: BGPPeer) -> str | None:
    """vipcast's router ID toward this peer as the config fixes it (None: derived from the
    node name or the agent's --router-id, not known here)."""
    s = peer.spec
    if s.router_id is not None:
        return s.router_id
    if s.source_address is not None and ipaddress.ip_address(s.source_address).version == 4:
        return s.source_address
    return None


def _router_id_clash(spec: Spec, peer: BGPPeer, cni: CNISpeaker,
                     nodes: tuple[str, ...] | None, why: str) -> Iterator[Issue]:
    ours = _router_id(peer)
    if ours is None:
        return
    theirs = cni_values(spec, cni, nodes, "routerID", 4)
    if ours in theirs:
        source = "" if peer.spec.router_id else " (taken from spec.sourceAddress)"
        yield _issue(spec, "BGPPeer", peer.name, "spec.routerID",
                     f"router ID {ours}{source} is the one of {_where(cni, theirs[ours])}: {why}")


def _separate(spec: Spec, peer: BGPPeer, cni: CNISpeaker,
              nodes: tuple[str, ...] | None) -> Iterator[Issue]:
    s = peer.spec
    if nodes == ():
        return
    if s.source_address is None:
        yield _issue(spec, "BGPPeer", peer.name, "spec.sourceAddress",
                     "SeparateIdentity needs its own source address (without one the kernel "
                     f"picks the node's address, the one CNISpeaker {cni.name} peers from)")
        return
    version = ipaddress.ip_address(s.source_address).version
    theirs = cni_values(spec, cni, nodes, "sourceAddress", version)
    if s.source_address in theirs:
        yield _issue(spec, "BGPPeer", peer.name, "spec.sourceAddress",
                     f"{s.source_address} is the source address of "
                     f"{_where(cni, theirs[s.source_address])}: the router would see two "
                     "speakers from one neighbor address")
    yield from _router_id_clash(spec, peer, cni, nodes,
                                "two speakers with one BGP identifier")


def _through(spec: Spec, peer: BGPPeer, cni: CNISpeaker,
             nodes: tuple[str, ...] | None) -> Iterator[Issue]:
    s = peer.spec
    if s.peer_asn != cni.spec.asn:
        yield _issue(spec, "BGPPeer", peer.name, "spec.peerASN",
                     f"{s.peer_asn} is not the AS of CNISpeaker {cni.name} ({cni.spec.asn}), "
                     "the daemon this peer is")
    if s.peer_port != cni.spec.listen_port:
        yield _issue(spec, "BGPPeer", peer.name, "spec.peerPort",
                     f"the daemon of CNISpeaker {cni.name} listens on port "
                     f"{cni.spec.listen_port}, not {s.peer_port}")
    if nodes != ():
        yield from _router_id_clash(
            spec, peer, cni, nodes,
            "the daemon refuses an internal peer with its own BGP identifier (RFC 4271 §6.2)")


def _hand_off(spec: Spec, peer: BGPPeer, cni: CNISpeaker) -> Iterator[Issue]:
    s = peer.spec
    target = cni.spec.hand_off
    if target is None:
        yield _issue(spec, "CNISpeaker", cni.name, "spec.handOff",
                     f"BGPPeer {peer.name} hands its announcements off to this CNISpeaker, "
                     "which has no spec.handOff (calico, frrK8s or birdInclude)")
    if s.my_asn != cni.spec.asn:
        yield _issue(spec, "BGPPeer", peer.name, "spec.myASN",
                     f"{s.my_asn} is not the AS of CNISpeaker {cni.name} ({cni.spec.asn}), "
                     "which announces the handed-off routes")
    ref = s.password_secret
    if (target is not None and target.frr_k8s is not None and ref is not None
            and ref.namespace is not None and ref.namespace != target.frr_k8s.namespace):
        yield _issue(spec, "BGPPeer", peer.name, "spec.passwordSecret.namespace",
                     f"FRR-K8s reads password Secrets from its own namespace "
                     f"{target.frr_k8s.namespace}, not {ref.namespace}")
