"""Set-up shared by the end-to-end tests that run speakers against the harness's API server."""

from __future__ import annotations

import sys
from typing import Any

from vipcast.app.lab import node_v4

from .harness.cluster import Cluster


def vipcast_argv() -> list[str]:
    return [sys.executable, "-m", "vipcast.cli.main"]


def post(cluster: Cluster, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST an object; it must be created."""
    code, out = cluster.request("POST", path, body)
    assert code == 201, (path, out)
    assert isinstance(out, dict)
    return out


def ready_nodes(cluster: Cluster, ns: str, count: int) -> list[str]:
    """``count`` Ready Nodes ``<ns>-n<i>`` with the lab's InternalIPs; their names."""
    names = [f"{ns}-n{i}" for i in range(1, count + 1)]
    for i, name in enumerate(names, start=1):
        node = post(cluster, "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
        node["status"] = {"conditions": [{"type": "Ready", "status": "True"}],
                          "addresses": [{"type": "InternalIP", "address": node_v4(i)}]}
        code, out = cluster.request("PUT", f"/api/v1/nodes/{name}/status", node)
        assert code == 200, out
    return names
