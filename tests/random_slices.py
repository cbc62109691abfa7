"""EndpointSlices for the randomised planner and pipeline tests (any test folder: this folder is
on the import path through its conftest.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def random_slice(name: str, nodes: Sequence[str], rng: random.Random) -> dict[str, Any]:
    """The EndpointSlice of Service ``d/<name>``: one endpoint on each of ``nodes`` (in order),
    at a random address of 10.1.<its index>.0/28, port 8080."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "namespace": "d",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": [f"10.1.{i}.{rng.randrange(1, 9)}"], "nodeName": n}
                          for i, n in enumerate(nodes)]}


def slice_document(name: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """The EndpointSlice of Service ``ns/<name>`` (named like it): ``endpoints``, IPv4, port
    8080 named ``p`` (the property tests' Services expose port ``p`` 80)."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "p", "port": 8080}],
            "endpoints": endpoints}
