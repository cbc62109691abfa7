"""Config commands: ``check-config``, ``plan`` (with ``--against``) and ``explain``.

They read object files (a file or a directory), allocate with the state file kept beside them
(so a second run gives the same IPs), and show the allocations and per-node announcements.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vipcast.alloc import AllocationResult
from vipcast.app.config_tool import allocate_with_state, load_config, old_state_file
from vipcast.app.document_writer import write_document
from vipcast.core.allocation import allocate_spec
from vipcast.core.desired import NodePlan
from vipcast.core.explain import Explanation, explain
from vipcast.core.notices import notices
from vipcast.core.plan import plan_all
from vipcast.core.plan_document import plan_diff, plan_json_pieces
from vipcast.core.weights import route_weight, weighted
from vipcast.obs.phases import PhaseTimer
from vipcast.spec import Issue, Spec, SpecError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

PathArg = Annotated[Path, typer.Argument(help="An object file or a directory of them.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the stable JSON document.")]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state", help="State file (default: beside PATH, .vipcast-state.json)."),
]
SaveOpt = Annotated[
    bool, typer.Option("--save/--no-save", help="Write the assignments to the state file.")
]


def _console(err: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout
    # wide when piped or captured, so messages are not folded into narrow columns
    width = None if stream.isatty() else 160
    return Console(stderr=err, soft_wrap=True, highlight=False, width=width)


def _issues_table(error: SpecError) -> Table:
    return _findings_table(f"{len(error.issues)} problem(s)", error.issues)


def _findings_table(title: str, issues: list[Issue]) -> Table:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in ("file", "object", "field", "message"):
        table.add_column(column, overflow="fold")
    for issue in issues:
        table.add_row(issue.file or "-", issue.obj, issue.field or "-", issue.message)
    return table


def _load(paths: list[Path]) -> Spec:
    # A one-shot command over one config: the cyclic collector would only trace the millions
    # of acyclic values a big config builds again and again (10,000 Services: ~40 % of
    # ``vipcast plan --json``); reference counting still frees them.
    gc.disable()
    try:
        return load_config(paths)
    except SpecError as error:
        _console().print(_issues_table(error))
        raise typer.Exit(1) from None


def _warn(warnings: list[str]) -> None:
    for text in warnings:
        _console(err=True).print(f"[yellow]warning:[/] {text}")


def _services_table(result: AllocationResult) -> Table:
    from rich.table import Table

    table = Table(title="Services")
    for column in ("service", "addresses", "pool", "reason", "details"):
        table.add_column(column, overflow="fold")
    for key, a in result.assignments.items():
        style = "" if a.ok else "red"
        table.add_row(
            key, ", ".join(a.ips) or "-", a.pool or "-", a.reason.value, a.message, style=style
        )
    for a in result.released:
        table.add_row(a.service, "-", "-", a.reason.value, "released " + ", ".join(a.previous))
    return table


def _nodes_table(plans: dict[str, NodePlan]) -> Table:
    from rich.table import Table

    table = Table(title="Announcements per node")
    for column in ("node", "kind", "what", "services"):
        table.add_column(column, overflow="fold")
    for name, plan in plans.items():
        rows = 0
        for r in plan.bgp:
            extra = f" localPref {r.local_pref}" if r.local_pref is not None else ""
            weight = route_weight(r)
            extra += f" weight {weight:g}" if weight is not None else ""
            table.add_row(
                name, "BGP", f"{r.prefix} -> {', '.join(r.peers)}{extra}", ", ".join(r.services)
            )
            rows += 1
        for o in plan.l2:
            role = "owner" if o.owner == name else f"standby (owner {o.owner})"
            where = ", ".join(o.interfaces) or "all interfaces"
            table.add_row(name, "L2", f"{o.ip} {role} on {where}", ", ".join(o.services))
            rows += 1
        if not rows:
            table.add_row(name, "-", "announces nothing", "-")
    return table


def _select_node(plans: dict[str, NodePlan], node: str | None) -> dict[str, NodePlan]:
    if node is None:
        return plans
    if node not in plans:
        known = ", ".join(plans) or "none"
        _console(err=True).print(f"[red]error:[/] no Node {node!r} in the input (known: {known})")
        raise typer.Exit(1)
    return {node: plans[node]}


def _emit_json(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=2, sort_keys=False))


def check_config(
    paths: Annotated[list[Path], typer.Argument(help="Object files or directories.")],
) -> None:
    """Validate object files; exit 1 with a table of every problem. Warnings (a Service that
    will be refused, a place where MetalLB reads the config differently) do not fail it."""
    spec = _load(paths)
    warnings = notices(spec)
    if warnings:
        _console(err=True).print(_findings_table(f"{len(warnings)} warning(s)", warnings))
    counts = {
        "pools": len(spec.pools),
        "peers": len(spec.peers),
        "BGP advertisements": len(spec.bgp_advertisements),
        "L2 advertisements": len(spec.l2_advertisements),
        "services": len(spec.services),
        "nodes": len(spec.nodes),
    }
    for what, n in (("gateways", len(spec.gateways)), ("HTTP routes", len(spec.http_routes)),
                    ("ingresses", len(spec.ingresses))):
        if n:
            counts[what] = n
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    _console().print(f"[green]valid[/]: {summary}")


def plan(
    path: PathArg,
    node: Annotated[str | None, typer.Option(help="Show only this node.")] = None,
    as_json: JsonOpt = False,
    against: Annotated[
        Path | None, typer.Option(help="Old config: show what changing from it would move.")
    ] = None,
    state: StateOpt = None,
    save: SaveOpt = True,
) -> None:
    """Allocations and per-node announcements (or, with --against, a dry-run diff)."""
    phases = PhaseTimer.from_env(os.environ, sys.stderr)
    spec = _load([path])
    phases.mark("read + validate YAML")
    if against is not None:
        _plan_against(path, spec, against, state, node, as_json)
        return
    result, warnings = allocate_with_state(path, spec, state, save=save)
    _warn(warnings)
    phases.mark("allocate")
    plans = _select_node(weighted(spec, plan_all(spec, result.current())), node)
    phases.mark("plan")
    if as_json:
        sys.stdout.flush()  # what was printed so far goes first
        written = write_document(plan_json_pieces(result, plans), sys.stdout.buffer)
        phases.mark("encode + write")
        phases.report(write_s=round(written, 3))
        return
    out = _console()
    out.print(_services_table(result))
    usage = ", ".join(f"{name} {used}/{total}" for name, (used, total) in result.pool_usage.items())
    out.print(f"pools in use: {usage or 'none'}")
    out.print(_nodes_table(plans))


def _plan_against(
    path: Path, spec: Spec, against: Path, state: Path | None, node: str | None, as_json: bool
) -> None:
    from rich.table import Table

    old_spec = _load([against])
    old_state = old_state_file(path, against, state)
    old, warnings = allocate_with_state(against, old_spec, old_state, save=False)
    _warn(warnings)
    new = allocate_spec(spec, old.current())
    old_plans = weighted(old_spec, plan_all(old_spec, old.current()))
    new_plans = weighted(spec, plan_all(spec, new.current()))
    if node is not None:
        _select_node(new_plans | old_plans, node)
        old_plans = {k: v for k, v in old_plans.items() if k == node}
        new_plans = {k: v for k, v in new_plans.items() if k == node}
    diff = plan_diff(old, old_plans, new, new_plans)
    if as_json:
        _emit_json(diff)
        return
    out = _console()
    if not diff["services"] and not diff["nodes"]:
        out.print("no change: no address moves, no route or L2 owner changes")
        return
    table = Table(title="Address changes")
    for column in ("service", "before", "after", "reason", "details"):
        table.add_column(column, overflow="fold")
    for key, c in diff["services"].items():
        before, after = ", ".join(c["before"]) or "-", ", ".join(c["after"]) or "-"
        table.add_row(key, before, after, c["reason"], c["message"])
    out.print(table)
    changes = Table(title="Announcement changes")
    for column in ("node", "change", "what"):
        changes.add_column(column, overflow="fold")
    labels = {
        "routesAdded": "+ route",
        "routesWithdrawn": "- route",
        "l2Gained": "+ L2 owner",
        "l2Lost": "- L2 owner",
    }
    for name, c in diff["nodes"].items():
        for field, label in labels.items():
            for what in c[field]:
                changes.add_row(name, label, what)
        for w in c.get("weightChanges", ()):
            changes.add_row(name, "~ weight", f"{w['prefix']}: {w['before']} -> {w['after']}")
    out.print(changes)


def _explanation_document(e: Explanation) -> dict[str, Any]:
    return {
        "service": e.service,
        "ips": list(e.ips),
        "pool": e.pool,
        "reason": e.reason,
        "message": e.message,
        "readyEndpoints": e.ready_endpoints,
        "notes": list(e.notes),
        "invalidated": [{"ip": ip, "why": why} for ip, why in e.invalidated],
        "nodes": {
            v.node: {"announces": v.announces, "how": list(v.how), "whyNot": list(v.why_not)}
            for v in e.nodes
        },
    }


def explain_cmd(
    path: PathArg,
    service: Annotated[str, typer.Argument(metavar="NS/NAME", help="The Service to explain.")],
    as_json: JsonOpt = False,
    state: StateOpt = None,
    save: SaveOpt = True,
) -> None:
    """Why a Service has these addresses (or none), and which nodes announce it and why."""
    from rich.table import Table

    spec = _load([path])
    key = service if "/" in service else f"default/{service}"
    result, warnings = allocate_with_state(path, spec, state, save=save)
    _warn(warnings)
    story = explain(spec, result, key)
    if story is None:
        known = ", ".join(s.key for s in spec.services) or "none"
        _console(err=True).print(f"[red]error:[/] no Service {key} in {path} (known: {known})")
        raise typer.Exit(1)
    if as_json:
        _emit_json(_explanation_document(story))
        return
    out = _console()
    out.print(f"[bold]Service {story.service}[/]")
    out.print(f"  addresses: {', '.join(story.ips) or 'none'} (pool {story.pool or '-'})")
    out.print(f"  reason: {story.reason}: {story.message}")
    out.print(f"  ready endpoints: {story.ready_endpoints}")
    for ip, why in story.invalidated:
        out.print(f"  gave up {ip}: {why}")
    for note in story.notes:
        out.print(f"  note: {note}")
    table = Table(title="Nodes")
    for column in ("node", "announces", "details"):
        table.add_column(column, overflow="fold")
    for v in story.nodes:
        details = "\n".join(v.how or v.why_not) or "-"
        table.add_row(v.node, "yes" if v.announces else "no", details)
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("check-config")(check_config)
    app.command("plan")(plan)
    app.command("explain")(explain_cmd)
