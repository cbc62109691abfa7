"""``vipcast dataplane ...``: render, apply, show and clean up the node's nftables table."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from vipcast.core.desired import NodePlan
from vipcast.dataplane.nft_render import down_set, render
from vipcast.dataplane.planfile import PlanFileError, plan_from_data
from vipcast.spec.addresses import parse_host_port

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
    if plan_file is not None:
        try:
            return plan_from_data(yaml.safe_load(plan_file.read_text()))
        except (OSError, yaml.YAMLError, PlanFileError) as exc:
            _console().print(f"[red]cannot read plan {plan_file}: {exc}")
            raise typer.Exit(2) from exc
    if config and node:
        from vipcast.app.agent import default_planner
        from vipcast.sources.files import load_paths
        from vipcast.spec.errors import SpecError

        try:
            spec = load_paths(config)
        except SpecError as exc:
            _console().print(f"[red]invalid configuration:\n{exc}")
            raise typer.Exit(2) from exc
        return default_planner(spec, node)
    _console().print("[red]give a PLANFILE, or --config FILES with --node NAME")
    raise typer.Exit(2)


def _down(items: list[str] | None) -> list[tuple[str, int]]:
    out = []
    for item in items or ():
        try:
            out.append(parse_host_port(item))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--down") from None
    return out


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
    rendered = render(_plan(plan_file, config, node).nat, down_set(_down(down)))
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
    from vipcast.dataplane.nft import NftTable  # netlink and libnftables: only here
    from vipcast.dataplane.routes import LocalVips

    plan = _plan(plan_file, config, node)
    result = NftTable(netns).apply(render(plan.nat))
    if not result.ok:
        _console().print(f"[red]apply failed, previous table kept:\n{result.error}")
        raise typer.Exit(1)
    state = "applied" if result.changed else "unchanged"
    typer.echo(f"nftables: {state} ({result.diff.summary()}, {result.seconds * 1000:.1f} ms)")
    if routes:
        change = LocalVips(netns).sync(plan.local_vips)
        typer.echo(f"local VIPs: +{list(change.added)} -{list(change.removed)}")


@dataplane.command("show")
def show_cmd(netns: NetnsOpt = None) -> None:
    """Print the installed table (canonical JSON) and our local VIP routes."""
    from vipcast.dataplane.nft import NftTable  # netlink and libnftables: only here
    from vipcast.dataplane.routes import LocalVips

    objects = NftTable(netns).read()
    doc: dict[str, Any] = {
        "table": None if objects is None else list(objects),
        "local_vips": sorted(LocalVips(netns).current()),
    }
    typer.echo(json.dumps(doc, indent=2))


@dataplane.command("cleanup")
def cleanup_cmd(netns: NetnsOpt = None) -> None:
    """Remove table inet vipcast and every local VIP route vipcast installed."""
    from vipcast.dataplane.nft import NftTable  # netlink and libnftables: only here
    from vipcast.dataplane.routes import LocalVips

    removed = NftTable(netns).cleanup()
    change = LocalVips(netns).clear()
    typer.echo(
        f"table inet vipcast: {'removed' if removed else 'absent'}; "
        f"local VIP routes removed: {len(change.removed)}"
    )


def register(app: typer.Typer) -> None:
    """Add ``vipcast dataplane ...`` to ``app``."""
    app.add_typer(dataplane, name="dataplane")
