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
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import power_loss
from power_loss import DURATION, INTERVAL, TIMEOUT, Figures, fmt, median

from vipcast.app.lab.topology import (
    LabOptions,
    LabState,
    build,
    node_v4,
    node_v6,
    restart_cni_bird,
    router_of,
    start_agent,
    vipcast_v4,
    vipcast_v6,
    wait_sessions,
)
from vipcast.lab.frr import FrrInstance
from vipcast.lab.netns import Topology


@dataclass
class SeparateFigures(Figures):
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
        restart_cni_bird(topo, state, node)
    state.pids[f"{node}-agent"] = start_agent(topo, topo[node], opts, node).pid
    router_of(topo, state).wait_established(*speakers(opts, i), timeout=90)


def trials(opts: LabOptions, count: int) -> SeparateFigures:
    topo, state = build(opts)
    figures = SeparateFigures()
    with topo:
        frr = router_of(topo, state)
        assert isinstance(frr, FrrInstance)
        wait_sessions(frr, opts.nodes, timeout=90)
        frr.wait_established(*(a for i in range(1, 4) for a in speakers(opts, i)), timeout=90)
        cni = opts.cni == "bird"
        for trial in range(count):
            victim = 1 + trial % 2
            survivors = [a for i in range(1, 4) if i != victim for a in speakers(opts, i)]
            hop = vipcast_v4(victim) if cni else node_v4(victim)
            power_loss.ready(topo, victim, pods=cni)
            drops = dropped(frr, survivors)
            figures.add(power_loss.trial(topo, state, victim, hop, pods=cni), pods=cni)
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
                  f"{fmt(figures.client[-1])} (load {load_avg:.1f})", file=sys.stderr)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    count = min(args.trials, 50)
    results: dict[str, SeparateFigures] = {}
    for name, cni in (("mode1", "bird"), ("reference", "none")):
        with power_loss.workdir("cs") as workdir:
            opts = LabOptions(nodes=3, bfd=True, hold_time=3, workdir=workdir,
                              cni="bird" if cni == "bird" else "none", coexist="separate",
                              prefix=f"vc-{os.getpid()}-cs{name[0]}")
            results[name] = trials(opts, count)
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
