"""scripts/build-k8s.sh takes its Debian mirror from the machine's own apt configuration only.

apt is pointed at a private configuration (``APT_CONFIG``) whose ``Dir::Etc`` is a temporary
directory, so each case sets up exactly the sources the machine would have.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-k8s.sh"


def _run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, APT_CONFIG=str(tmp_path / "apt.conf"),
               VIPCAST_K8S_CACHE=str(tmp_path / "cache"), VIPCAST_K8S_PRINT_MIRROR="1")
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "apt.conf.d").mkdir()
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "apt.conf").write_text(f'Dir::Etc "{tmp_path}";\n')
    return tmp_path


def test_no_debian_source_stops_with_a_clear_message(etc: Path) -> None:
    (etc / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n")
    result = _run(etc)
    assert result.returncode == 1
    assert "no Debian archive source" in result.stderr
    assert str(etc / "sources.list") in result.stderr
    assert "deb.debian.org" not in result.stdout + result.stderr


def test_deb822_source_is_used_and_security_is_not(etc: Path) -> None:
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    result = _run(etc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://mirror.example/debian/"


def test_one_line_source_with_options_is_used(etc: Path) -> None:
    (etc / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg arch=amd64] http://mirror.example/debian bookworm main\n")
    result = _run(etc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://mirror.example/debian"
