"""``vipcast gateway``: run the node's L7 gateway (Envoy fed over xDS) from object files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vipcast.cli.address_options import optional_host_port


def gateway(
    config: Annotated[
        list[Path], typer.Option("--config", "-c", help="Object file or directory (repeatable)")
    ],
    node: Annotated[str, typer.Option("--node", "-n", help="This node's name")],
    workdir: Annotated[Path, typer.Option(help="Envoy's bootstrap, xDS socket and logs")],
    admin_port: Annotated[int, typer.Option(help="Envoy admin port on 127.0.0.1")] = 19000,
    concurrency: Annotated[int | None, typer.Option(
        help="Envoy worker threads (default: one per CPU this process may use: its CPU "
             "affinity, capped by a cgroup CPU limit)", min=1)] = None,
    xff_trusted_hops: Annotated[
        int, typer.Option(help="X-Forwarded-For entries from clients to trust")
    ] = 0,
    proxy_protocol: Annotated[
        bool, typer.Option(help="Accept a PROXY protocol header (from an LB tier in front)")
    ] = False,
    ingress_address: Annotated[
        list[str] | None, typer.Option(help="Address for Ingresses of class vipcast")
    ] = None,
    metrics_address: Annotated[
        str | None, typer.Option(help="HOST:PORT of /metrics and /status")
    ] = None,
    status_file: Annotated[Path | None, typer.Option(help="Write the status JSON here")] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between file checks")] = 0.5,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
) -> None:
    """Serve this node's Gateways, HTTPRoutes and Ingresses with Envoy (ADS on a unix socket)."""
    from vipcast.app.gateway_tool import run_from_files

    status_address = optional_host_port(metrics_address, "--metrics-address")
    raise typer.Exit(run_from_files(
        config, node, workdir, admin_port=admin_port, concurrency=concurrency,
        xff_trusted_hops=xff_trusted_hops, proxy_protocol=proxy_protocol,
        ingress_addresses=tuple(ingress_address or ()), metrics_address=status_address,
        status_file=status_file, poll_interval=poll_interval, log_level=log_level))


def explain_route(
    path: Annotated[Path, typer.Argument(help="Object file or directory")],
    route: Annotated[str, typer.Argument(metavar="NS/NAME", help="The HTTPRoute to explain")],
    node: Annotated[str, typer.Option(help="The node whose proxy model to look at")] = "node",
) -> None:
    """Which Gateway listeners took an HTTPRoute (and where its rules rank), or why none did."""
    from rich.console import Console

    from vipcast.app.gateway_tool import route_story
    from vipcast.spec import SpecError

    out = Console()
    key = route if "/" in route else f"default/{route}"
    try:
        story, routes = route_story(path, key, node)
    except SpecError as err:
        for issue in err.issues:
            out.print(f"[red]{issue}[/]")
        raise typer.Exit(1) from None
    if story is None:
        known = ", ".join(routes) or "none"
        out.print(f"[red]error:[/] HTTPRoute {key} has no Gateway of vipcast's as parent "
                  f"(routes: {known})")
        raise typer.Exit(1)
    out.print(f"[bold]HTTPRoute {story.key}[/]")
    for parent in story.parents:
        ref = parent.parent
        where = f"{ref.namespace}/{ref.name}" + (f" {ref.section_name}" if ref.section_name
                                                 else "")
        out.print(f"  parent Gateway {where}:")
        for c in parent.conditions:
            style = "green" if c.status == "True" else "red"
            out.print(f"    [{style}]{c.type}={c.status}[/] {c.reason}"
                      + (f": {c.message}" if c.message else ""))
    if not story.placements:
        out.print("  served by no listener")
    for p in story.placements:
        out.print(f"  {p.entry}: {p.route_config} host {', '.join(p.domains)}, "
                  f"rank {p.position} of {p.of}")


def register(app: typer.Typer) -> None:
    app.command()(gateway)
    app.command("explain-route")(explain_route)
