"""The ``vipcast`` command line. Each area registers its commands from its own module.

``vipcast X`` imports only the module that registers ``X`` (:data:`COMMANDS`): importing every
area's module costs more than some commands take to run (``vipcast plan`` needs neither asyncio
nor the agent's, kube's or lab's modules). A name not in the table (``--help``, a typo) gets the
whole command line, so help lists every command and a typo the same error. ``app`` (for
``typer.testing.CliRunner`` and ``import``) is the whole command line, built when first read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from importlib import import_module
from typing import Any

import typer

#: the area modules (in ``vipcast.cli``), in the order they register (help lists them so)
MODULES = ("config_cmds", "agent_cmds", "dataplane_cmds", "lab_cmds", "kube_cmds",
           "provider_cmds", "gateway_cmds", "drain_cmds", "handoff_cmds")

#: each top-level command (or group) -> the module registering it
#: (tests/foundation/test_cli_lazy.py holds it to what the modules register)
COMMANDS = {
    "check-config": "config_cmds", "plan": "config_cmds", "explain": "config_cmds",
    "agent": "agent_cmds", "status": "agent_cmds",
    "dataplane": "dataplane_cmds",
    "lab": "lab_cmds", "demo": "lab_cmds",
    "kube": "kube_cmds", "convert": "kube_cmds", "controller": "kube_cmds",
    "speaker": "kube_cmds",
    "providers": "provider_cmds",
    "gateway": "gateway_cmds", "explain-route": "gateway_cmds",
    "drain": "drain_cmds", "undrain": "drain_cmds",
    "handoff": "handoff_cmds",
}


def build(modules: Iterable[str] = MODULES) -> typer.Typer:
    """The command line with the commands of ``modules`` (and ``version``)."""
    cli = typer.Typer(
        name="vipcast",
        help="LoadBalancer IPs for on-premises Kubernetes: allocate, announce (BGP/L2), forward.",
        no_args_is_help=True,
        add_completion=False,
    )
    for name in modules:
        import_module(f"vipcast.cli.{name}").register(cli)
    cli.command()(version)
    return cli


def app_for(argv: Sequence[str]) -> typer.Typer:
    """The command line ``argv`` (without the program name) needs: only its command's module
    when the first word names a command, else every module."""
    module = COMMANDS.get(argv[0]) if argv else None
    return build((module,) if module is not None else MODULES)


#: one-shot commands over one config that start no thread and register nothing to run at exit:
#: the program ends them without freeing what they built (see :func:`main`)
QUICK_EXIT = frozenset({"check-config", "plan", "explain"})


def main() -> None:
    """The ``vipcast`` program."""
    argv = sys.argv[1:]
    cli = app_for(argv)
    if not argv or argv[0] not in QUICK_EXIT:
        cli()
        return
    try:
        cli()
        code: object = 0
    except SystemExit as done:  # how typer ends every command
        code = done.code
    os._exit(_flushed(code))


def _flushed(code: object) -> int:
    """The exit status of ``sys.exit(code)``, once standard output and error are written.

    The interpreter's own exit would free, one by one, every value the command built and
    collect them all once more (10,000 Services: ~0.3 s of ``vipcast plan --json``, more than
    writing its 440 MB to a file); ``os._exit`` after this ends the process at once.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed pipe (`| head`): as the interpreter's exit does
            status = status or 120
    return status


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command line, once
        whole = globals()["app"] = build()
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    main()
