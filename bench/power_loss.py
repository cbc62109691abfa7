"""A node's power loss in the lab, under client load, as the CNI failover benches measure it
(bench/cni_failover.py, bench/cni_separate_failover.py): the work directory, the wait before a
trial (``ready``), the trial itself (``trial``), and how the figures print. The benches
``import power_loss`` and call these by the module's name.

A trial: a client sends a new connection every ``INTERVAL`` s (timeout ``TIMEOUT`` s) to the
Cluster VIP for ``DURATION`` s; one second in, the node loses power (cable pulled, then its
agent and BIRD SIGKILLed). Measured from the failure: until the router's kernel route to the
VIP lost the node's next hop, until (beside a CNI) the node's pod block left the router's
kernel, and until the client recovered (first success after the last failure).
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.app.lab.cni import pod_blocks
from vipcast.app.lab.demo import power_off, recovery_time, send, watch_next_hop_gone
from vipcast.app.lab.topology import LabState
from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.lab.workload import ClientLoad

WEB = "192.0.2.3"
INTERVAL, TIMEOUT, DURATION = 0.01, 0.2, 4.0


@contextlib.contextmanager
def workdir(tag: str) -> Iterator[Path]:
    """A fresh lab work directory the FRR user can reach, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"vc-bench-{tag}-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def settle(client: Netns, url: str) -> None:
    """Wait until 30 requests in a row succeed (health checks have re-added every backend)."""
    wait_until(lambda: all(s.ok for s in send(client, url, 30, timeout=0.5)) or None,
               timeout=60, interval=0.5, what=f"{url} answers again")
    time.sleep(1.0)


def ready(topo: Topology, victim: int, *, pods: bool) -> None:
    """The VIP over all three nodes, (``pods``) the victim's pod block at the router, and the
    client served again."""
    router = topo["router"]
    router.wait_route(f"{WEB}/32", count=3, timeout=90)
    if pods:
        router.wait_route(pod_blocks(victim)[0], timeout=60)
    settle(topo["client"], f"http://{WEB}/")


@dataclass(frozen=True)
class Outcome:
    """Seconds from the failure (None: did not happen within the trial)."""

    router_vip: float | None
    #: None also when the lab has no CNI
    router_pods: float | None
    client: float | None


@dataclass
class Figures:
    """Seconds per trial (None: did not happen within the trial)."""

    router_vip: list[float | None] = field(default_factory=list)
    #: beside a CNI only
    router_pods: list[float | None] = field(default_factory=list)
    client: list[float | None] = field(default_factory=list)

    def add(self, outcome: Outcome, *, pods: bool) -> None:
        self.router_vip.append(outcome.router_vip)
        if pods:
            self.router_pods.append(outcome.router_pods)
        self.client.append(outcome.client)


def trial(topo: Topology, state: LabState, victim: int, next_hop: str, *,
               pods: bool) -> Outcome:
    """Node ``victim`` loses power under the client's load; ``next_hop`` is its next hop of the
    VIP at the router; ``pods``: also time its pod block's withdrawal."""
    router = topo["router"]
    load = ClientLoad(topo["client"], f"http://{WEB}/", duration=DURATION, interval=INTERVAL,
                      timeout=TIMEOUT)
    time.sleep(1.0)
    kill_at = power_off(topo, state, f"n{victim}", load.now)
    vip = watch_next_hop_gone(router, f"{WEB}/32", next_hop, since=kill_at, clock=load.now,
                              until=DURATION)
    block = (watch_route_gone(router, pod_blocks(victim)[0], since=kill_at, clock=load.now,
                              until=DURATION) if pods else None)
    return Outcome(vip, block, recovery_time(load.samples(), kill_at)[0])


def watch_route_gone(router: Netns, prefix: str, *, since: float,
                     clock: Callable[[], float], until: float) -> float | None:
    """Seconds from ``since`` until ``prefix`` has left the router's kernel table."""
    while clock() < until:
        if router.route(prefix) is None:
            return clock() - since
        time.sleep(0.01)
    return None


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def median(values: list[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None
