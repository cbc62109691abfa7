"""The lab beside a BGP-speaking CNI (``vipcast lab up --cni bird``; docs/cni.md, docs/lab.md).

Every node runs BIRD 2 configured the way calico-node configures its BIRD
(:mod:`vipcast.lab.cni_bird`): it owns the node's pod block (``10.244.<i>.0/24``,
``fd00:244:<i>::/64``), exports it to the router over one session per address family and
rejects everything else it does not own. The router (FRR) keeps exactly those sessions: one
neighbor per node and family, the CNI's.

``coexist="separate"`` (mode 1, "separate identity"): each agent peers the router directly from
a second address of its node (:func:`separate_peers`), with its own router ID and AS
(:data:`VIPCAST_SEPARATE_ASN`); the router keeps two neighbors per node and family, the CNI's
and vipcast's, and the node's BIRD does not hear of the VIPs. vipcast listens on no port.

``coexist="daemon"`` (mode 2, "through the node's own daemon"): vipcast speaks iBGP to the
node's BIRD on the node's own address, port :data:`VIPCAST_PORT` (never 179); BIRD includes the
shipped snippet (``deploy/cni/bird/vipcast.conf``) and re-advertises the VIPs to the router.

``coexist="handoff"`` (mode 3): vipcast speaks no BGP. Each node has its own ``CNISpeaker``
(``calico-n<i>``: the lab's nodes share one file system, so each BIRD's include file and control
socket are the node's own) with ``handOff.birdInclude``, and HandOff ``BGPPeer``s toward the
router; the agent writes its node's announcements into ``<workdir>/cni-n<i>/vipcast-handoff.conf``
and runs ``birdc configure``. The BIRD includes that file and
``deploy/cni/bird/vipcast-handoff.conf``. The lab writes the file once (empty, from the same pure
function the agent uses) before BIRD starts, since BIRD refuses a missing include.
The nodes route other nodes' pods through the router (no static routes between nodes), which
learned every block from the CNI, as with calico's node-to-node mesh off and a ToR peering.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vipcast.core.handoff import bird_include, hand_off_targets
from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import parse_protocols
from vipcast.lab.cni_bird import CniBird, CniBirdConfig, start_cni_bird
from vipcast.lab.frr import session_counts_of
from vipcast.lab.netns import Netns
from vipcast.lab.process import run_command
from vipcast.sources.files import load_paths

CniKind = Literal["none", "bird"]
CoexistMode = Literal["daemon", "separate", "handoff"]
#: the port the node's BIRD listens on for its vipcast agent (vipcast's peerPort)
VIPCAST_PORT = 1790
POD_POOLS = ("10.244.0.0/16", "fd00:244::/32")


def pod_blocks(i: int) -> tuple[str, str]:
    """The IPAM blocks node ``i`` owns (IPv4, IPv6)."""
    return f"10.244.{i}.0/24", f"fd00:244:{i}::/64"


def vipcast_router_id(i: int) -> str:
    """vipcast's BGP identifier on node ``i``: not the BIRD's (iBGP refuses an equal one)."""
    return f"198.19.0.{10 + i}"


#: vipcast's own AS in mode 1 (the CNI's BIRD is the node's AS): the router's AS paths say
#: which speaker a route came from
VIPCAST_SEPARATE_ASN = 64514


def cni_speaker(*, asn: int, routers: tuple[tuple[str, int], ...],
                listen_port: int = VIPCAST_PORT) -> dict[str, Any]:
    """The ``CNISpeaker`` the lab declares: the nodes' BIRD (docs/cni.md, "The objects").

    ``listenPort`` is the port the BIRD accepts vipcast on (the snippet's ``VIPCAST_PORT``);
    identity and sessions are the node's own address, as calico-node's defaults.
    """
    return {
        "apiVersion": "vipcast.io/v1beta1", "kind": "CNISpeaker",
        "metadata": {"name": "calico"},
        "spec": {"cni": "Calico", "asn": asn, "routerID": "NodeIP", "sourceAddress": "NodeIP",
                 "listenPort": listen_port,
                 "routers": [{"peerAddress": a, "peerASN": r_asn} for a, r_asn in routers]},
    }


def daemon_peers(
    nodes: int, node_v4: Callable[[int], str], node_v6: Callable[[int], str], *,
    asn: int, hold_time: int, graceful_restart: bool,
) -> list[dict[str, Any]]:
    """Mode 2's BGPPeer objects: each node's agent peers its own BIRD, iBGP, on VIPCAST_PORT."""
    peers: list[dict[str, Any]] = []
    for i in range(1, nodes + 1):
        for fam, address in (("v4", node_v4(i)), ("v6", node_v6(i))):
            peers.append({
                "apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer",
                "metadata": {"name": f"cni-n{i}-{fam}"},
                "spec": {
                    "coexistence": "ThroughDaemon", "cniSpeaker": "calico",
                    "myASN": asn, "peerASN": asn, "peerAddress": address,
                    "peerPort": VIPCAST_PORT, "sourceAddress": address,
                    "routerID": vipcast_router_id(i), "holdTime": f"{hold_time}s",
                    "connectTime": "1s", "gracefulRestart": graceful_restart,
                    "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": f"n{i}"}}],
                },
            })
    return peers


def separate_peers(
    nodes: int, own_v4: Callable[[int], str], own_v6: Callable[[int], str], *,
    router_v4: str, router_v6: str, router_asn: int, hold_time: int, graceful_restart: bool,
    bfd: bool,
) -> list[dict[str, Any]]:
    """Mode 1's BGPPeer objects: each node's agent peers the router from its node's second
    address (``own_v4(i)``/``own_v6(i)``), router ID = that IPv4 address, AS
    :data:`VIPCAST_SEPARATE_ASN`, BFD with the router when ``bfd``."""
    peers: list[dict[str, Any]] = []
    for i in range(1, nodes + 1):
        for fam, router, source in (("v4", router_v4, own_v4(i)), ("v6", router_v6, own_v6(i))):
            spec: dict[str, Any] = {
                "coexistence": "SeparateIdentity", "cniSpeaker": "calico",
                "myASN": VIPCAST_SEPARATE_ASN, "peerASN": router_asn, "peerAddress": router,
                "sourceAddress": source, "routerID": own_v4(i),
                "holdTime": f"{hold_time}s", "connectTime": "1s",
                "gracefulRestart": graceful_restart,
                "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": f"n{i}"}}],
            }
            if bfd:
                spec["bfdProfile"] = "fast"
            peers.append({"apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer",
                          "metadata": {"name": f"router-n{i}-{fam}"}, "spec": spec})
    return peers


def handoff_path(workdir: Path, i: int) -> Path:
    """Where node ``i``'s agent writes its hand-off file (mode 3)."""
    return workdir / f"cni-n{i}" / "vipcast-handoff.conf"


def handoff_objects(
    nodes: int, workdir: Path, *, asn: int, routers: tuple[tuple[str, int], ...],
) -> list[dict[str, Any]]:
    """Mode 3's objects: per node a CNISpeaker with its BIRD include file and HandOff peers
    toward every router address (vipcast opens no session to them)."""
    objects: list[dict[str, Any]] = []
    for i in range(1, nodes + 1):
        selector = [{"matchLabels": {"kubernetes.io/hostname": f"n{i}"}}]
        speaker = cni_speaker(asn=asn, routers=routers)
        speaker["metadata"] = {"name": f"calico-n{i}"}
        speaker["spec"].update(
            listenPort=179, nodeSelectors=selector,
            handOff={"birdInclude": {
                "path": str(handoff_path(workdir, i)),
                "controlSocket": str(workdir / f"cni-n{i}" / "bird.ctl")}})
        objects.append(speaker)
        for fam, (address, router_asn) in zip(("v4", "v6"), routers, strict=True):
            objects.append({
                "apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer",
                "metadata": {"name": f"handoff-n{i}-{fam}"},
                "spec": {"coexistence": "HandOff", "cniSpeaker": f"calico-n{i}",
                         "myASN": asn, "peerASN": router_asn, "peerAddress": address,
                         "nodeSelectors": selector},
            })
    return objects


def write_empty_handoff_files(config_dir: Path, nodes: int, only: int | None = None) -> None:
    """Each node's hand-off file (or node ``only``'s) as the agent writes it when it hands
    nothing: BIRD needs the file before it starts, and a node that boots must announce nothing
    until its agent has verified its data plane and replaces the file (docs/cni.md)."""
    spec = load_paths([config_dir])
    for i in range(1, nodes + 1):
        if only is not None and i != only:
            continue
        for target in hand_off_targets(spec, f"n{i}"):
            if target.kind == "birdInclude":
                path = Path(target.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(bird_include(f"n{i}", target, ()))


def cni_config(
    i: int, v4: str, v6: str, routers: tuple[Neighbor, ...], *, asn: int,
    vip_pools: tuple[str, ...], coexist: CoexistMode, workdir: Path,
    bfd_interval_ms: int = 100, bfd_multiplier: int = 3,
) -> CniBirdConfig:
    """Node ``i``'s CNI BIRD: its blocks, the pools, its router sessions (and vipcast's)."""
    return CniBirdConfig(
        asn=asn, router_id=v4, node_v4=v4, node_v6=v6, blocks=pod_blocks(i), pools=POD_POOLS,
        routers=routers, bfd_interval_ms=bfd_interval_ms, bfd_multiplier=bfd_multiplier,
        coexist="none" if coexist == "separate" else coexist,
        vip_pools=vip_pools, vipcast_port=VIPCAST_PORT,
        handoff_path=str(handoff_path(workdir, i)),
    )


def node_routers(router_v4: str, router_v6: str, *, router_asn: int, bfd: bool,
                 hold_time: int) -> tuple[Neighbor, ...]:
    """A node's sessions to the router: one per address family (calico's bird and bird6)."""
    return tuple(
        Neighbor(address=a, remote_as=router_asn, bfd=bfd, hold_time=hold_time,
                 keepalive=max(1, hold_time // 3), description="router")
        for a in (router_v4, router_v6)
    )


def start_node_birds(
    nodes: list[Netns], configs: list[CniBirdConfig], workdir: Path,
    pids: dict[str, int],
) -> list[CniBird]:
    """Start every node's CNI BIRD (state under ``workdir/cni-n<i>``); record their PIDs."""
    birds = []
    for i, (node, cfg) in enumerate(zip(nodes, configs, strict=True), start=1):
        bird = start_cni_bird(node, cfg, workdir / f"cni-n{i}")
        pids[f"n{i}-cni-bird"] = bird.pid
        birds.append(bird)
    return birds


# ------------------------------------------------------------------ what the router sees


@dataclass(frozen=True)
class RouterSession:
    """One router neighbor as FRR sees it, its routes split by speaker."""

    neighbor: str
    node: str
    state: str
    #: FRR's counters: sessions established / dropped since bgpd started, and uptime (ms)
    established: int
    dropped: int
    up_ms: int
    #: prefixes accepted from this neighbor: pod blocks (the CNI's) and VIPs (vipcast's)
    pod_routes: tuple[str, ...]
    vip_routes: tuple[str, ...]
    other_routes: tuple[str, ...]


def _inside(prefix: str, pools: tuple[str, ...]) -> bool:
    net = ipaddress.ip_network(prefix)
    first, last = int(net.network_address), int(net.broadcast_address)
    return any(
        net.version == pool.version
        and int(pool.network_address) <= first
        and last <= int(pool.broadcast_address)
        for pool in map(ipaddress.ip_network, pools)
    )


def speaker_of(prefix: str, vip_pools: tuple[str, ...]) -> Literal["cni", "vipcast", "other"]:
    """Whose route a prefix is: inside a VIP pool (vipcast), a pod pool (the CNI) or neither."""
    if _inside(prefix, vip_pools):
        return "vipcast"
    return "cni" if _inside(prefix, POD_POOLS) else "other"


def router_sessions(
    frr_dir: Path, node_of: dict[str, str], vip_pools: tuple[str, ...]
) -> list[RouterSession]:
    """Every neighbor of the lab's FRR router, with the routes it gave, split by speaker."""
    def vtysh_json(command: str) -> Any:
        out = run_command(["vtysh", "--vty_socket", str(frr_dir), "-d", "bgpd", "-c", command],
                          check=False).stdout.strip()
        try:
            return json.loads(out) if out else {}
        except json.JSONDecodeError:
            return {}

    neighbors = vtysh_json("show bgp neighbors json")
    result = []
    for address, info in sorted((neighbors if isinstance(neighbors, dict) else {}).items()):
        if not isinstance(info, dict):
            continue
        fam = "ipv6" if ":" in address else "ipv4"
        routes = vtysh_json(f"show bgp {fam} unicast neighbors {address} routes json")
        prefixes = sorted(routes.get("routes", {})) if isinstance(routes, dict) else []
        by: dict[str, list[str]] = {"cni": [], "vipcast": [], "other": []}
        for p in prefixes:
            by[speaker_of(p, vip_pools)].append(p)
        established, dropped = session_counts_of(info)
        result.append(RouterSession(
            neighbor=address, node=node_of.get(address, "?"),
            state=str(info.get("bgpState", "")),
            established=established, dropped=dropped,
            up_ms=int(info.get("bgpTimerUpMsec", 0)),
            pod_routes=tuple(by["cni"]), vip_routes=tuple(by["vipcast"]),
            other_routes=tuple(by["other"]),
        ))
    return result


def vipcast_session_states(workdir: Path, node: str) -> dict[str, str]:
    """The node BIRD's sessions with its vipcast agent (``vipcast4``/``vipcast6`` -> state)."""
    sock = workdir / f"cni-{node}" / "bird.ctl"
    out = run_command(["birdc", "-s", str(sock), "show", "protocols"], check=False).stdout
    states = parse_protocols(out)
    return {name: states.get(name, "(none)") for name in ("vipcast4", "vipcast6")}
