"""The ``vipcast`` command line. Each area registers its commands from its own module."""

from __future__ import annotations

import typer

from vipcast.cli import (
    agent_cmds,
    config_cmds,
    dataplane_cmds,
    gateway_cmds,
    kube_cmds,
    lab_cmds,
    provider_cmds,
)

app = typer.Typer(
    name="vipcast",
    help="LoadBalancer IPs for on-premises Kubernetes: allocate, announce (BGP/L2), forward.",
    no_args_is_help=True,
    add_completion=False,
)

for module in (config_cmds, agent_cmds, dataplane_cmds, lab_cmds, kube_cmds, provider_cmds,
               gateway_cmds):
    module.register(app)


@app.command()
def version() -> None:
    """Print vipcast's version."""
    from vipcast import __version__

    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app()
