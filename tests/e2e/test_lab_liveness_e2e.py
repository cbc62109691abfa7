"""End to end: node liveness in BGP mode (BGP + BFD, ``externalTrafficPolicy: Cluster``).

A node loses power (cable pulled, agent SIGKILLed) while a client keeps sending to the Cluster
service ``web``, whose backends run on every node. The router drops the dead node's next hop by
BFD; the surviving nodes learn the death from the node membership (SWIM) and leave the dead
node's backends out of their NAT maps, which the health checks alone would do only later. The
test asserts what the kernels hold and what the client saw, in order; the time it takes is
bench/lab_failover.py's figure (with and without liveness, one run).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness_lab import WEB, Evidence, evidence_of, power_loss_under_load

from lab_fixtures import running_lab
from vipcast.app.lab.demo import recovery_time
from vipcast.app.lab.topology import (
    AGENT_STATUS_PORT,
    LabOptions,
    LabState,
    backend_ips,
    node_v4,
    router_of,
    start_agent,
    wait_sessions,
)
from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.lab.workload import Sample

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)

N3_BACKENDS = [ip4 for ip4, _ in backend_ips(3)]
_STATUS = ("import json, urllib.request; print(urllib.request.urlopen("
           f"'http://127.0.0.1:{AGENT_STATUS_PORT}/status', timeout=5).read().decode())")


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Topology, LabState, LabOptions]]:
    # BFD detects in 1.5 s (300 ms x 5), not the benches' 300 ms: a BFD session goes down
    # when its peer sends nothing for the detection time (RFC 5880 6.8.4), and on a loaded
    # 2-core CI machine an agent process went unscheduled for up to 1 s ("event loop stalled
    # 961 ms ... none ran"): a survivor's sessions then dropped, the router withdrew its
    # routes for the 5 s of the reconnection, and every request failed (docs/lab.md)
    with running_lab("live", nodes=3, bfd=True, graceful_restart=True, hold_time=3,
                     bfd_interval_ms=300, bfd_multiplier=5) as lab:
        topo, state, _ = lab
        wait_sessions(router_of(topo, state), 3, timeout=60)
        yield lab


@pytest.fixture(autouse=True)
def evidence(request: pytest.FixtureRequest, lab: tuple[Topology, LabState, LabOptions],
             tmp_path: Path) -> Iterator[Evidence]:
    """The lab's state, printed when the test fails (see harness_lab.Evidence)."""
    topo, state, _ = lab
    yield from evidence_of(request, topo, state, tmp_path / "lab")


@pytest.fixture(autouse=True)
def whole_lab(lab: tuple[Topology, LabState, LabOptions]) -> None:
    """Every test starts with n3 up and alive everywhere: a test that failed between n3's
    power loss and its return must not fail the next one too (it restores n3 here)."""
    topo, state, opts = lab
    if not topo["lan"].link_is_up("p3") or not _agent_runs(state.pids["n3-agent"]):
        topo["lan"].set_link("p3", True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pids["n3-agent"], signal.SIGKILL)
        state.pids["n3-agent"] = start_agent(topo, topo["n3"], opts, "n3").pid
    for node in (topo["n1"], topo["n2"]):
        wait_until(lambda node=node: set(status(node)["liveness"].get("alive", ())) ==
                   {"n1", "n2", "n3"} or None, timeout=60, what=f"{node.name} sees all alive")
    wait_sessions(router_of(topo, state), 3, timeout=60)


def _agent_runs(pid: int) -> bool:
    """Whether the agent process ``pid`` runs (a killed one not yet reaped is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def failures(samples: list[Sample], kill_at: float, *, only_failed: bool = True) -> str:
    """Samples as text lines: s after the cut, the answer or the error, the client port."""
    return "; ".join(
        f"{s.t - kill_at:+.2f} s " + (f"{s.node}/{s.backend}" if s.ok else
                                      f"{s.error} ({s.phase}, port {s.sport})")
        for s in samples if not (only_failed and s.ok))


def status(node: Netns) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(node.run([sys.executable, "-c", _STATUS]).stdout)
    return document


def nat_targets(node: Netns) -> str:
    """The node's nftables ruleset as text (the NAT maps' backend addresses are in it)."""
    return node.run(["nft", "list", "ruleset"]).stdout


def test_survivors_drop_a_dead_nodes_backends_and_take_them_back_when_it_returns(
    lab: tuple[Topology, LabState, LabOptions], evidence: Evidence,
) -> None:
    topo, state, opts = lab
    router, survivors = topo["router"], [topo["n1"], topo["n2"]]
    router.wait_route(f"{WEB}/32", count=3, timeout=60)
    for node in survivors:
        # every node knows every other alive, and forwards to n3's backends
        assert all(ip in nat_targets(node) for ip in N3_BACKENDS)
    gone, load, kill_at = power_loss_under_load(topo, state, "n3", node_v4(3), duration=8.0,
                                                lead=1.5, evidence=evidence)
    for node in survivors:
        wait_until(lambda node=node: status(node)["liveness"].get("dead") == ["n3"] or None,
                   timeout=30, what=f"{node.name} declares n3 dead")
        ruleset = nat_targets(node)
        assert not any(ip in ruleset for ip in N3_BACKENDS), (node.name, ruleset)
    samples = evidence.loaded(load.samples())
    assert gone is not None, "n3 still a next hop at the end of the watch window"
    recovery, _ = recovery_time(samples, kill_at)
    assert recovery is not None, f"never recovered: {failures(samples, kill_at)}"
    final = [s for s in samples if s.t > samples[-1].t - 2.0]
    assert final and all(s.ok for s in final), (
        f"failed in the final 2 s: {failures(final, kill_at)}; every failure after the cut: "
        f"{failures(samples, kill_at)}")
    assert {s.node for s in final} == {"n1", "n2"}, failures(final, kill_at, only_failed=False)
    assert {s.backend for s in final if s.ok} <= {f"n{i}-b1" for i in (1, 2)} | {
        f"n{i}-b2" for i in (1, 2)}
    # n3 comes back (a new boot): alive again everywhere, its backends back in the maps
    topo["lan"].set_link("p3", True)
    state.pids["n3-agent"] = start_agent(topo, topo["n3"], opts, "n3").pid
    for node in survivors:
        wait_until(lambda node=node: (status(node)["liveness"].get("dead") == [] and all(
            ip in nat_targets(node) for ip in N3_BACKENDS)) or None,
            timeout=60, what=f"{node.name} takes n3's backends back")
    wait_sessions(router_of(topo, state), 3, timeout=60)


def test_a_graceful_stop_is_no_death(lab: tuple[Topology, LabState, LabOptions]) -> None:
    """An agent stopped with SIGTERM leaves the membership (its machine still runs): the
    others do not declare it dead and keep forwarding to its backends."""
    topo, state, opts = lab
    n1, n3 = topo["n1"], topo["n3"]
    os.killpg(state.pids["n3-agent"], 15)
    wait_until(lambda: "n3" not in status(n1)["liveness"].get("alive", ()) or None,
               timeout=30, what="n1 sees n3 leave")
    time.sleep(1.0)  # past the suspicion and dead timers: still not dead
    document = status(n1)["liveness"]
    assert document["dead"] == [] and document["peers"]["n3"]["state"] == "left"
    # the health checks still pass (n3's backends run): they stay in n1's maps
    assert all(ip in nat_targets(n1) for ip in N3_BACKENDS)
    state.pids["n3-agent"] = start_agent(topo, n3, opts, "n3").pid
    wait_until(lambda: set(status(n1)["liveness"].get("alive", ())) == {"n1", "n2", "n3"}
               or None, timeout=60, what="n3 back")
