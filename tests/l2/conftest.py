"""Fixtures of the L2 tests: a bridged LAN of three nodes and a client in namespaces."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from agent_lan import AgentLan
from l2_lan import L2Lan

from lab_fixtures import owned_topology
from vipcast.lab.netns import Topology, leftovers

_runs = itertools.count()


@contextmanager
def namespaced_topology(tag: str) -> Iterator[Topology]:
    """A topology of namespaces named ``vc-<pid>-<tag><n>``; after it its logs are printed
    (shown by pytest only when the test fails), it is closed and none of its namespaces may be
    left. Skips the test without root, iproute2 and tcpdump."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"):
        pytest.skip("needs root, iproute2 and tcpdump")
    prefix = f"vc-{os.getpid()}-{tag}{next(_runs)}"
    with owned_topology(Topology(prefix)) as topo:
        yield topo
    assert leftovers(prefix) == []  # nor any namespace an agent made under the prefix


@pytest.fixture
def lan() -> Iterator[L2Lan]:
    with namespaced_topology("l2") as topo:
        yield L2Lan(topo).build()


@pytest.fixture
def agent_lan() -> Iterator[AgentLan]:
    """Three full node agents in L2 mode with local backends (see ``agent_lan.py``)."""
    with namespaced_topology("la") as topo:
        yield AgentLan(topo).build()


@pytest.fixture
def agent_lan4() -> Iterator[AgentLan]:
    """Four nodes on the LAN, only n1-n3 named in the config at first (see ``agent_lan.py``)."""
    with namespaced_topology("lm") as topo:
        lan = AgentLan(topo, nodes=("n1", "n2", "n3", "n4"), configured=("n1", "n2", "n3"))
        yield lan.build()
