"""The lab: a router, N vipcast nodes, backends and a client, all in network namespaces.

Topology (every name carries the run's prefix, e.g. ``vc-lab-router``)::

    client (203.0.113.10) ── router (FRR or BIRD 2, AS 64512) ── lan (bridge br0) ── n1 … nN
                                                     198.18.0.1            198.18.0.1<i>
                                                     fd00:18::1            fd00:18::1<i>

Each node runs ``vipcast agent`` (AS 64513, eBGP to the router over IPv4 and IPv6) and two
HTTP backends on its pod subnet (10.244.<i>.10-11, fd00:244:<i>::10-11). The object files the
agents read are written to ``<workdir>/config``; the router spreads VIP traffic over the nodes
by ECMP with an L4 hash. Nothing is added to the root namespace.

This module builds it (namespaces, links, daemons, backends, agents) and tears it down; what a
lab is lives in ``options``, the agents' object files in ``objects``, the router and CNI
daemons in ``routers`` (all in this package). What the CLI, the demos, the tests and the
benches use of those is importable from here too (``__all__``): this is the lab's one face
for them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vipcast.app.lab.cni import start_node_birds, write_empty_handoff_files
from vipcast.app.lab.gateway import agent_gateway_args
from vipcast.app.lab.objects import lab_objects, lab_pools, write_objects
from vipcast.app.lab.options import (
    AGENT_STATUS_PORT,
    CLIENT_V4,
    CLIENT_V6,
    DEFAULT_PREFIX,
    LAN_V4,
    POOL_V4,
    POOL_V6,
    ROUTER_V4,
    ROUTER_V6,
    STATE_FILE,
    LabOptions,
    LabState,
    Step,
    backend_ips,
    local_backends,
    node_v4,
    node_v6,
    options_of,
    vipcast_v4,
    vipcast_v6,
)
from vipcast.app.lab.routers import (
    arm_late_bfd,
    bird_config,
    cni_bird_of,
    frr_of,
    late_bfd_neighbors,
    node_cni_config,
    restart_cni_bird,
    router_config,
    router_of,
    start_router_frr,
    wait_sessions,
)
from vipcast.lab.bird import start_bird
from vipcast.lab.netns import Netns, Topology, delete_prefixed

#: the lab's names the CLI, the demos, the tests and the benches import from here
__all__ = [
    "AGENT_STATUS_PORT", "DEFAULT_PREFIX", "LAN_V4", "LabOptions", "LabState", "backend_ips",
    "build", "cni_bird_of", "envoy_found", "frr_of", "lab_objects", "lab_pools",
    "node_cni_config", "node_v4", "node_v6", "options_of", "present_namespaces",
    "remove_workdir", "restart_cni_bird", "router_config", "router_of", "router_routes",
    "start_agent", "teardown", "vipcast_argv", "vipcast_v4", "vipcast_v6", "wait_serving",
    "wait_sessions", "write_objects",
]


def _python() -> str:
    return sys.executable


def vipcast_argv() -> list[str]:
    """The command line that runs ``vipcast`` from this interpreter (and its PYTHONPATH)."""
    return [_python(), "-m", "vipcast.cli.main"]


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
    router.add_address("eth0", f"{ROUTER_V4}/24")
    router.add_address("eth0", f"{ROUTER_V6}/64")
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
        node.add_default_route(ROUTER_V4)
        node.add_default_route(ROUTER_V6)
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
        frr = start_router_frr(router, opts, opts.workdir / "frr")
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
        if opts.mode == "bgp" and opts.router != "bird" and late_bfd_neighbors(opts):
            step("the router's BFD toward each CNI BIRD, once its session is Established")
            arm_late_bfd(frr_of(topo, state), opts)

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
        [*vipcast_argv(), "agent", "--config", str(opts.workdir / "config"), "--node", name,
         "--metrics-address", f"127.0.0.1:{AGENT_STATUS_PORT}",
         "--state-dir", str(opts.workdir / f"state-{name}"), "--poll-interval", "0.1",
         *([] if opts.liveness else ["--no-node-liveness"]),
         *(agent_gateway_args(str(opts.workdir), name) if opts.gateway else [])],
        name="agent",
        log_path=opts.workdir / f"{name}-agent.log",
        env={**os.environ, "VIPCAST_MEMBERSHIP_KEY": LAB_MEMBERSHIP_KEY},
    )


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


def wait_serving(topo: Topology, state: LabState, opts: LabOptions,
                 step: Callable[[str], None]) -> None:
    """Wait until a lab just built serves (``step`` says what it waits for): the router's
    sessions with every node (BGP), and with ``--cni bird`` what the coexistence mode needs:
    vipcast's own sessions with the router (separate), every agent's hand-off file (handoff),
    or the agents' sessions with their nodes' BIRD (daemon)."""
    from vipcast.app.lab.cni import handoff_path
    from vipcast.lab.cni_bird import wait_vipcast_sessions
    from vipcast.lab.netns import wait_until

    nodes = opts.nodes
    if opts.mode == "bgp":
        step("waiting for BGP sessions")
        wait_sessions(router_of(topo, state), nodes, timeout=60)
    if opts.cni == "bird" and opts.coexist == "separate":
        step("waiting for vipcast's own sessions with the router")
        router_of(topo, state).wait_established(
            *(a for i in range(1, nodes + 1) for a in (vipcast_v4(i), vipcast_v6(i))),
            timeout=60)
    elif opts.cni == "bird" and opts.coexist == "handoff":
        step("waiting for every agent to hand its routes to its node's BIRD")
        wait_until(lambda: all(" route " in handoff_path(opts.workdir, i).read_text()
                               for i in range(1, nodes + 1)),
                   timeout=120, what="every node's hand-off file")
    elif opts.cni == "bird" and opts.coexist == "daemon":
        step("waiting for the agents' sessions with their nodes' BIRD")
        for node in state.nodes:
            wait_vipcast_sessions(cni_bird_of(topo, state, node), timeout=60)


def present_namespaces() -> set[str]:
    """The network namespaces that exist now."""
    from vipcast.lab.netns import list_netns

    return set(list_netns())


def router_routes(state: LabState) -> list[tuple[str, str]]:
    """The lab router's BGP routes, per family: ``("-4", text)``, ``("-6", text)``."""
    from vipcast.lab.netns import run_command

    proto = "bird" if state.router == "bird" else "bgp"
    return [(fam, run_command(["ip", fam, "-n", f"{state.prefix}-router", "route", "show",
                               "proto", proto], check=False).stdout)
            for fam in ("-4", "-6")]


def envoy_found() -> bool:
    """Whether an Envoy binary is there for the lab's L7 part."""
    from vipcast.runtime.envoy import find_envoy

    try:
        find_envoy()
    except FileNotFoundError:
        return False
    return True
