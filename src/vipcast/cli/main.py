"""The ``vipcast`` command line. Each area registers its commands from its own module."""

from __future__ import annotations

import typer

from vipcast.cli import (
    agent_cmds,
    config_cmds,
    dataplane_cmds,
    drain_cmds,
    gateway_cmds,
    handoff_cmds,
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
               gateway_cmds, drain_cmds, handoff_cmds):
    module.register(app)


@app.command()
def version() -> None:
    """Print vipcast's version and the git revision it was built from."""
    from vipcast import __version__

    typer.echo(f"vipcast {__version__} (revision {_revision()})")


def _revision() -> str:
    """The revision written into the package by scripts/build-image.sh, else the checkout's."""
    import subprocess
    from importlib.resources import files
    from pathlib import Path

    stamped = files("vipcast").joinpath("REVISION")
    if stamped.is_file():
        return stamped.read_text().strip() or "unknown"
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


if __name__ == "__main__":  # pragma: no cover
    app()
