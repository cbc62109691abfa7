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
from collections.abc import Iterator

import pytest

# the kube area's API-server fixtures, for the controller, webhook and speaker containers
from kube.conftest import kube_cluster, namespace, vipcast_crds
from kube.e2e_run import BUILD, REPO, Image, build_image

__all__ = ["BUILD", "REPO", "Image", "kube_cluster", "namespace", "vipcast_crds"]


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    if os.geteuid() != 0:
        pytest.skip("image tests need root (rootful podman, network namespaces)")
    if shutil.which("podman") is None and shutil.which("apt-get") is None:
        pytest.skip("no podman and no apt-get to install it (scripts/setup.sh installs podman)")
    yield build_image()
