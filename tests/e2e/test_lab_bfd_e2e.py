"""End to end with BFD (100 ms x 3) and graceful restart both on, FRR as the router.

FRR 8.4 treats the two failures apart (docs/lab.md, "Graceful restart and BFD"): an agent that
restarts closes its TCP session first, so FRR keeps its routes as stale (GR helper) and the
client loses nothing; a node that loses power stops answering BFD while the session is still
Established, and FRR tears the session down without GR, so its next hop leaves the kernel
route within the BFD detection time. Deadlines are generous; bench/lab_failover.py measures.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from harness_lab import WEB, power_loss_under_load, running_lab

from vipcast.app.lab.demo import recovery_time, watch_next_hop_gone
from vipcast.app.lab.topology import (
    LabOptions,
    LabState,
    frr_of,
    node_v4,
    router_of,
    start_agent,
    wait_sessions,
)
from vipcast.lab.netns import Topology, wait_until
from vipcast.lab.workload import ClientLoad

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)

@pytest.fixture(scope="module")
def bfd_lab() -> Iterator[tuple[Topology, LabState, LabOptions]]:
    with running_lab("bfd", nodes=3, bfd=True, graceful_restart=True, hold_time=3) as lab:
        topo, state, _ = lab
        wait_sessions(router_of(topo, state), 3, timeout=60)
        yield lab


def test_agent_restart_with_bfd_and_graceful_restart_loses_no_request(
    bfd_lab: tuple[Topology, LabState, LabOptions],
) -> None:
    topo, state, opts = bfd_lab
    router = topo["router"]
    router.wait_route(f"{WEB}/32", count=3, timeout=30)
    load = ClientLoad(topo["client"], f"http://{WEB}/", duration=8.0, interval=0.02,
                      timeout=1.0)
    time.sleep(1.5)
    killed = load.now()
    os.killpg(state.pids["n2-agent"], signal.SIGKILL)
    # BFD from n2 stops too; the next hop must stay (stale) while the agent comes back
    gone = watch_next_hop_gone(router, f"{WEB}/32", node_v4(2), since=killed,
                               clock=load.now, until=killed + 1.5)
    proc = start_agent(topo, topo["n2"], opts, "n2")
    state.pids["n2-agent"] = proc.pid
    samples = load.samples()
    assert gone is None, f"the router dropped n2 {gone:.2f} s after its agent was killed"
    assert len(samples) > 100
    failed = [s for s in samples if not s.ok]
    assert not failed, f"{len(failed)} failed requests during a graceful restart with BFD"
    wait_sessions(router_of(topo, state), 3, timeout=30)
    router.wait_route(f"{WEB}/32", count=3, timeout=30)


def test_node_failure_with_bfd_drops_the_next_hop_and_client_recovers(
    bfd_lab: tuple[Topology, LabState, LabOptions],
) -> None:
    topo, state, _ = bfd_lab
    router = topo["router"]
    router.wait_route(f"{WEB}/32", count=3, timeout=30)
    # what the test relies on: the router's BFD session with n3 Up before the power loss (it
    # comes Up after BGP is Established, which is all the fixture waits for)
    frr = frr_of(topo, state)
    wait_until(lambda: any(p.get("peer") == node_v4(3) and p.get("status") == "up"
                           for p in frr.bfd_peers()),
               timeout=30, what="the router's BFD session with n3 up")  # fmt: skip
    gone, load, kill_at = power_loss_under_load(topo, state, "n3", node_v4(3), duration=8.0,
                                                lead=1.5)
    samples = load.samples()
    # behaviour, not speed (bench/bfd_failover.py and bench/lab_failover.py have the figures):
    # n3 left the route within the watch window, and BFD, not the hold timer, reset its session
    assert gone is not None, "n3 still a next hop at the end of the watch window"
    record = frr.neighbors().get(node_v4(3), {})
    reason = str(record.get("lastNotificationReason", ""))
    assert "bfd down" in reason.lower(), record  # FRR sent Cease/BFD Down (RFC 9384)
    recovery, _ = recovery_time(samples, kill_at)
    assert recovery is not None, [(s.t - kill_at, s.error) for s in samples if not s.ok]
    route = router.route(f"{WEB}/32")
    assert route is not None and set(route.gateways) == {node_v4(1), node_v4(2)}
    # recovered, and stayed so: the run's last 2 s all succeed, on n1 and n2 only (every
    # sample after ``recovery`` succeeds by its definition, so that alone proves nothing)
    final = [s for s in samples if s.t > samples[-1].t - 2.0]
    assert final and all(s.ok for s in final), [(s.t - kill_at, s.error) for s in final]
    assert {s.node for s in final} == {"n1", "n2"}
