"""``vipcast drain NODE`` / ``vipcast undrain NODE``: the standalone drain trigger.

They set or remove the Node annotation ``vipcast.io/drain: "true"`` in the object files; every
agent reading the files sees it and the node's agent runs the drain sequence
(docs/drain.md). ``vipcast status`` shows the node's drain state.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vipcast.core.drain import DRAIN_ANNOTATION
from vipcast.sources.node_annotations import NodeNotFound, set_node_annotation

if TYPE_CHECKING:
    pass

ConfigOption = Annotated[
    list[Path], typer.Option("--config", "-c", help="Object file or directory (repeatable)")
]


def _edit(config: list[Path], node: str, value: str | None, verb: str) -> None:
    from rich.console import Console

    try:
        path = set_node_annotation(config, node, DRAIN_ANNOTATION, value)
    except NodeNotFound as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    Console().print(f"{verb} {node}: {DRAIN_ANNOTATION} "
                    f"{'set' if value else 'removed'} in {path}")


def drain(node: Annotated[str, typer.Argument(help="The Node to drain")],
          config: ConfigOption) -> None:
    """Drain NODE: announce with GRACEFUL_SHUTDOWN (65535:0), then withdraw after the grace."""
    _edit(config, node, "true", "draining")


def undrain(node: Annotated[str, typer.Argument(help="The Node to bring back")],
            config: ConfigOption) -> None:
    """Undrain NODE: its agent re-announces once local health is verified."""
    _edit(config, node, None, "undraining")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("drain")(drain)
    app.command("undrain")(undrain)
