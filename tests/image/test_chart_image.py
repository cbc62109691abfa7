"""The chart renders with the image this repository builds: every container of the rendered
manifests (deploy/kubernetes/vipcast.yaml, the chart's defaults) and of the chart with the CI
example values names the reference scripts/build-image.sh tags, and the users the chart sets
are those the image was built for."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from kube.helm_chart import EXAMPLE_VALUES, RENDERED, helm_env, template

from .conftest import Image

__all__ = ["helm_env"]

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1500)]


def _containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for doc in docs:
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            out[f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"] = {**c, "pod": pod}
    return out


def _short(ref: str) -> str:
    return ref.removeprefix("localhost/")


def test_the_chart_renders_with_the_built_image(image: Image,
                                               helm_env: dict[str, str]) -> None:
    user = json.loads(image.podman("image", "inspect", "--format", "{{json .Config.User}}",
                                   image.ref).stdout)
    for source, docs in (
        ("deploy/kubernetes/vipcast.yaml", [d for d in yaml.safe_load_all(RENDERED.read_text())
                                            if d]),
        ("chart + ci/example-values.yaml", template(helm_env, "--values", str(EXAMPLE_VALUES))),
    ):
        containers = _containers(docs)
        assert containers, source
        for where, c in containers.items():
            assert c["image"] == _short(image.ref), (source, where, c["image"], image.ref)
            ctx = {**(c["pod"].get("securityContext") or {}), **(c.get("securityContext") or {})}
            if "speaker" not in where:
                # controller and webhook: the image's own non-root user
                assert ctx.get("runAsNonRoot") is True, (source, where, ctx)
                assert str(ctx.get("runAsUser")) == user.split(":")[0], (source, where, ctx)
    # the reference the chart names resolves to the image that was built
    assert image.podman("image", "exists", _short(image.ref), check=False).returncode == 0
