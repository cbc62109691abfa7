"""The e2e labs' shared life and moves: a lab built under the run's own prefix and torn down
with nothing left behind, the router as FRR, and a node's power loss under client load."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vipcast.app.lab.demo import power_off, watch_next_hop_gone
from vipcast.app.lab.topology import LabOptions, LabState, build, router_of
from vipcast.lab.frr import FrrInstance
from vipcast.lab.netns import Topology, leftovers
from vipcast.lab.workload import ClientLoad

#: the allocator's deterministic choice for default/web (a Cluster Service) in the lab config
WEB = "192.0.2.3"


@contextlib.contextmanager
def running_lab(tag: str, **options: Any) -> Iterator[tuple[Topology, LabState, LabOptions]]:
    """A lab in namespaces ``vc-<pid>-<tag>-*`` built with ``options``; on leaving, its
    processes and namespaces are gone (asserted) and its work directory removed. What the
    caller waits for (sessions, routes) it waits for inside the ``with``."""
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


def frr_router(topo: Topology, state: LabState) -> FrrInstance:
    """The lab's router, which the test needs to be FRR."""
    frr = router_of(topo, state)
    assert isinstance(frr, FrrInstance)
    return frr


def power_loss_under_load(
    topo: Topology, state: LabState, node: str, next_hop: str, *, duration: float,
    lead: float,
) -> tuple[float | None, ClientLoad, float]:
    """A client sends new connections to the ``WEB`` VIP for ``duration`` s; after ``lead`` s
    ``node`` loses power. Returns when the router dropped ``next_hop`` from the VIP's route
    (seconds after the failure; None: not within the run), the client's load (its
    ``samples()`` wait for its end), and the failure's time on the load's clock."""
    load = ClientLoad(topo["client"], f"http://{WEB}/", duration=duration, interval=0.02,
                      timeout=0.25, response_timeout=2.0)
    time.sleep(lead)
    kill_at = power_off(topo, state, node, load.now)
    gone = watch_next_hop_gone(topo["router"], f"{WEB}/32", next_hop, since=kill_at,
                               clock=load.now, until=duration)
    return gone, load, kill_at
