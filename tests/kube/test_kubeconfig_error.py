"""A missing or unreadable kubeconfig is named on the command line, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    ["controller"],
    ["speaker", "--node", "n1"],
    ["kube", "webhook", "--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"],
    ["providers", "controller"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_missing_kubeconfig_is_a_clear_usage_error(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    out = subprocess.run(
        [sys.executable, "-m", "vipcast.cli.main", *command, "--kubeconfig", str(missing)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    # rich draws the message in a box and wraps it at the terminal's width
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", out.stderr).split())
    assert "--kubeconfig" in text and "not found" in text, out.stderr
