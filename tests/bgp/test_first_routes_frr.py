"""A first start without the start cache, at FRR 8.4 as the graceful-restart helper (RFC 4724).

The agent is killed (``kill -9``: no NOTIFICATION) and started again with nothing cached: its
first routes go out from the allocation alone (:mod:`vipcast.core.first_routes`) before the
rest of its plan is made. FRR keeps the stale paths meanwhile, and the restarted agent must send
every route before its End-of-RIB: an End-of-RIB first (an empty table) would make FRR flush
the stale paths and install them again. ``ip monitor route`` in the router's namespace sees
every kernel change: not one of the VIPs' routes may be deleted across the restart, and every
path ends up fresh (End-of-RIB received), with the same set of prefixes. (That the monitor
sees deletions is checked at the end: a stopped agent withdraws every route.)
"""

from __future__ import annotations

import time

import pytest
from test_interop_frr import NODES, build, write_config

from vipcast.lab.netns import Topology, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

SERVICES = [f"s{i:02d}" for i in range(12)]  # 12 of the pool's 16 addresses: 12 routes


def test_a_cold_restart_keeps_every_path_until_its_routes_are_in(netlab: Topology) -> None:
    lab = build(netlab, ["n1"])
    write_config(lab.config, SERVICES, ["n1"])
    node = NODES["n1"][0]
    agent = lab.start_agent("n1")
    lab.frr.wait_established(node, timeout=60)

    def fresh() -> set[str] | None:
        routes = lab.frr.routes()
        if len(routes) < len(SERVICES) or any(p.stale for ps in routes.values() for p in ps):
            return None
        return set(routes)

    before = wait_until(fresh, timeout=60, what="every route at FRR")
    assert before is not None and len(before) == len(SERVICES)
    monitor = lab.router.spawn(["ip", "-o", "monitor", "route"], name="route-monitor")
    # the monitor listens once it reports a change made after its start: a marker route is
    # added and removed until it does (a fixed 0.5 s was a guess: a monitor started late on a
    # loaded machine would miss a flush at the kill)
    marker = "198.51.100.254"

    def listening() -> bool:
        lab.router.ip("route", "replace", "blackhole", f"{marker}/32")
        lab.router.ip("route", "del", "blackhole", f"{marker}/32")
        return marker in monitor.log_text()

    wait_until(listening, timeout=30, interval=0.1, what="the route monitor listening",
               on_timeout=monitor.log_text)  # fmt: skip

    agent.kill()  # kill -9: FRR keeps the paths, stale, for the restart time
    wait_until(lambda: lab.frr.neighbor_state(node) != "Established", timeout=60,
               what="the session down")
    restarted = lab.start_agent("n1")
    lab.frr.wait_established(node, timeout=60)
    after = wait_until(fresh, timeout=60, what="every path fresh again (End-of-RIB)")
    time.sleep(1.0)  # a late flush would show in the monitor now
    across = monitor.log_text().splitlines()

    assert after == before
    assert not deleted(across), deleted(across)
    log = restarted.log_text()
    assert "R-bit" in log  # the restarted agent announced the restart (RFC 4724)
    assert "peers (first routes)" in log  # its routes went out before the rest of its plan
    # the monitor does see deletions: a stopped agent withdraws every route
    restarted.stop()
    wait_until(lambda: not lab.frr.routes(), timeout=60, what="the routes withdrawn")
    wait_until(lambda: len(deleted(monitor.log_text().splitlines()[len(across):]))
               >= len(SERVICES), timeout=30, what="the monitor's deletions")
    monitor.stop()


def deleted(lines: list[str]) -> list[str]:
    """The monitor's lines deleting a VIP's route."""
    return [line for line in lines if line.startswith("Deleted") and "203.0.113." in line]
