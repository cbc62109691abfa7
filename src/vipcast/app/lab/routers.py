"""The lab's BGP daemons: the router (FRR or BIRD 2) and, with ``--cni bird``, each node's BIRD.

Their configurations follow from :class:`~vipcast.app.lab.options.LabOptions`; the ``*_of``
functions find a running daemon again from a saved :class:`~vipcast.app.lab.options.LabState`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from vipcast.app.lab.cni import (
    VIPCAST_SEPARATE_ASN,
    cni_config,
    node_routers,
    write_empty_handoff_files,
)
from vipcast.app.lab.objects import lab_pools
from vipcast.app.lab.options import (
    NODE_ASN,
    ROUTER_ASN,
    ROUTER_V4,
    ROUTER_V6,
    LabOptions,
    LabState,
    node_v4,
    node_v6,
    options_of,
    vipcast_v4,
    vipcast_v6,
)
from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, BirdInstance
from vipcast.lab.cni_bird import CniBird, CniBirdConfig, start_cni_bird
from vipcast.lab.frr import BfdProfile, FrrConfig, FrrInstance, start_frr
from vipcast.lab.netns import LabError, Netns, Topology

#: the lab's router daemon, whichever it is (both answer neighbor_states/wait_established)
LabRouter = FrrInstance | BirdInstance


def router_neighbors(opts: LabOptions) -> tuple[Neighbor, ...]:
    """The router's neighbors: every node over IPv4 and IPv6."""
    neighbors: list[Neighbor] = []
    for i in range(1, opts.nodes + 1):
        for addr in (node_v4(i), node_v6(i)):
            neighbors.append(Neighbor(
                address=addr, remote_as=NODE_ASN, bfd=opts.bfd and opts.mode == "bgp",
                bfd_profile="fast" if opts.bfd else None, hold_time=opts.hold_time,
                keepalive=max(1, opts.hold_time // 3), connect_retry=1,
                description=f"n{i}",
            ))
        if opts.cni == "bird" and opts.coexist == "separate":
            # mode 1: the node's vipcast is a second neighbor, from its own address and AS
            for addr in (vipcast_v4(i), vipcast_v6(i)):
                neighbors.append(Neighbor(
                    address=addr, remote_as=VIPCAST_SEPARATE_ASN, bfd=opts.bfd,
                    bfd_profile="fast" if opts.bfd else None, hold_time=opts.hold_time,
                    keepalive=max(1, opts.hold_time // 3), connect_retry=1,
                    description=f"n{i} vipcast",
                ))
    return tuple(neighbors)


def router_config(opts: LabOptions) -> FrrConfig:
    return FrrConfig(
        asn=ROUTER_ASN, router_id=ROUTER_V4, neighbors=router_neighbors(opts),
        hostname="router",
        bfd_profiles=(BfdProfile("fast", opts.bfd_multiplier, opts.bfd_interval_ms,
                                 opts.bfd_interval_ms),) if opts.bfd else (),
        stalepath_time=60,
    )


def late_bfd_neighbors(opts: LabOptions) -> tuple[Neighbor, ...]:
    """The router's neighbors whose BFD is configured only once their BGP session is
    Established: the nodes' CNI BIRDs (``--cni bird``).

    BIRD asks for its BFD session when its BGP protocol starts. With ``neighbor X bfd`` in
    bgpd's startup file, FRR 8.4 registers a BFD session without a local address at once, BIRD's
    BFD comes Up with it, and at Established bgpd moves the neighbor to a new session with the
    local address; the old one goes Down while Up and bgpd resets BGP (Cease/BFD Down): one
    flap per session at every start (docs/bfd.md). Configured after Established, bgpd registers
    the session with its local address from the start, and there is nothing to hand over.
    """
    if opts.cni != "bird":
        return ()
    nodes = {a for i in range(1, opts.nodes + 1) for a in (node_v4(i), node_v6(i))}
    return tuple(n for n in router_neighbors(opts) if n.bfd and n.address in nodes)


def start_router_frr(router: Netns, opts: LabOptions, directory: Path) -> FrrInstance:
    """Start the lab's FRR router: :func:`router_config`, less the BFD of
    :func:`late_bfd_neighbors` (:func:`arm_late_bfd` adds it once they are Established)."""
    late = {n.address for n in late_bfd_neighbors(opts)}
    cfg = router_config(opts)
    first = tuple(replace(n, bfd=False, bfd_profile=None) if n.address in late else n
                  for n in cfg.neighbors)
    return start_frr(router, replace(cfg, neighbors=first, bfdd=cfg.bfdd or bool(late)),
                     directory)


def arm_late_bfd(frr: FrrInstance, opts: LabOptions, timeout: float = 120.0) -> None:
    """Configure BFD (at run time, through vtysh) on each of :func:`late_bfd_neighbors` as
    soon as its session is Established; :class:`LabError` naming those still waiting when
    ``timeout`` s have passed."""
    waiting = {n.address: n for n in late_bfd_neighbors(opts)}
    deadline = time.monotonic() + timeout
    while waiting:
        states = frr.neighbor_states()
        for address in [a for a in waiting if states.get(a) == "Established"]:
            n = waiting.pop(address)
            lines = [f"neighbor {address} bfd"]
            if n.bfd_profile:
                lines.append(f"neighbor {address} bfd profile {n.bfd_profile}")
            frr.configure(f"router bgp {frr.config.asn}", *lines)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise LabError(f"the router's sessions with {', '.join(sorted(waiting))} were not "
                           f"Established within {timeout:g} s (states: {states})")
        time.sleep(0.1)


def bird_config(opts: LabOptions) -> BirdConfig:
    """BIRD 2 as the router: kernel protocol with ``merge paths`` so equal paths are ECMP.

    BIRD's BFD-down handling is a hard session reset (not graceful restart) unless ``bfd
    graceful`` is set, so GR stays on here even with BFD.
    """
    return BirdConfig(
        asn=ROUTER_ASN, router_id=ROUTER_V4, neighbors=router_neighbors(opts),
        graceful_restart=True, bfd_interval_ms=opts.bfd_interval_ms,
        bfd_multiplier=opts.bfd_multiplier,
    )


def frr_of(topo: Topology, state: LabState) -> FrrInstance:
    return FrrInstance(netns=topo["router"], directory=Path(state.frr_dir),
                       config=router_config(options_of(state)))


def router_of(topo: Topology, state: LabState) -> LabRouter:
    """The lab's router daemon (FRR or BIRD) as built into ``topo``."""
    if state.router != "bird":
        return frr_of(topo, state)
    pid = state.pids["router-bird"]
    process = next(p for p in topo.processes if p.pid == pid)
    return BirdInstance(netns=topo["router"], directory=Path(state.bird_dir),
                        config=bird_config(options_of(state)), process=process)


def node_cni_config(opts: LabOptions, i: int) -> CniBirdConfig:
    """Node ``i``'s CNI BIRD configuration (``--cni bird``)."""
    routers = node_routers(ROUTER_V4, ROUTER_V6, router_asn=ROUTER_ASN,
                           bfd=opts.bfd, hold_time=opts.hold_time)
    return cni_config(i, node_v4(i), node_v6(i), routers, asn=NODE_ASN,
                      vip_pools=lab_pools(opts), coexist=opts.coexist, workdir=opts.workdir,
                      bfd_interval_ms=opts.bfd_interval_ms, bfd_multiplier=opts.bfd_multiplier)


def cni_bird_of(topo: Topology, state: LabState, node: str) -> CniBird:
    """The CNI BIRD running on ``node`` (``n1``...) of a ``--cni bird`` lab."""
    i = int(node.removeprefix("n"))
    pid = state.pids[f"{node}-cni-bird"]
    process = next(p for p in topo.processes if p.pid == pid)
    cfg = node_cni_config(options_of(state), i)
    plain = BirdConfig(asn=cfg.asn, router_id=cfg.router_id, neighbors=cfg.routers)
    return CniBird(netns=topo[node], directory=Path(state.workdir) / f"cni-{node}",
                   config=plain, process=process, cni=cfg)


def restart_cni_bird(topo: Topology, state: LabState, node: str) -> CniBird:
    """Start ``node``'s CNI BIRD again (after a power loss); records its new PID."""
    i = int(node.removeprefix("n"))
    opts = options_of(state)
    if opts.coexist == "handoff":  # the file is gone with the power (tmpfs): empty until the
        # agent has verified its data plane again
        write_empty_handoff_files(opts.workdir / "config", opts.nodes, only=i)
    bird = start_cni_bird(topo[node], node_cni_config(opts, i),
                          Path(state.workdir) / f"cni-{node}")
    state.pids[f"{node}-cni-bird"] = bird.pid
    return bird


def wait_sessions(router: LabRouter, nodes: int, timeout: float = 60.0) -> None:
    """Wait until the router has its IPv4 and IPv6 sessions to every node Established."""
    peers = [a for i in range(1, nodes + 1) for a in (node_v4(i), node_v6(i))]
    router.wait_established(*peers, timeout=timeout)
