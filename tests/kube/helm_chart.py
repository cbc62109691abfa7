"""The Helm chart (deploy/helm/vipcast) as the chart tests see it: where it and its renderings
are, the ``helm`` binary in a scratch home (the ``helm_env`` fixture, shared through
``conftest.py``), and the rendered objects looked up by kind and component.

helm comes from ``scripts/install-helm.sh``; without it the chart tests fail under CI, and skip
only with ``VIPCAST_SKIP_KUBE=1`` or outside CI.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .harness.cluster import DEFAULT_BIN_DIR, missing_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "vipcast"
RENDERED = ROOT / "deploy" / "kubernetes" / "vipcast.yaml"
EXAMPLE_VALUES = CHART / "ci" / "example-values.yaml"
HELM = Path(os.environ.get("HELM", DEFAULT_BIN_DIR / "helm"))
K8S_VERSION = "1.36.0"


@pytest.fixture(scope="module")
def helm_env() -> Iterator[dict[str, str]]:
    missing_tool("chart tests", os.access(HELM, os.X_OK),
                 f"no helm at {HELM} (run scripts/install-helm.sh)")
    with tempfile.TemporaryDirectory(prefix="vc-helm-") as scratch:
        yield {**os.environ, "HOME": scratch, "HELM_CACHE_HOME": f"{scratch}/cache",
               "HELM_CONFIG_HOME": f"{scratch}/config", "HELM_DATA_HOME": f"{scratch}/data",
               "HELM": str(HELM)}


def helm(env: dict[str, str], *args: str) -> str:
    """``helm ARGS`` in ``env``; its standard output (a failure fails the test)."""
    proc = subprocess.run([str(HELM), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def template(env: dict[str, str], *extra: str) -> list[dict[str, Any]]:
    """The chart rendered (``helm template``, CRDs included) with ``extra`` options."""
    out = helm(env, "template", "vipcast", str(CHART), "--namespace", "vipcast-system",
               "--include-crds", "--set", "namespace.create=true", *extra)
    return [d for d in yaml.safe_load_all(out) if d]


def group_by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rendered objects of each kind, in rendering order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def pod_spec(docs: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    """The pod spec of the ``kind`` (Deployment, DaemonSet) of one component."""
    spec: dict[str, Any] = next(
        d for d in docs if d["kind"] == kind
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    )["spec"]["template"]["spec"]
    return spec
