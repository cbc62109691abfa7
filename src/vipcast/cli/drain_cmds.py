"""``vipcast drain NODE`` / ``vipcast undrain NODE``: the standalone drain trigger.

They set or remove the Node annotation ``vipcast.io/drain: "true"`` in the object files; every
agent reading the files sees it and the node's agent runs the drain sequence
(docs/drain.md). ``vipcast status`` shows the node's drain state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vipcast.app.drain_tool import NodeNotFound, mark_drain
from vipcast.core.drain import DRAIN_ANNOTATION

ConfigOption = Annotated[
    list[Path], typer.Option("--config", "-c", help="Object file or directory (repeatable)")
]


def _edit(config: list[Path], node: str, drain: bool, verb: str) -> None:
    from rich.console import Console

    try:
        path = mark_drain(config, node, drain)
    except NodeNotFound as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    Console().print(f"{verb} {node}: {DRAIN_ANNOTATION} "
                    f"{'set' if drain else 'removed'} in {path}")


def drain(node: Annotated[str, typer.Argument(help="The Node to drain")],
          config: ConfigOption) -> None:
    """Drain NODE: announce with GRACEFUL_SHUTDOWN (65535:0), then withdraw after the grace."""
    _edit(config, node, True, "draining")


def undrain(node: Annotated[str, typer.Argument(help="The Node to bring back")],
            config: ConfigOption) -> None:
    """Undrain NODE: its agent re-announces once local health is verified."""
    _edit(config, node, False, "undraining")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("drain")(drain)
    app.command("undrain")(undrain)
