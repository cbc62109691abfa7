"""``vipcast agent`` (the standalone node agent) and ``vipcast status`` (its sessions)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

DEFAULT_STATUS = "127.0.0.1:9473"


def _address(text: str) -> tuple[str, int]:
    from vipcast.obs.status_server import parse_address

    try:
        return parse_address(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected HOST:PORT") from None


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
        typer.Option(help="Shared key of the L2 node membership (or $VIPCAST_MEMBERSHIP_KEY)"),
    ] = None,
) -> None:
    """Run this node's agent: BGP sessions for the peers that select it, reload on change."""
    from vipcast.app.agent import AgentOptions
    from vipcast.app.node import run_node
    from vipcast.obs.logs import setup_logging

    setup_logging(log_level, as_json=log_json)
    options = AgentOptions(
        config_paths=tuple(config),
        node=node,
        metrics_address=_address(metrics_address) if metrics_address else None,
        listen=tuple(_address(item) for item in (listen or [])),
        router_id=router_id,
        state_dir=state_dir,
        poll_interval=poll_interval,
    )

    async def main() -> int:
        key = os.environ.get("VIPCAST_MEMBERSHIP_KEY", "")
        if membership_key_file is not None:
            key = membership_key_file.read_text().strip()
        return await run_node(options, dataplane_enabled=dataplane, membership_key=key.encode())

    raise typer.Exit(asyncio.run(main()))


def fetch_status(address: str, timeout: float = 5.0) -> dict[str, Any]:
    host, port = _address(address)
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


def status(
    address: Annotated[
        str, typer.Option("--address", "-a", help="The agent's --metrics-address")
    ] = DEFAULT_STATUS,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON document")] = False,
) -> None:
    """Show a running agent's BGP sessions (state, uptime, prefixes, last error)."""
    try:
        document = fetch_status(address)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        Console(stderr=True).print(f"[red]cannot reach the agent at {address}: {exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    console.print(sessions_table(document))
    errors = document.get("config", {}).get("errors") or []
    if errors:
        console.print(f"[red]the last configuration change was refused ({len(errors)} issues)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("agent")(agent)
    app.command("status")(status)
