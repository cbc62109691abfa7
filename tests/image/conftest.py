"""Fixtures of the image area: vipcast's container image, built by scripts/build-image.sh.

The build is cached outside the work tree (``~/.cache/vipcast-image``, keyed by the lock, the
wheel and the base), so after the first build a session only re-checks it (seconds).
``scripts/test.sh`` builds it before pytest runs, so a cold build is not charged to a test.
Containers run rootful podman with the project's ``deploy/image/containers.conf`` (runtime
runc, no network unless a test joins a lab namespace or the host's loopback API server).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

# the kube area's API-server fixtures, for the controller, webhook and speaker containers
from kube.conftest import kube_cluster, namespace, vipcast_crds

__all__ = ["kube_cluster", "namespace", "vipcast_crds"]

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "deploy" / "image" / "containers.conf"
BUILD = REPO / "scripts" / "build-image.sh"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


@dataclass(frozen=True)
class Image:
    ref: str

    def podman(self, *args: str, timeout: float = 120,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["podman", *args], capture_output=True, text=True,
                             timeout=timeout, env=podman_env(), check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} -> {out.returncode}\n"
                                 f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out

    def run(self, argv: Sequence[str], *opts: str, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """``podman run --rm`` of the image, as the chart's controller runs it (read-only root,
        no capabilities, the image's non-root user), plus ``opts``."""
        return self.podman("run", "--rm", "--read-only", "--cap-drop", "ALL", *opts,
                           self.ref, *argv, timeout=timeout, check=check)

    def start(self, name: str, argv: Sequence[str], *opts: str) -> str:
        """A detached container; removed by :meth:`stop`."""
        self.podman("run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
                    *opts, self.ref, *argv)
        return name

    def logs(self, name: str) -> str:
        out = self.podman("logs", name, check=False)
        return (out.stdout + out.stderr)[-4000:]

    def stop(self, name: str) -> None:
        self.podman("rm", "-f", "-t", "5", name, check=False, timeout=60)


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    if os.geteuid() != 0:
        pytest.skip("image tests need root (rootful podman, network namespaces)")
    if shutil.which("podman") is None and shutil.which("apt-get") is None:
        pytest.skip("no podman and no apt-get to install it (scripts/setup.sh installs podman)")
    out = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=1500,
                         cwd=REPO, check=False)
    assert out.returncode == 0, f"scripts/build-image.sh failed:\n{out.stderr[-5000:]}"
    yield Image(out.stdout.strip().splitlines()[-1])
