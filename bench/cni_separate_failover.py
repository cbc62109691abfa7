"""Node power loss beside a BGP-speaking CNI, mode 1 ("separate identity", docs/cni.md), against
the reference lab (vipcast is the node's only speaker): how long the router keeps the dead node.

Both labs: FRR router, 3 nodes, hold time 3 s, BFD 100 ms x 3 between the router and vipcast's
agent, graceful restart on. Mode 1 (``--cni bird --coexist separate``): every node also runs
the calico-style BIRD (pod block, its own session per family with BFD 100 ms x 3), and vipcast
peers the router from a second node address: the router has two neighbors per node and family.
A trial: a client sends a new connection every 10 ms (timeout 0.2 s) to the Cluster VIP; a
node loses power (cable pulled, then agent and BIRD SIGKILLed); measured from the failure
until the router's kernel route to the VIP lost the node's next hop, (mode 1) until the node's
pod block left the router's kernel, and until the client recovered (first success after the
last failure). The victim alternates n1/n2 and is brought back before the next trial; the
surviving nodes' router sessions are counted (established/dropped) before and after each
trial. Both labs run one after the other in one run; the table prints mode 1 / reference.

    sudo .venv/bin/python bench/cni_separate_failover.py [--trials 10] \
        [--json bench/cni_separate_failover.json]

Everything runs in namespaces vc-<pid>-cs*, removed afterwards.
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
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.app.demo import power_off, recovery_time, send, watch_next_hop_gone
from vipcast.app.lab import (
    LabOptions,
    LabState,
    build,
    node_cni_config,
    node_v4,
    node_v6,
    router_of,
    start_agent,
    vipcast_v4,
    vipcast_v6,
    wait_sessions,
)
from vipcast.app.lab_cni import pod_blocks
from vipcast.lab.cni_bird import start_cni_bird
from vipcast.lab.frr import FrrInstance
from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.lab.workload import ClientLoad

WEB = "192.0.2.3"
INTERVAL, TIMEOUT, DURATION = 0.01, 0.2, 4.0


@dataclass
class Figures:
    """Seconds per trial (None: did not happen within the trial)."""

    router_vip: list[float | None] = field(default_factory=list)
    router_pods: list[float | None] = field(default_factory=list)
    client: list[float | None] = field(default_factory=list)
    #: router sessions of the surviving nodes that dropped during a trial (should be 0)
    survivor_drops: list[int] = field(default_factory=list)
    #: for each such drop: (trial, neighbor, FRR's reset reason)
    survivor_reasons: list[tuple[int, str, str]] = field(default_factory=list)
    #: the machine's 1-minute load average at the end of each trial (2 shared cores)
    load: list[float] = field(default_factory=list)


def speakers(opts: LabOptions, i: int) -> tuple[str, ...]:
    """The router's neighbors of node ``i``."""
    cni = (node_v4(i), node_v6(i))
    return (*cni, vipcast_v4(i), vipcast_v6(i)) if opts.cni == "bird" else cni


def dropped(frr: FrrInstance, addresses: list[str]) -> dict[str, int]:
    n = frr.neighbors()
    return {a: int(n[a].get("connectionsDropped", 0)) for a in addresses}


def reason(frr: FrrInstance, address: str) -> str:
    record = frr.neighbors().get(address, {})
    return f"{record.get('lastResetDueTo', '')} {record.get('lastNotificationReason', '')}"


def bring_back(topo: Topology, state: LabState, opts: LabOptions, node: str) -> None:
    """Cable in; the node's BIRD (mode 1) and agent started again; its sessions back up."""
    i = int(node[1:])
    topo["lan"].set_link(f"p{i}", True)
    if opts.cni == "bird":
        bird = start_cni_bird(topo[node], node_cni_config(opts, i),
                              Path(state.workdir) / f"cni-{node}")
        state.pids[f"{node}-cni-bird"] = bird.pid
    state.pids[f"{node}-agent"] = start_agent(topo, topo[node], opts, node).pid
    router_of(topo, state).wait_established(*speakers(opts, i), timeout=90)


def settle(client: Netns, url: str) -> None:
    wait_until(lambda: all(s.ok for s in send(client, url, 30, timeout=0.5)) or None,
               timeout=60, interval=0.5, what=f"{url} answers again")
    time.sleep(1.0)


def trials(opts: LabOptions, count: int) -> Figures:
    topo, state = build(opts)
    figures = Figures()
    with topo:
        frr = router_of(topo, state)
        assert isinstance(frr, FrrInstance)
        wait_sessions(frr, opts.nodes, timeout=90)
        frr.wait_established(*(a for i in range(1, 4) for a in speakers(opts, i)), timeout=90)
        router, client = topo["router"], topo["client"]
        for trial in range(count):
            victim = 1 + trial % 2
            survivors = [a for i in range(1, 4) if i != victim for a in speakers(opts, i)]
            hop = vipcast_v4(victim) if opts.cni == "bird" else node_v4(victim)
            router.wait_route(f"{WEB}/32", count=3, timeout=60)
            if opts.cni == "bird":
                router.wait_route(pod_blocks(victim)[0], timeout=60)
            settle(client, f"http://{WEB}/")
            drops = dropped(frr, survivors)
            load = ClientLoad(client, f"http://{WEB}/", duration=DURATION, interval=INTERVAL,
                              timeout=TIMEOUT)
            time.sleep(1.0)
            kill_at = power_off(topo, state, f"n{victim}", load.now)
            figures.router_vip.append(watch_next_hop_gone(
                router, f"{WEB}/32", hop, since=kill_at, clock=load.now, until=DURATION))
            if opts.cni == "bird":
                block = pod_blocks(victim)[0]
                while load.now() < DURATION and router.route(block) is not None:
                    time.sleep(0.01)
                figures.router_pods.append(load.now() - kill_at if router.route(block) is None
                                           else None)
            rec, _ = recovery_time(load.samples(), kill_at)
            figures.client.append(rec)
            after = dropped(frr, survivors)
            moved = [a for a in survivors if after[a] != drops[a]]
            figures.survivor_drops.append(sum(after[a] - drops[a] for a in moved))
            figures.survivor_reasons += [(trial + 1, a, reason(frr, a)) for a in moved]
            bring_back(topo, state, opts, f"n{victim}")
            load_avg = os.getloadavg()[0]
            figures.load.append(round(load_avg, 1))
            print(f"  {'mode 1' if opts.cni == 'bird' else 'reference'} trial {trial + 1}: "
                  f"n{victim} router VIP {fmt(figures.router_vip[-1])} pods "
                  f"{fmt(figures.router_pods[-1]) if figures.router_pods else '-'} client "
                  f"{fmt(rec)} (load {load_avg:.1f})", file=sys.stderr)
    return figures


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def median(values: list[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    count = min(args.trials, 50)
    results: dict[str, Figures] = {}
    for name, cni in (("mode1", "bird"), ("reference", "none")):
        workdir = Path(tempfile.mkdtemp(prefix="vc-bench-cs-"))
        workdir.chmod(0o755)
        opts = LabOptions(nodes=3, bfd=True, hold_time=3, workdir=workdir,
                          cni="bird" if cni == "bird" else "none", coexist="separate",
                          prefix=f"vc-{os.getpid()}-cs{name[0]}")
        try:
            results[name] = trials(opts, count)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    m, r = results["mode1"], results["reference"]
    print(f"{'':34} {'mode 1':>10} {'reference':>10} {'ratio':>7}")
    for label, a, b in (("router drops the VIP next hop", m.router_vip, r.router_vip),
                        ("client recovered", m.client, r.client)):
        ma, mb = median(a), median(b)
        ratio = f"{ma / mb:.2f}" if ma is not None and mb else "-"
        print(f"{label + ' (median)':34} {fmt(ma):>10} {fmt(mb):>10} {ratio:>7}")
    print(f"{'router drops the pod block (CNI)':34} {fmt(median(m.router_pods)):>10}")
    print(f"max router VIP drop: mode 1 {fmt(max((v for v in m.router_vip if v), default=None))}"
          f", reference {fmt(max((v for v in r.router_vip if v), default=None))}; missed "
          f"(not within {DURATION:g} s): {sum(v is None for v in m.router_vip)} / "
          f"{sum(v is None for v in r.router_vip)}; survivors' sessions dropped: "
          f"{sum(m.survivor_drops)} / {sum(r.survivor_drops)}")
    if args.json:
        args.json.write_text(json.dumps({
            "trials": count, "request_interval_s": INTERVAL, "request_timeout_s": TIMEOUT,
            "bfd": "100 ms x 3", "hold_time_s": 3,
            "results": {k: {"router_vip_s": f.router_vip, "router_pods_s": f.router_pods,
                            "client_s": f.client, "survivor_session_drops": f.survivor_drops,
                            "survivor_drop_reasons": f.survivor_reasons,
                            "load_average": f.load,
                            "router_vip_median_s": median(f.router_vip),
                            "client_median_s": median(f.client)}
                        for k, f in results.items()},
            "ratio_mode1_to_reference": {
                "router_vip": _ratio(median(m.router_vip), median(r.router_vip)),
                "client": _ratio(median(m.client), median(r.client))},
        }, indent=2) + "\n")


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


if __name__ == "__main__":
    main()
