"""Fixtures of the L2 tests: a bridged LAN of three nodes and a client in namespaces."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator

import pytest
from agent_lan import AgentLan
from l2_lan import L2Lan

from vipcast.lab.netns import Topology, leftovers

_runs = itertools.count()


@pytest.fixture
def lan() -> Iterator[L2Lan]:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"):
        pytest.skip("needs root, iproute2 and tcpdump")
    prefix = f"vc-{os.getpid()}-l2{next(_runs)}"
    topo = Topology(prefix)
    try:
        yield L2Lan(topo).build()
    finally:
        print(topo.logs())  # shown by pytest only when the test fails
        topo.close()
    assert leftovers(prefix) == []


@pytest.fixture
def agent_lan() -> Iterator[AgentLan]:
    """Three full node agents in L2 mode with local backends (see ``agent_lan.py``)."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"):
        pytest.skip("needs root, iproute2 and tcpdump")
    prefix = f"vc-{os.getpid()}-la{next(_runs)}"
    topo = Topology(prefix)
    try:
        yield AgentLan(topo).build()
    finally:
        print(topo.logs())  # shown by pytest only when the test fails
        topo.close()
    assert leftovers(prefix) == []


@pytest.fixture
def agent_lan4() -> Iterator[AgentLan]:
    """Four nodes on the LAN, only n1-n3 named in the config at first (see ``agent_lan.py``)."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"):
        pytest.skip("needs root, iproute2 and tcpdump")
    prefix = f"vc-{os.getpid()}-lm{next(_runs)}"
    topo = Topology(prefix)
    try:
        lan = AgentLan(topo, nodes=("n1", "n2", "n3", "n4"), configured=("n1", "n2", "n3"))
        yield lan.build()
    finally:
        print(topo.logs())  # shown by pytest only when the test fails
        topo.close()
    assert leftovers(prefix) == []
