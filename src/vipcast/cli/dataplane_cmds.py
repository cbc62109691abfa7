"""``vipcast dataplane ...``: render, apply, show and clean up the node's nftables table."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vipcast.app import dataplane_tool
from vipcast.cli.address_options import host_ports
from vipcast.core.desired import NodePlan

if TYPE_CHECKING:
    from rich.console import Console

dataplane = typer.Typer(help="The node data plane: nftables table inet vipcast and VIP routes.",
                        no_args_is_help=True)


@functools.cache
def _console() -> Console:
    """The command's console, made when first printed to (rich is not imported before)."""
    from rich.console import Console

    return Console(stderr=True)


PlanArg = Annotated[
    Path | None, typer.Argument(help="A NodePlan file (YAML/JSON: node, nat, local_vips).")
]
ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option("--config", "-c", help="vipcast object files; plan computed for --node."),
]
NodeOpt = Annotated[str | None, typer.Option("--node", help="Node to plan for (with --config).")]
NetnsOpt = Annotated[
    str | None, typer.Option("--netns", help="Act inside this named network namespace.")
]


def _plan(plan_file: Path | None, config: list[Path] | None, node: str | None) -> NodePlan:
    try:
        return dataplane_tool.node_plan(plan_file, config, node)
    except dataplane_tool.PlanInputError as exc:
        _console().print(f"[red]{exc}")
        raise typer.Exit(2) from exc


def _down(items: list[str] | None) -> list[tuple[str, int]]:
    return list(host_ports(items, "--down", default_host=None))


@dataplane.command("render")
def render_cmd(
    plan_file: PlanArg = None,
    config: ConfigOpt = None,
    node: NodeOpt = None,
    down: Annotated[
        list[str] | None, typer.Option("--down", help="Backend IP:PORT to treat as unhealthy.")
    ] = None,
) -> None:
    """Print the libnftables JSON transaction for a node's plan (nothing is applied)."""
    rendered = dataplane_tool.render_plan(_plan(plan_file, config, node), _down(down))
    for skipped in rendered.skipped:
        _console().print(f"[yellow]skipped {skipped.service}: {skipped.reason}")
    typer.echo(json.dumps(rendered.document(), indent=2))


@dataplane.command("apply")
def apply_cmd(
    plan_file: PlanArg = None,
    config: ConfigOpt = None,
    node: NodeOpt = None,
    netns: NetnsOpt = None,
    routes: Annotated[bool, typer.Option(help="Also sync the local VIP routes.")] = True,
) -> None:
    """Apply a node's plan once (no health checks); a no-op when the table already matches."""
    applied = dataplane_tool.apply_once(_plan(plan_file, config, node), netns, routes=routes)
    result = applied.nft
    if not result.ok:
        _console().print(f"[red]apply failed, previous table kept:\n{result.error}")
        raise typer.Exit(1)
    state = "applied" if result.changed else "unchanged"
    typer.echo(f"nftables: {state} ({result.diff.summary()}, {result.seconds * 1000:.1f} ms)")
    if applied.vips is not None:
        typer.echo(f"local VIPs: +{list(applied.vips.added)} -{list(applied.vips.removed)}")


@dataplane.command("show")
def show_cmd(netns: NetnsOpt = None) -> None:
    """Print the installed table (canonical JSON) and our local VIP routes."""
    typer.echo(json.dumps(dataplane_tool.installed(netns), indent=2))


@dataplane.command("cleanup")
def cleanup_cmd(netns: NetnsOpt = None) -> None:
    """Remove table inet vipcast and every local VIP route vipcast installed."""
    removed, routes = dataplane_tool.clean_up(netns)
    typer.echo(
        f"table inet vipcast: {'removed' if removed else 'absent'}; "
        f"local VIP routes removed: {routes}"
    )


def register(app: typer.Typer) -> None:
    """Add ``vipcast dataplane ...`` to ``app``."""
    app.add_typer(dataplane, name="dataplane")
