"""``vipcast handoff``: what the HandOff mode (docs/cni.md) hands the CNI, from object files.

The same pure functions the agent, the speaker and the controller use
(:mod:`vipcast.core.handoff`), on the plan of the files (allocation with the state file beside
them, every node's duties; no health checks: the running agent hands off only servable routes).
Useful to write a BIRD include file before BIRD first starts, and to review what a change would
hand to Calico or FRR-K8s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from vipcast.app.config_tool import allocate_with_state
from vipcast.cli.config_cmds import StateOpt, _console, _load, _select_node, _warn
from vipcast.core.handoff import (
    bird_include,
    calico_hand_off,
    frr_configuration,
    hand_off_targets,
    handed_routes,
)
from vipcast.core.plan import plan_all


def handoff(
    path: Annotated[Path, typer.Argument(help="An object file or a directory of them.")],
    output: Annotated[str, typer.Option(
        "--format", help="bird: the BIRD include file of --node; frr: FRRConfiguration "
                         "objects; calico: the BGPConfiguration patches")] = "bird",
    node: Annotated[str | None, typer.Option(help="Only this node (required for bird).")] = None,
    state: StateOpt = None,
) -> None:
    """Print what the HandOff mode gives the CNI (docs/cni.md)."""
    if output not in ("bird", "frr", "calico"):
        _console(err=True).print("[red]error:[/] --format is bird, frr or calico")
        raise typer.Exit(2)
    if output == "bird" and node is None:
        _console(err=True).print("[red]error:[/] --format bird needs --node (one file per node)")
        raise typer.Exit(2)
    spec = _load([path])
    result, warnings = allocate_with_state(path, spec, state, save=False)
    _warn(warnings)
    if output == "calico":
        docs = [{"apiVersion": "crd.projectcalico.org/v1", "kind": "BGPConfiguration",
                 "metadata": {"name": name}, "spec": {"serviceLoadBalancerIPs": entries}}
                for name, entries in calico_hand_off(spec, result.current()).items()]
        _print_docs(docs, "no CNISpeaker hands off to Calico")
        return
    plans = _select_node(plan_all(spec, result.current()), node)
    if output == "bird":
        texts = [bird_include(name, t, handed_routes(plan, t))
                 for name, plan in plans.items()
                 for t in hand_off_targets(spec, name) if t.kind == "birdInclude"]
        if not texts:
            _console(err=True).print(f"[red]error:[/] node {node} hands nothing to a BIRD "
                                     "(no HandOff peer of a CNISpeaker with birdInclude)")
            raise typer.Exit(1)
        typer.echo("".join(texts), nl=False)
        return
    docs = [frr_configuration(name, t, handed_routes(plan, t))
            for name, plan in plans.items()
            for t in hand_off_targets(spec, name) if t.kind == "frrK8s"]
    _print_docs(docs, "no CNISpeaker hands off to FRR-K8s on these nodes")


def _print_docs(docs: list[dict[str, Any]], none: str) -> None:
    if not docs:
        _console(err=True).print(f"[yellow]warning:[/] {none}")
        return
    plain = json.loads(json.dumps(docs))
    typer.echo(yaml.safe_dump_all(plain, sort_keys=False), nl=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("handoff")(handoff)
