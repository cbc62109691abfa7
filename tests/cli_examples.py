"""The repository's examples/ through the CLI, for the CLI tests of every area: ``run`` invokes
``vipcast`` in-process; the ``example`` fixture copies an example directory to a temporary one
(the commands write a state file beside the config); tests/conftest.py registers it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args: str) -> tuple[int, str]:
    """``vipcast ARGS...``: (exit code, output). The CLI is imported on the first call, not
    when the suite loads this plugin."""
    from typer.testing import CliRunner

    from vipcast.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture()
def example(tmp_path: Path) -> Callable[[str], Path]:
    """Copy an example directory to tmp (the commands write a state file beside it)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(EXAMPLES / name, target)
        return target

    return copy
