"""pytest plugin: lab fixtures for every area's tests.

Enable in an area's ``conftest.py`` with ``pytest_plugins = ["vipcast.lab.pytest_fixtures"]``.

- ``netlab``: a fresh :class:`~vipcast.lab.netns.Topology` (prefix ``vc-<pid>``); on teardown
  it prints the tracked processes' logs (shown by pytest when the test failed), stops the
  processes by PID, deletes the namespaces and fails the test if any of them is left.
- ``netlab_root``: skips the test unless it runs as root with ``ip`` available.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from vipcast.lab.netns import Topology, list_netns


def lab_capable() -> str | None:
    """Why network-namespace tests cannot run here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return None


@pytest.fixture
def netlab_root() -> None:
    reason = lab_capable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def netlab(netlab_root: None) -> Iterator[Topology]:
    topo = Topology()
    try:
        yield topo
    finally:
        logs = topo.logs()
        if logs:
            print(logs)
        names = [ns.name for ns in topo]
        topo.close()
        left = [n for n in names if n in set(list_netns())]
        assert not left, f"namespaces left behind: {left}"
