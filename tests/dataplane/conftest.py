"""Data-plane fixtures: a single fresh namespace, and the traffic lab of :mod:`dp_lab`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dp_lab import TrafficLab, build_traffic_lab

from vipcast.lab.netns import Topology, list_netns
from vipcast.lab.pytest_fixtures import lab_capable, netlab, netlab_root

__all__ = ["netlab", "netlab_root"]


@pytest.fixture(scope="module")
def traffic_lab() -> Iterator[TrafficLab]:
    reason = lab_capable()
    if reason:
        pytest.skip(reason)
    topo = Topology()
    names: list[str] = []
    try:
        lab = build_traffic_lab(topo)
        names = [ns.name for ns in topo]
        yield lab
    finally:
        logs = topo.logs()
        names = names or [ns.name for ns in topo]
        topo.close()
        left = [n for n in names if n in set(list_netns())]
        if logs:
            print(logs)
        assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def fresh_ns(netlab: Topology) -> str:
    """One empty namespace (lo up) for kernel tests; removed after the test."""
    return netlab.add_netns("dpx").name


