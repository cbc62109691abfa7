"""The lab: a router, N vipcast nodes, backends and a client, all in network namespaces.

Topology (every name carries the run's prefix, e.g. ``vc-lab-router``)::

    client (203.0.113.10) ── router (FRR or BIRD 2, AS 64512) ── lan (bridge br0) ── n1 … nN
                                                     198.18.0.1            198.18.0.1<i>
                                                     fd00:18::1            fd00:18::1<i>

Each node runs ``vipcast agent`` (AS 64513, eBGP to the router over IPv4 and IPv6) and two
HTTP backends on its pod subnet (10.244.<i>.10-11, fd00:244:<i>::10-11). The object files the
agents read are written to ``<workdir>/config``; the router spreads VIP traffic over the nodes
by ECMP with an L4 hash. Nothing is added to the root namespace.

``LabState`` is saved as JSON so ``vipcast lab status``/``down`` work from another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vipcast.app.lab_cni import (
    VIPCAST_SEPARATE_ASN,
    CniKind,
    CoexistMode,
    cni_config,
    cni_speaker,
    daemon_peers,
    handoff_objects,
    node_routers,
    separate_peers,
    start_node_birds,
    write_empty_handoff_files,
)
from vipcast.app.lab_gateway import (
    GATEWAY_POOL,
    agent_gateway_args,
    gateway_objects,
    gateway_pool,
    pod_objects,
)
from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, BirdInstance, start_bird
from vipcast.lab.cni_bird import CniBird, CniBirdConfig, start_cni_bird
from vipcast.lab.frr import BfdProfile, FrrConfig, FrrInstance, start_frr
from vipcast.lab.netns import Netns, Topology, delete_prefixed

ROUTER_ASN = 64512
NODE_ASN = 64513
LAN_V4 = "198.18.0"
LAN_V6 = "fd00:18::"
CLIENT_V4 = "203.0.113.10"
CLIENT_V6 = "2001:db8:cc::10"
POOL_V4 = "192.0.2.0/27"
POOL_V6 = "2001:db8:100::/120"
STATE_FILE = "lab-state.json"
DEFAULT_PREFIX = "vc-lab"
AGENT_STATUS_PORT = 9470

Step = Callable[[str], None]
RouterKind = Literal["frr", "bird"]
#: the lab's router daemon, whichever it is (both answer neighbor_states/wait_established)
LabRouter = FrrInstance | BirdInstance


@dataclass(frozen=True)
class LabOptions:
    nodes: int = 3
    mode: Literal["bgp", "l2"] = "bgp"
    router: RouterKind = "frr"
    bfd: bool = True
    #: graceful restart on the agents' sessions (None: on only without BFD). FRR 8.4 and
    #: BIRD 2 keep a restarting agent's routes yet drop a dead node's on BFD down, so both
    #: can be on (docs/lab.md, "Graceful restart and BFD")
    graceful_restart: bool | None = True
    prefix: str = DEFAULT_PREFIX
    workdir: Path = Path("/tmp/vipcast-lab")
    #: BGP hold time the agents and the router use (seconds)
    hold_time: int = 9
    #: Envoy on every node in front of the backends as pods (``app/lab_gateway.py``)
    gateway: bool = False
    #: ready endpoints of ``web-local`` per node (n1, n2, ...); set: the advertisement asks for
    #: weighted ECMP and the router hashes by L4 (docs/weighted-ecmp.md)
    backends: tuple[int, ...] = ()
    #: "bird": every node runs BIRD 2 playing a BGP-speaking CNI (calico-node's policy), and
    #: vipcast lives beside it as ``coexist`` says (``app/lab_cni.py``, docs/cni.md)
    cni: CniKind = "none"
    #: "daemon": mode 2, vipcast's VIPs go through the node's BIRD; "separate": mode 1,
    #: vipcast peers the router itself from a second node address; "handoff": mode 3, the
    #: agent speaks no BGP and hands the VIPs to the node's BIRD in a file
    coexist: CoexistMode = "daemon"
    #: node liveness (the SWIM membership) on the agents: a dead node's backends leave the
    #: others' Cluster-policy maps within its detection time (off: only by health check)
    liveness: bool = True

    @property
    def agent_graceful_restart(self) -> bool:
        if self.graceful_restart is not None:
            return self.graceful_restart
        return not (self.bfd and self.mode == "bgp")


@dataclass
class LabState:
    prefix: str
    workdir: str
    nodes: list[str]
    namespaces: list[str]
    pids: dict[str, int] = field(default_factory=dict)
    frr_dir: str = ""
    #: "frr" or "bird"; the router's state directory is ``frr_dir`` / ``bird_dir``
    router: str = "frr"
    bird_dir: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        Path(self.workdir, STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, workdir: Path) -> LabState | None:
        path = workdir / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def node_v4(i: int) -> str:
    return f"{LAN_V4}.{10 + i}"


def node_v6(i: int) -> str:
    return f"{LAN_V6}{10 + i:x}"


def vipcast_v4(i: int) -> str:
    """Node ``i``'s second address, vipcast's own beside a CNI (``coexist="separate"``)."""
    return f"{LAN_V4}.{40 + i}"


def vipcast_v6(i: int) -> str:
    return f"{LAN_V6}{40 + i:x}"


def backend_ips(i: int, count: int = 2) -> list[tuple[str, str]]:
    """(IPv4, IPv6) of the backends (pod addresses) on node ``i``: two unless ``count``."""
    return [(f"10.244.{i}.{10 + k}", f"fd00:244:{i}::{10 + k:x}") for k in range(count)]


def local_backends(opts: LabOptions, i: int) -> int:
    """How many ``web-local`` endpoints node ``i`` runs (``--backends``; else 2 on n1, n2)."""
    if opts.backends:
        return opts.backends[i - 1] if i <= len(opts.backends) else 0
    return 2 if i <= 2 or opts.nodes == 1 else 0


# ------------------------------------------------------------------ object files


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, **extra}


def lab_objects(opts: LabOptions) -> dict[str, list[dict[str, Any]]]:
    """The object files the agents read, by file name."""
    api = "vipcast.io/v1beta1"
    n = opts.nodes
    config: list[dict[str, Any]] = [
        {"apiVersion": api, "kind": "IPAddressPool", "metadata": _meta("lab"),
         "spec": {"addresses": [POOL_V4, POOL_V6], "avoidBuggyIPs": True}},
    ]
    pools = ["lab"]
    if opts.gateway:
        config.append(gateway_pool())
        pools.append("gateway")
    if opts.mode == "bgp":
        peer_common: dict[str, Any] = {
            "myASN": NODE_ASN, "peerASN": ROUTER_ASN, "holdTime": f"{opts.hold_time}s",
            # an agent restart closes TCP first (GR helper keeps its routes); a dead node
            # goes silent and BFD down resets the session without GR (docs/lab.md)
            "gracefulRestart": opts.agent_graceful_restart,
        }
        if opts.bfd:
            peer_common["bfdProfile"] = "fast"
            config.append({"apiVersion": api, "kind": "BFDProfile", "metadata": _meta("fast"),
                           "spec": {"receiveInterval": 100, "transmitInterval": 100,
                                    "detectMultiplier": 3}})
        routers = ((f"{LAN_V4}.1", ROUTER_ASN), (f"{LAN_V6}1", ROUTER_ASN))
        if opts.cni == "bird" and opts.coexist == "separate":
            # mode 1: each agent peers the router itself, from its node's second address
            config.append(cni_speaker(asn=NODE_ASN, routers=routers, listen_port=179))
            config += separate_peers(
                n, vipcast_v4, vipcast_v6, router_v4=f"{LAN_V4}.1", router_v6=f"{LAN_V6}1",
                router_asn=ROUTER_ASN, hold_time=opts.hold_time,
                graceful_restart=opts.agent_graceful_restart, bfd=opts.bfd)
        elif opts.cni == "bird" and opts.coexist == "handoff":
            # mode 3: no session at all, a file for the node's BIRD
            config += handoff_objects(n, opts.workdir, asn=NODE_ASN, routers=routers)
        elif opts.cni == "bird":  # mode 2: each agent peers its node's BIRD, not the router
            config.append(cni_speaker(asn=NODE_ASN, routers=routers))
            config += daemon_peers(n, node_v4, node_v6, asn=NODE_ASN, hold_time=opts.hold_time,
                                   graceful_restart=opts.agent_graceful_restart)
        else:
            config += [
                {"apiVersion": api, "kind": "BGPPeer", "metadata": _meta("router-v4"),
                 "spec": {**peer_common, "peerAddress": f"{LAN_V4}.1"}},
                {"apiVersion": api, "kind": "BGPPeer", "metadata": _meta("router-v6"),
                 "spec": {**peer_common, "peerAddress": f"{LAN_V6}1"}},
            ]
        config += [
            {"apiVersion": api, "kind": "Community", "metadata": _meta("lab-communities"),
             "spec": {"communities": [{"name": "vip", "value": f"{ROUTER_ASN}:100"}]}},
            {"apiVersion": api, "kind": "BGPAdvertisement", "metadata": _meta("to-router"),
             "spec": {"ipAddressPools": pools, "communities": ["vip"],
                      **({"weightedECMP": "endpoints"} if opts.backends else {})}},
        ]
    else:
        config.append({"apiVersion": api, "kind": "L2Advertisement", "metadata": _meta("lan"),
                       "spec": {"ipAddressPools": pools, "interfaces": ["eth0"]}})
    nodes = [
        {"apiVersion": "v1", "kind": "Node",
         "metadata": _meta(f"n{i}", labels={"kubernetes.io/hostname": f"n{i}"}),
         "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": node_v4(i)},
                                  {"type": "InternalIP", "address": node_v6(i)}]}}
        for i in range(1, n + 1)
    ]
    all_nodes = list(range(1, n + 1))
    services = [
        obj
        for objs in (
            _service("web", "Cluster", [("TCP", 80)], all_nodes, "IPv4"),
        _service("web-local", "Local", [("TCP", 80)], all_nodes, "IPv4",
                 counts={i: local_backends(opts, i) for i in all_nodes}),
        _service("dual", "Cluster", [("TCP", 80)], all_nodes, "dual"),
        _service("dns-tcp", "Cluster", [("TCP", 53)], all_nodes, "IPv4", sharing="dns"),
        _service("dns-udp", "Cluster", [("UDP", 53)], all_nodes, "IPv4", sharing="dns"),
        )
        for obj in objs
    ]
    files = {"config.yaml": config, "nodes.yaml": nodes, "services.yaml": services}
    if opts.gateway:
        files["gateway.yaml"] = gateway_objects()
        files["gateway-pods.yaml"] = pod_objects(n, backend_ips)
    return files


def lab_pools(opts: LabOptions) -> tuple[str, ...]:
    """Every VIP pool of the lab (the CNI's BIRD accepts host routes inside them only)."""
    return (POOL_V4, POOL_V6) + ((GATEWAY_POOL,) if opts.gateway else ())


def _service(
    name: str,
    policy: str,
    ports: list[tuple[str, int]],
    on_nodes: Iterable[int],
    family: Literal["IPv4", "dual"],
    sharing: str | None = None,
    counts: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    # backends on a dead node leave the other nodes' NAT maps within about a second
    annotations = {"vipcast.io/health-check": "tcp, interval=0.3, timeout=0.25, fall=2"}
    if sharing:
        annotations["vipcast.io/allow-shared-ip"] = sharing
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": policy,
        "ports": [{"name": f"p{p}", "port": p, "protocol": proto, "targetPort": 8080}
                  for proto, p in ports],
        "selector": {"app": name},
    }
    if family == "dual":
        spec["ipFamilyPolicy"] = "RequireDualStack"
        spec["ipFamilies"] = ["IPv4", "IPv6"]
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(name, namespace="default", annotations=annotations), "spec": spec}
    ]
    families = [("IPv4", 0)] + ([("IPv6", 1)] if family == "dual" else [])
    for addr_type, idx in families:
        endpoints = [
            {"addresses": [ips[idx]], "nodeName": f"n{i}", "conditions": {"ready": True}}
            for i in on_nodes
            for ips in backend_ips(i, counts[i] if counts is not None else 2)
        ]
        objects.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(f"{name}-{addr_type.lower()}", namespace="default",
                              labels={"kubernetes.io/service-name": name}),
            "addressType": addr_type,
            "endpoints": endpoints,
            "ports": [{"name": f"p{p}", "port": 8080, "protocol": proto} for proto, p in ports],
        })
    return objects


def write_objects(opts: LabOptions, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for fname, docs in lab_objects(opts).items():
        (directory / fname).write_text(yaml.safe_dump_all(docs, sort_keys=False))


# ------------------------------------------------------------------ building


def _python() -> str:
    return sys.executable


def _vipcast() -> list[str]:
    return [_python(), "-m", "vipcast.cli.main"]


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
        asn=ROUTER_ASN, router_id=f"{LAN_V4}.1", neighbors=router_neighbors(opts),
        hostname="router",
        bfd_profiles=(BfdProfile("fast", 3, 100, 100),) if opts.bfd else (),
        stalepath_time=60,
    )


def bird_config(opts: LabOptions) -> BirdConfig:
    """BIRD 2 as the router: kernel protocol with ``merge paths`` so equal paths are ECMP.

    BIRD's BFD-down handling is a hard session reset (not graceful restart) unless ``bfd
    graceful`` is set, so GR stays on here even with BFD.
    """
    return BirdConfig(
        asn=ROUTER_ASN, router_id=f"{LAN_V4}.1", neighbors=router_neighbors(opts),
        graceful_restart=True, bfd_interval_ms=100, bfd_multiplier=3,
    )


def build(opts: LabOptions, step: Step = lambda _: None) -> tuple[Topology, LabState]:
    """Build the whole lab; on any failure everything built so far is torn down."""
    if opts.workdir.exists():
        shutil.rmtree(opts.workdir)
    opts.workdir.mkdir(parents=True)
    opts.workdir.chmod(0o755)
    topo = Topology(opts.prefix, workdir=opts.workdir, keep_workdir=True)
    try:
        state = _build(topo, opts, step)
    except BaseException:
        topo.close()
        raise
    return topo, state


def _build(topo: Topology, opts: LabOptions, step: Step) -> LabState:
    step("namespaces and links")
    router = topo.add_netns("router", router=True)
    lan = topo.add_netns("lan")
    client = topo.add_netns("client")
    lan.add_bridge("br0")
    topo.attach_to_bridge(lan, "br0", "p0", router, "eth0")
    router.add_address("eth0", f"{LAN_V4}.1/24")
    router.add_address("eth0", f"{LAN_V6}1/64")
    topo.veth(router, "cli0", client, "eth0")
    router.add_address("cli0", "203.0.113.1/24")
    router.add_address("cli0", "2001:db8:cc::1/64")
    client.add_address("eth0", f"{CLIENT_V4}/24")
    client.add_address("eth0", f"{CLIENT_V6}/64")
    client.add_default_route("203.0.113.1")
    client.add_default_route("2001:db8:cc::1")
    # ECMP spreads flows by the L4 5-tuple
    router.sysctl("net.ipv4.fib_multipath_hash_policy", 1)
    router.sysctl("net.ipv6.fib_multipath_hash_policy", 1)
    nodes: list[Netns] = []
    for i in range(1, opts.nodes + 1):
        node = topo.add_netns(f"n{i}", router=True)
        nodes.append(node)
        topo.attach_to_bridge(lan, "br0", f"p{i}", node, "eth0")
        node.add_address("eth0", f"{node_v4(i)}/24")
        node.add_address("eth0", f"{node_v6(i)}/64")
        if opts.cni == "bird" and opts.coexist == "separate":
            node.add_address("eth0", f"{vipcast_v4(i)}/24")
            node.add_address("eth0", f"{vipcast_v6(i)}/64")
        node.add_default_route(f"{LAN_V4}.1")
        node.add_default_route(f"{LAN_V6}1")
        # pod addresses live on lo (the lab kernel may lack dummy links); other nodes route
        # each node's pod subnet to it over the LAN
        for ip4, ip6 in backend_ips(i, max(2, local_backends(opts, i))):
            node.add_address("lo", f"{ip4}/32")
            node.add_address("lo", f"{ip6}/128")
    for i, node in enumerate(nodes, start=1):
        for j in range(1, opts.nodes + 1):
            # beside a CNI the router routes pod blocks (it learned them from the nodes' BIRDs)
            if j != i and opts.cni == "none":
                node.add_route(f"10.244.{j}.0/24", via=node_v4(j))
                node.add_route(f"fd00:244:{j}::/64", via=node_v6(j))

    step("object files")
    config_dir = opts.workdir / "config"
    write_objects(opts, config_dir)

    state = LabState(
        prefix=opts.prefix, workdir=str(opts.workdir), nodes=[f"n{i}" for i in
                                                              range(1, opts.nodes + 1)],
        namespaces=[ns.name for ns in topo], options={**asdict(opts), "workdir": str(opts.workdir)},
    )
    state.router = opts.router
    if opts.mode == "bgp" and opts.router == "bird":
        step("router (BIRD 2)")
        bird = start_bird(router, bird_config(opts), opts.workdir / "bird")
        state.bird_dir = str(bird.directory)
        state.pids["router-bird"] = bird.pid
    elif opts.mode == "bgp":
        step("router (FRR)")
        if opts.backends:  # weighted next hops spread connections only with an L4 hash
            router.sysctl("net.ipv4.fib_multipath_hash_policy", 1)
        frr = start_frr(router, router_config(opts), opts.workdir / "frr")
        state.frr_dir = str(frr.directory)
        state.pids["router-frr"] = frr.pid
    else:
        # L2: the pool is on the LAN; the router resolves VIPs by ARP/NDP on its LAN port
        router.add_route(POOL_V4, dev="eth0")
        router.add_route(POOL_V6, dev="eth0")
        for node in nodes:
            # VIPs are local routes on the nodes: only vipcast's responder may answer for them
            node.sysctl("net.ipv4.conf.all.arp_ignore", 1)

    if opts.cni == "bird":
        step("the CNI's BIRD on every node")
        if opts.coexist == "handoff":
            write_empty_handoff_files(config_dir, opts.nodes)
        configs = [node_cni_config(opts, i) for i in range(1, opts.nodes + 1)]
        start_node_birds(nodes, configs, opts.workdir, state.pids)

    step("backends")
    for i, node in enumerate(nodes, start=1):
        for k, _ in enumerate(backend_ips(i)):
            name = f"n{i}-b{k + 1}"
            proc = node.spawn(
                [_python(), "-m", "vipcast.lab.workload", "serve", "--host", "",
                 "--port", "8080", "--name", name, "--node", f"n{i}"],
                name=name,
            )
            state.pids[name] = proc.pid
            break  # one process per node serves every pod address of the node
    step("agents")
    for i, node in enumerate(nodes, start=1):
        proc = start_agent(topo, node, opts, f"n{i}")
        state.pids[f"n{i}-agent"] = proc.pid
    state.save()
    return state


LAB_MEMBERSHIP_KEY = "vipcast-lab-membership-key"


def start_agent(topo: Topology, node: Netns, opts: LabOptions, name: str) -> Any:
    return node.spawn(
        [*_vipcast(), "agent", "--config", str(opts.workdir / "config"), "--node", name,
         "--metrics-address", f"127.0.0.1:{AGENT_STATUS_PORT}",
         "--state-dir", str(opts.workdir / f"state-{name}"), "--poll-interval", "0.1",
         *([] if opts.liveness else ["--no-node-liveness"]),
         *(agent_gateway_args(str(opts.workdir), name) if opts.gateway else [])],
        name="agent",
        log_path=opts.workdir / f"{name}-agent.log",
        env={**os.environ, "VIPCAST_MEMBERSHIP_KEY": LAB_MEMBERSHIP_KEY},
    )


def options_of(state: LabState) -> LabOptions:
    return LabOptions(**{**state.options, "workdir": Path(state.workdir),
                         "backends": tuple(state.options.get("backends", ()))})


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
    routers = node_routers(f"{LAN_V4}.1", f"{LAN_V6}1", router_asn=ROUTER_ASN,
                           bfd=opts.bfd, hold_time=opts.hold_time)
    return cni_config(i, node_v4(i), node_v6(i), routers, asn=NODE_ASN,
                      vip_pools=lab_pools(opts), coexist=opts.coexist, workdir=opts.workdir)


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


def teardown(prefix: str, workdir: Path | None = None) -> list[str]:
    """Kill what the saved state names, by PID, then everything in our namespaces; delete them."""
    if workdir is not None:
        state = LabState.read(workdir)
        if state is not None:
            for pid in state.pids.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
            time.sleep(0.5)
            for pid in state.pids.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
    return delete_prefixed(prefix + "-")


def remove_workdir(workdir: Path) -> bool:
    """Delete a lab's work directory, but only one a lab wrote (it holds the state file)."""
    if not (workdir / STATE_FILE).is_file():
        return False
    shutil.rmtree(workdir, ignore_errors=True)
    return True
