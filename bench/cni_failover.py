"""Node power loss beside a BGP-speaking CNI (mode 2, through the node's BIRD) against the
reference lab (vipcast is the node's own speaker): how long the router keeps the dead node.

Both labs: FRR router, 3 nodes, hold time 3 s, BFD 100 ms x 3 between the router and the
node's speaker, graceful restart on. Reference: the router's BFD peer is vipcast's agent.
Mode 2 (``--cni bird``): the router's only neighbor per node and family is the node's BIRD
(calico-node's policy), and the VIPs reach it through that BIRD; BFD runs between FRR and BIRD.
A trial: a client sends a new connection every 10 ms (timeout 0.2 s) to the Cluster VIP; a
node loses power (cable pulled, then agent and BIRD SIGKILLed); measured from the failure
until the router's kernel route to the VIP has lost the node's next hop, until (mode 2) the
node's pod block has left the router's kernel, and until the client recovered (first success
after the last failure). The victim alternates n1/n2 and is brought back before the next
trial. The labs run one after the other in one run; the table prints mode 2 / reference.

    sudo .venv/bin/python bench/cni_failover.py [--trials 10] [--json bench/cni_failover.json]

Everything runs in namespaces vc-<pid>-cf*, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.app.demo import power_off, recovery_time, send, watch_next_hop_gone
from vipcast.app.lab import (
    LabOptions,
    build,
    cni_bird_of,
    node_v4,
    restart_cni_bird,
    router_of,
    start_agent,
    wait_sessions,
)
from vipcast.app.lab_cni import pod_blocks
from vipcast.lab.cni_bird import wait_vipcast_sessions
from vipcast.lab.netns import Netns, wait_until
from vipcast.lab.workload import ClientLoad

WEB = "192.0.2.3"
INTERVAL, TIMEOUT, DURATION = 0.01, 0.2, 4.0


@dataclass
class Figures:
    """Seconds per trial (None: did not happen within the trial)."""

    router_vip: list[float | None] = field(default_factory=list)
    router_pods: list[float | None] = field(default_factory=list)
    client: list[float | None] = field(default_factory=list)


def watch_route_gone(router: Netns, prefix: str, *, since: float,
                     clock: Callable[[], float], until: float) -> float | None:
    """Seconds from ``since`` until ``prefix`` has left the router's kernel table."""
    while clock() < until:
        if router.route(prefix) is None:
            return clock() - since
        time.sleep(0.01)
    return None


def settle(client: Netns) -> None:
    wait_until(lambda: all(s.ok for s in send(client, f"http://{WEB}/", 30, timeout=0.5)) or None,
               timeout=60, interval=0.5, what="the VIP answers again")
    time.sleep(1.0)


def trials(cni: bool, count: int, workdir: Path) -> Figures:
    opts = LabOptions(nodes=3, bfd=True, hold_time=3, workdir=workdir,
                      cni="bird" if cni else "none",
                      prefix=f"vc-{os.getpid()}-cf{'c' if cni else 'r'}")
    topo, state = build(opts)
    figures = Figures()
    with topo:
        wait_sessions(router_of(topo, state), 3, timeout=90)
        router, client = topo["router"], topo["client"]
        for trial in range(count):
            victim = f"n{1 + trial % 2}"
            i = int(victim[1:])
            router.wait_route(f"{WEB}/32", count=3, timeout=90)
            if cni:
                router.wait_route(pod_blocks(i)[0], timeout=60)
            settle(client)
            load = ClientLoad(client, f"http://{WEB}/", duration=DURATION, interval=INTERVAL,
                              timeout=TIMEOUT)
            time.sleep(1.0)
            kill_at = power_off(topo, state, victim, load.now)
            figures.router_vip.append(watch_next_hop_gone(
                router, f"{WEB}/32", node_v4(i), since=kill_at, clock=load.now, until=DURATION))
            if cni:
                figures.router_pods.append(watch_route_gone(
                    router, pod_blocks(i)[0], since=kill_at, clock=load.now, until=DURATION))
            figures.client.append(recovery_time(load.samples(), kill_at)[0])
            # bring the node back: cable, then (mode 2) its BIRD, then its agent
            topo["lan"].set_link(f"p{i}", True)
            if cni:
                restart_cni_bird(topo, state, victim)
            state.pids[f"{victim}-agent"] = start_agent(topo, topo[victim], opts, victim).pid
            wait_sessions(router_of(topo, state), 3, timeout=90)
            if cni:
                wait_vipcast_sessions(cni_bird_of(topo, state, victim), timeout=90)
            pods = f" pods {fmt(figures.router_pods[-1])}" if cni else ""
            print(f"  {'mode 2' if cni else 'reference'} trial {trial + 1}: {victim} router "
                  f"{fmt(figures.router_vip[-1])}{pods} client {fmt(figures.client[-1])}",
                  file=sys.stderr)
    return figures


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def cell(values: list[float | None]) -> str:
    ok = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{fmt(statistics.median(ok))} (max {fmt(max(ok))})" if ok else "-"


def median(values: list[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    count = max(1, min(args.trials, 50))
    results: dict[str, Figures] = {}
    for name, cni in (("reference", False), ("mode2", True)):
        workdir = Path(tempfile.mkdtemp(prefix="vc-bench-cf-"))
        workdir.chmod(0o755)
        try:
            results[name] = trials(cni, count, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    ref, m2 = results["reference"], results["mode2"]
    rows = [("router drops the VIP next hop", ref.router_vip, m2.router_vip),
            ("router drops the pod block", [], m2.router_pods),
            ("client recovered (Cluster VIP)", ref.client, m2.client)]
    print(f"{'node power loss, BFD 100 ms x 3':34} {'reference':>22} {'mode 2 (via BIRD)':>22} "
          f"{'ratio':>6}")
    ratios: dict[str, float | None] = {}
    for label, a, b in rows:
        ma, mb = median(a), median(b)
        ratio = mb / ma if ma and mb else None
        ratios[label] = ratio
        print(f"{label:34} {cell(a):>22} {cell(b):>22} "
              f"{'-' if ratio is None else f'{ratio:.2f}':>6}")
    print("medians over the trials; reference = vipcast's own speaker and BFD towards the "
          "router; mode 2 = the node's BIRD (calico-node's policy) carries vipcast's VIPs")
    if args.json:
        args.json.write_text(json.dumps({
            "trials": count, "request_interval_s": INTERVAL, "request_timeout_s": TIMEOUT,
            "bfd": "100 ms x 3", "ratios_mode2_over_reference": ratios,
            "results": {k: {"router_vip_s": f.router_vip, "router_pod_block_s": f.router_pods,
                            "client_s": f.client} for k, f in results.items()},
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
