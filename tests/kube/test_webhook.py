"""The admission webhook called by a real API server (TLS, AdmissionReview v1)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError
from lightkube.generic_resource import create_global_resource

from vipcast.sources.kube.webhook import WebhookServer

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, client, eventually, pool, webhook_released

pytestmark = pytest.mark.slow
VWC = create_global_resource("admissionregistration.k8s.io", "v1",
                             "ValidatingWebhookConfiguration",
                             "validatingwebhookconfigurations")


def _cert(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def test_api_server_calls_webhook_and_denies_overlap(
    vipcast_crds: Cluster, namespace: str, tmp_path: Path
) -> None:
    cert, key = _cert(tmp_path)

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        server = WebhookServer(c, cert, key, host="127.0.0.1", port=0)
        _, port = await server.start(30)
        name = f"vipcast-{namespace}"
        try:
            await c.create(VWC.from_dict({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": name},
                "webhooks": [{
                    "name": "validate.vipcast.io",
                    "clientConfig": {"url": f"https://127.0.0.1:{port}/validate",
                                     "caBundle": base64.b64encode(cert.read_bytes()).decode()},
                    "rules": [{"apiGroups": ["vipcast.io"], "apiVersions": ["v1beta1"],
                               "operations": ["CREATE", "UPDATE"], "resources": ["*"]}],
                    "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "failurePolicy": "Fail", "timeoutSeconds": 5,
                }],
            }))
            await c.create(pool(f"a-{namespace}", ["198.18.1.0/28"], namespace))
            await eventually(lambda: asyncio.sleep(0, any(
                r.store for r in server.reflectors if r.kind == "IPAddressPool")), 10,
                what="webhook cache sees pool a")

            async def denied() -> str | None:
                try:
                    await c.create(pool(f"b-{namespace}", ["198.18.1.8/29"], namespace))
                except ApiError as exc:
                    return str(exc.status.message)
                await c.delete(IPAddressPool, f"b-{namespace}")  # webhook not active yet
                return None

            message = await eventually(denied, 30, every=0.5, what="webhook denial")
            assert "overlap" in message
            # the very sentence `vipcast check-config` prints for the same two pools
            same = _check_config_overlap(tmp_path, [pool(f"{n}-{namespace}", [r], namespace)
                                                    for n, r in (("a", "198.18.1.0/28"),
                                                                 ("b", "198.18.1.8/29"))])
            assert same in message, (same, message)
            assert server.reviews >= 1
        finally:
            for res, obj in ((VWC, name), (IPAddressPool, f"a-{namespace}")):
                with contextlib.suppress(ApiError):
                    await c.delete(res, obj)
            await webhook_released(c, lambda: server.reviews,
                                   pool(f"probe-{namespace}", ["198.18.1.0/28"], namespace))
            await server.stop()
            await c.close()

    run(go(), 90)


def _check_config_overlap(tmp_path: Path, pools: list[Any]) -> str:
    """The overlap problem ``vipcast check-config`` reports for ``pools`` (its CLI, run)."""
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump_all([p.to_dict() for p in pools]))
    out = subprocess.run([sys.executable, "-m", "vipcast.cli.main", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"})
    assert out.returncode == 1, out
    found = re.search(r"\S+ overlaps \S+ of pool \S+", out.stdout + out.stderr)
    assert found, out.stdout + out.stderr
    return found.group(0).rstrip("│ ")
