"""``vipcast agent`` (the standalone node agent) and ``vipcast status`` (BGP, BFD, L2)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vipcast.cli.address_options import host_port, host_ports, optional_host_port

if TYPE_CHECKING:
    from rich.table import Table

    from vipcast.app.agent_values import AgentOptions

DEFAULT_STATUS = "127.0.0.1:9473"

SUSPICION_MIN_HELP = (
    "The node membership's suspicion floor, seconds (0.05-30): a member that stops answering "
    "is declared dead no sooner than this after it was suspected (L2 failover, node "
    "liveness). Default 0.12 s up to 16 members, 0.2 s beyond (docs/membership.md, "
    "'The suspicion floor')"
)


def suspicion_min_option(value: float | None) -> float | None:
    """Typer callback of ``--suspicion-min``: the value, or a usage error naming the option."""
    if value is None:
        return None
    from vipcast.proto.membership import suspicion_min_problem

    problem = suspicion_min_problem(value)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="'--suspicion-min'")
    return value


def agent(
    config: Annotated[
        list[Path], typer.Option("--config", "-c", help="Object file or directory (repeatable)")
    ],
    node: Annotated[str, typer.Option("--node", "-n", help="This node's name")],
    metrics_address: Annotated[
        str, typer.Option(help="HOST:PORT of the local /metrics and /status endpoint")
    ] = DEFAULT_STATUS,
    listen: Annotated[
        list[str] | None,
        typer.Option(help="Accept BGP connections on HOST:PORT (repeatable; e.g. 0.0.0.0:179)"),
    ] = None,
    router_id: Annotated[str | None, typer.Option(help="BGP identifier (IPv4 dotted quad)")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Directory for the graceful-restart marker")
    ] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between file checks")] = 1.0,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
    log_json: Annotated[bool, typer.Option(help="Log one JSON object per line")] = False,
    dataplane: Annotated[
        bool, typer.Option(help="Program nftables/local VIP routes and verify before announcing")
    ] = True,
    membership_key_file: Annotated[
        Path | None,
        typer.Option(help="Shared key of the node membership: L2 owners, and node liveness "
                     "(or $VIPCAST_MEMBERSHIP_KEY)"),
    ] = None,
    node_liveness: Annotated[
        bool, typer.Option(help="Leave a dead node's backends out of the Cluster-policy maps as "
                           "soon as the node membership declares it dead (docs/membership.md)")
    ] = True,
    suspicion_min: Annotated[
        float | None, typer.Option(callback=suspicion_min_option, help=SUSPICION_MIN_HELP)
    ] = None,
    gateway_workdir: Annotated[
        Path | None,
        typer.Option(help="Run the L7 gateway (Envoy fed over xDS); its files go here"),
    ] = None,
    gateway_admin_port: Annotated[
        int, typer.Option(help="Envoy's admin port on 127.0.0.1")
    ] = 19000,
    gateway_concurrency: Annotated[
        int | None, typer.Option(min=1, help="Envoy worker threads (default: one per CPU this "
                                 "process may use, capped by a cgroup CPU limit)")
    ] = None,
    drain_grace: Annotated[
        float,
        typer.Option(help="On a drain, seconds announced with GRACEFUL_SHUTDOWN before the "
                     "withdrawal (docs/drain.md)"),
    ] = 30.0,
    drain_quiet: Annotated[
        float,
        typer.Option(help="On a drain, withdraw before the grace once no new connection "
                     "reached this node's VIPs for this many seconds (an nftables counter: "
                     "the routers moved away); 0: the grace alone (docs/drain.md)"),
    ] = 5.0,
    drain_label: Annotated[
        list[str] | None,
        typer.Option(help="A Node label that drains the node (repeat; replaces the defaults, "
                     "docs/drain.md)"),
    ] = None,
    weight_interval: Annotated[
        float,
        typer.Option(help="Seconds between two link bandwidth (weightedECMP) changes of one "
                     "route; changes in between are coalesced, the last one wins; 0: every "
                     "change at once (docs/weighted-ecmp.md)"),
    ] = 5.0,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Keep validated object files here (by content) so a restart need "
                     "not parse them again; a directory only this user may write "
                     "(docs/pipeline.md)"),
    ] = None,
) -> None:
    """Run this node's agent: BGP sessions for the peers that select it, reload on change."""
    from vipcast.app.agent_command import run_agent_command
    from vipcast.app.start_early import StartArgs
    from vipcast.obs.logs import setup_logging

    status_address = optional_host_port(metrics_address, "--metrics-address")
    listen_addresses = host_ports(listen, "--listen")
    setup_logging(log_level, as_json=log_json)

    def options() -> AgentOptions:
        # imports the whole agent: called once a start from the start cache has its first
        # routes out (vipcast.app.agent_command)
        from vipcast.app.agent import AgentOptions
        from vipcast.core.drain import DEFAULT_DRAIN_LABELS

        return AgentOptions(
            config_paths=tuple(config),
            node=node,
            metrics_address=status_address,
            listen=listen_addresses,
            router_id=router_id,
            state_dir=state_dir,
            poll_interval=poll_interval,
            drain_grace=drain_grace,
            drain_quiet=drain_quiet,
            drain_labels=(tuple(drain_label) if drain_label is not None
                          else DEFAULT_DRAIN_LABELS),
            weight_interval=weight_interval,
            node_liveness=node_liveness,
            suspicion_min=suspicion_min,
            cache_dir=cache_dir,
            load_in_thread=True,  # files only: reloads parse and plan off the event loop
        )

    start = (StartArgs(paths=tuple(config), node=node, cache_dir=cache_dir,
                       router_id=router_id, state_dir=state_dir, listen=listen_addresses)
             if cache_dir is not None else None)
    raise typer.Exit(run_agent_command(
        options, start=start, config_paths=tuple(config), dataplane_enabled=dataplane,
        membership_key_file=membership_key_file, gateway_workdir=gateway_workdir,
        gateway_admin_port=gateway_admin_port, gateway_concurrency=gateway_concurrency))


def fetch_status(address: tuple[str, int], timeout: float = 5.0) -> dict[str, Any]:
    host, port = address
    url_host = f"[{host}]" if ":" in host else host
    with urllib.request.urlopen(f"http://{url_host}:{port}/status", timeout=timeout) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def sessions_table(document: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=f"BGP sessions of {document.get('node', '?')}")
    for column in ("peer", "address", "AS", "state", "uptime", "sent", "received", "last error"):
        table.add_column(column, overflow="fold")
    for peer in document.get("peers", []):
        state = str(peer["state"])
        style = "green" if state == "Established" else "yellow"
        table.add_row(
            str(peer["name"]),
            f"{peer['address']}:{peer['port']}",
            f"{peer['local_asn']}→{peer['peer_asn']}",
            f"[{style}]{state}[/{style}]",
            _uptime(peer.get("uptime")),
            str(peer["prefixes_advertised"]),
            str(peer["prefixes_received"]),
            str(peer.get("last_error") or "-"),
        )
    return table


def _ms(value: Any) -> str:
    return "-" if value in (None, 0, 0.0) else f"{float(value):g}"


def bfd_table(document: dict[str, Any]) -> Table | None:
    """The BFD sessions (one per BGPPeer with a bfdProfile); None when there are none."""
    from rich.table import Table

    sessions: dict[str, Any] = document.get("bfd") or {}
    if not sessions:
        return None
    table = Table(title=f"BFD sessions of {document.get('node', '?')}")
    for column in ("peer", "address", "state", "remote", "TX ms", "RX ms", "mult",
                   "detect ms", "last diag", "uptime", "BGP binding"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for name, s in sorted(sessions.items()):
        state = str(s["state"])
        style = "green" if state == "UP" else "red" if state == "DOWN" else "yellow"
        remote_mult = s.get("remote_detect_mult") or "-"
        table.add_row(
            name,
            str(s["peer"]) + (" (multihop)" if s.get("multihop") else ""),
            f"[{style}]{state}[/{style}]",
            str(s.get("remote_state", "-")),
            _ms(s.get("tx_interval_ms")),
            _ms(s.get("rx_interval_ms")),
            f"{s.get('detect_mult', '-')}/{remote_mult}",
            _ms(s.get("detection_time_ms")),
            str(s.get("last_diag") or s.get("local_diag") or "-"),
            _uptime(s.get("uptime_s")),
            str(s.get("binding") or "-"),
        )
    return table


def l2_tables(document: dict[str, Any]) -> list[Table]:
    """Each L2 VIP's owner and this node's duties, then the membership view."""
    from rich.table import Table

    l2: dict[str, Any] | None = document.get("l2")
    if not l2:
        return []
    node = str(l2.get("node", document.get("node", "?")))
    vips = Table(title=f"L2 VIPs (seen from {node})")
    for column in ("VIP", "owner", "answered here", "servable here", "interfaces", "candidates"):
        vips.add_column(column, overflow="fold")
    for vip in l2.get("vips", []):
        owner = vip.get("owner") or "[red]none[/red]"
        here = "[green]yes[/green]" if vip.get("answering_here") else "no"
        vips.add_row(
            str(vip["ip"]),
            str(owner),
            here,
            "yes" if vip.get("servable_here") else "no",
            ",".join(vip.get("interfaces", [])) or "-",
            ",".join(vip.get("candidates", [])),
        )
    view: dict[str, Any] = l2.get("membership") or {}
    peers: dict[str, Any] = view.get("peers") or {}
    alive = list(view.get("alive", []))
    quorum = "[green]quorum[/green]" if view.get("quorum") else "[red]NO QUORUM[/red]"
    members = Table(
        title=f"L2 membership of {node}: {len(alive)}/{len(peers) + 1} alive, {quorum}"
    )
    for column in ("member", "state", "last heard", "serving"):
        members.add_column(column, overflow="fold")
    members.add_row(
        f"{node} (self)", "[green]alive[/green]", "-", ",".join(view.get("serving", [])) or "-"
    )
    for name, peer in sorted(peers.items()):
        state = str(peer.get("state"))
        style = "green" if state == "alive" else "red" if state == "dead" else "yellow"
        heard = peer.get("last_heard_s")
        members.add_row(
            name,
            f"[{style}]{state}[/{style}]",
            "never" if heard is None else f"{float(heard):.2f}s ago",
            ",".join(peer.get("serving", [])) or "-",
        )
    errors: dict[str, str] = l2.get("interface_errors") or {}
    if errors:
        members.caption = "; ".join(f"{ifname}: {err}" for ifname, err in errors.items())
    return [vips, members]


def routes_table(document: dict[str, Any]) -> Table | None:
    """The announced routes with their weighted-ECMP weight (only when some route has one)."""
    from rich.table import Table

    routes = document.get("routes") or []
    if not any(r.get("weight") is not None for r in routes):
        return None
    table = Table(title="Weighted routes (RFC 10005 link bandwidth)")
    for column in ("prefix", "weight", "peers", "services"):
        table.add_column(column, overflow="fold")
    for r in routes:
        weight = r.get("weight")
        table.add_row(r["prefix"], "-" if weight is None else f"{weight:g}",
                      ",".join(r.get("peers", [])), ",".join(r.get("services", [])))
    return table


def handoff_table(document: dict[str, Any]) -> Table | None:
    """What this node hands to a CNI's BIRD (docs/cni.md, HandOff); None when nothing."""
    from rich.table import Table

    rows = document.get("handoff") or []
    if not rows:
        return None
    table = Table(title=f"Hand-off to the CNI of {document.get('node', '?')}")
    for column in ("target", "file", "routes loaded", "reload pending", "reloads", "failures"):
        table.add_column(column, overflow="fold")
    for r in rows:
        pending = "[yellow]yes[/yellow]" if r.get("pending") else "no"
        table.add_row(str(r.get("target")), str(r.get("path")), str(r.get("loaded_routes")),
                      pending, str(r.get("reloads")), str(r.get("failures")))
    return table


def status_tables(document: dict[str, Any]) -> list[Table]:
    """Every table ``vipcast status`` prints, in order."""
    tables = [sessions_table(document)]
    handoff = handoff_table(document)
    if handoff is not None:
        tables.append(handoff)
    weights = routes_table(document)
    if weights is not None:
        tables.append(weights)
    bfd = bfd_table(document)
    if bfd is not None:
        tables.append(bfd)
    return tables + l2_tables(document)


def status(
    address: Annotated[
        str, typer.Option("--address", "-a", help="The agent's --metrics-address")
    ] = DEFAULT_STATUS,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON document")] = False,
) -> None:
    """Show a running agent's BGP sessions, BFD sessions and L2 owners and membership."""
    from rich.console import Console

    where = host_port(address, "--address")
    try:
        document = fetch_status(where)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        Console(stderr=True).print(f"[red]cannot reach the agent at {address}: {exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    for table in status_tables(document):
        console.print(table)
    drain = document.get("drain")
    if drain and drain != "serving":
        console.print(f"[yellow]drain: {drain}[/yellow]")
    errors = document.get("config", {}).get("errors") or []
    if errors:
        console.print(f"[red]the last configuration change was refused ({len(errors)} issues)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("agent")(agent)
    app.command("status")(status)
