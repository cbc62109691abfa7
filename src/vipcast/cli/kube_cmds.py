"""Kubernetes commands: ``vipcast kube crds`` and the in-cluster ``controller``/``speaker``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

kube_app = typer.Typer(help="Kubernetes: CRDs and manifests.", no_args_is_help=True)


@kube_app.command("crds")
def crds(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write one YAML file per CRD into this directory."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the files in --out are not up to date.")
    ] = False,
) -> None:
    """Print (or write) the CustomResourceDefinitions generated from vipcast's spec models."""
    from vipcast.sources.kube.crds import rendered_files

    files = rendered_files()
    if out is None:
        typer.echo("---\n".join(files.values()), nl=False)
        return
    stale = [name for name, text in files.items()
             if not (out / name).exists() or (out / name).read_text() != text]
    if check:
        for name in stale:
            typer.echo(f"out of date: {out / name}", err=True)
        raise typer.Exit(1 if stale else 0)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    typer.echo(f"wrote {len(files)} CRDs to {out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(kube_app, name="kube")
