"""Fixtures of the kube area: a real generic API server (see ``harness/``) per test session."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .e2e_run import Image, build_image
from .harness.cluster import (
    DEFAULT_BIN_DIR,
    Cluster,
    binaries_present,
    missing_tool,
    start_cluster,
)
from .helm_chart import helm_env

__all__ = ["helm_env"]  # the chart tests' fixture (helm_chart.py), for every kube test module

T = TypeVar("T")
_ns_counter = itertools.count()


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run one coroutine to completion with a generous deadline."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    missing_tool("API-tier tests", binaries_present(),
                 f"no apiextensions-apiserver/etcd in {DEFAULT_BIN_DIR} (run scripts/build-k8s.sh)")
    cluster = start_cluster(Path(tmp_path_factory.mktemp("k8s")))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kubeconfig(kube_cluster: Cluster) -> Path:
    return kube_cluster.kubeconfig


@pytest.fixture
def namespace(kube_cluster: Cluster) -> str:
    """A fresh namespace for one test."""
    name = f"t{next(_ns_counter)}"
    code, body = kube_cluster.request(
        "POST", "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert code == 201, body
    return name


@pytest.fixture(scope="session")
def vipcast_crds(kube_cluster: Cluster) -> Cluster:
    """The session cluster with vipcast's own CRDs (from ``deploy/crds``) installed."""
    from vipcast.sources.kube.crds import all_crds

    kube_cluster.apply_crds(all_crds())
    return kube_cluster


@pytest.fixture(scope="session")
def gateway_api(vipcast_crds: Cluster) -> Cluster:
    """The session cluster with the upstream Gateway API CRDs (v1.6.1 standard channel,
    ``deploy/gateway-api/crds``) installed unchanged."""
    import yaml

    crds = Path(__file__).parents[2] / "deploy" / "gateway-api" / "crds"
    vipcast_crds.apply_crds([yaml.safe_load(p.read_text()) for p in sorted(crds.glob("*.yaml"))])
    return vipcast_crds


@pytest.fixture(scope="session")
def vipcast_image() -> Iterator[Image | None]:
    """vipcast's container image for the end-to-end tests (``e2e_run.py``), pinned under a tag
    of this session; None when ``VIPCAST_E2E_FROM_SOURCE=1`` asks for the source tree."""
    if os.environ.get("VIPCAST_E2E_FROM_SOURCE") == "1":
        yield None
        return
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.fail("the end-to-end tests run vipcast's image: they need root and podman "
                    "(scripts/setup.sh installs it); VIPCAST_E2E_FROM_SOURCE=1 runs them from "
                    "the source tree instead")
    image = build_image(f"localhost/vipcast:e2e-{os.getpid()}")
    try:
        yield image
    finally:
        image.podman("rmi", image.ref, check=False)
