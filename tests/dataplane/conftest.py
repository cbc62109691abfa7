"""Data-plane fixtures: a single fresh namespace, and the traffic lab of :mod:`dp_lab`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dp_lab import TrafficLab, build_traffic_lab

from lab_fixtures import owned_topology, skip_unless_lab_capable
from vipcast.lab.netns import Topology


@pytest.fixture(scope="module")
def traffic_lab() -> Iterator[TrafficLab]:
    skip_unless_lab_capable()
    with owned_topology(Topology()) as topo:
        yield build_traffic_lab(topo)


@pytest.fixture
def fresh_ns(netlab: Topology) -> str:
    """One empty namespace (lo up) for kernel tests; removed after the test."""
    return netlab.add_netns("dpx").name
