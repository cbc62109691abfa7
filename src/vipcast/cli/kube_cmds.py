"""CLI commands of one area (registered by :mod:`vipcast.cli.main`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
