"""Node power loss beside a BGP-speaking CNI (mode 2, through the node's BIRD; mode 3, handed
to the node's BIRD) against the reference lab (vipcast is the node's own speaker): how long
the router keeps the dead node.

All labs: FRR router, 3 nodes, hold time 3 s, BFD 100 ms x 3 between the router and the
node's speaker, graceful restart on. Reference: the router's BFD peer is vipcast's agent.
Mode 2 (``--cni bird``): the router's only neighbor per node and family is the node's BIRD
(calico-node's policy), and the VIPs reach it through that BIRD; BFD runs between FRR and BIRD.
Mode 3 (``--cni bird --coexist handoff``): the same BIRD announces the VIPs the agent wrote into
its include file; vipcast speaks no BGP.
A trial: a client sends a new connection every 10 ms (timeout 0.2 s) to the Cluster VIP; a
node loses power (cable pulled, then agent and BIRD SIGKILLed); measured from the failure
until the router's kernel route to the VIP has lost the node's next hop, until (mode 2) the
node's pod block has left the router's kernel, and until the client recovered (first success
after the last failure). The victim alternates n1/n2 and is brought back before the next
trial. The labs run one after the other in one run; the table prints mode / reference.

    sudo .venv/bin/python bench/cni_failover.py [--trials 10] [--json bench/cni_failover.json]

Everything runs in namespaces vc-<pid>-cf*, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import power_loss
from power_loss import INTERVAL, TIMEOUT, Figures, fmt, median

from vipcast.app.lab.cni import CoexistMode
from vipcast.app.lab.topology import (
    LabOptions,
    build,
    cni_bird_of,
    node_v4,
    restart_cni_bird,
    router_of,
    start_agent,
    wait_sessions,
)
from vipcast.lab.cni_bird import wait_vipcast_sessions


def trials(coexist: CoexistMode | None, count: int, workdir: Path) -> Figures:
    cni = coexist is not None
    opts = LabOptions(nodes=3, bfd=True, hold_time=3, workdir=workdir,
                      cni="bird" if cni else "none", coexist=coexist or "daemon",
                      prefix=f"vc-{os.getpid()}-cf{(coexist or 'ref')[0]}")
    topo, state = build(opts)
    figures = Figures()
    with topo:
        wait_sessions(router_of(topo, state), 3, timeout=90)
        for trial in range(count):
            victim = f"n{1 + trial % 2}"
            i = int(victim[1:])
            power_loss.ready(topo, i, pods=cni)
            figures.add(power_loss.trial(topo, state, i, node_v4(i), pods=cni), pods=cni)
            # bring the node back: cable, then (mode 2) its BIRD, then its agent
            topo["lan"].set_link(f"p{i}", True)
            if cni:
                restart_cni_bird(topo, state, victim)
            state.pids[f"{victim}-agent"] = start_agent(topo, topo[victim], opts, victim).pid
            wait_sessions(router_of(topo, state), 3, timeout=90)
            if coexist == "daemon":
                wait_vipcast_sessions(cni_bird_of(topo, state, victim), timeout=90)
            pods = f" pods {fmt(figures.router_pods[-1])}" if cni else ""
            print(f"  {coexist or 'reference'} trial {trial + 1}: {victim} router "
                  f"{fmt(figures.router_vip[-1])}{pods} client {fmt(figures.client[-1])}",
                  file=sys.stderr)
    return figures


def cell(values: list[float | None]) -> str:
    ok = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{fmt(statistics.median(ok))} (max {fmt(max(ok))})" if ok else "-"


def ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    count = max(1, min(args.trials, 50))
    results: dict[str, Figures] = {}
    modes: tuple[tuple[str, CoexistMode | None], ...] = (
        ("reference", None), ("mode2", "daemon"), ("mode3", "handoff"))
    for name, coexist in modes:
        with power_loss.workdir("cf") as workdir:
            results[name] = trials(coexist, count, workdir)
    ref, m2, m3 = results["reference"], results["mode2"], results["mode3"]
    rows = [("router drops the VIP next hop", ref.router_vip, m2.router_vip, m3.router_vip),
            ("router drops the pod block", [], m2.router_pods, m3.router_pods),
            ("client recovered (Cluster VIP)", ref.client, m2.client, m3.client)]
    print(f"{'node power loss, BFD 100 ms x 3':32} {'reference':>21} {'mode 2 (via BIRD)':>21} "
          f"{'ratio':>5} {'mode 3 (hand-off)':>21} {'ratio':>5}")
    ratios: dict[str, dict[str, float | None]] = {}
    for label, a, b, c in rows:
        ma = median(a)
        r2 = (median(b) or 0) / ma if ma and median(b) else None
        r3 = (median(c) or 0) / ma if ma and median(c) else None
        ratios[label] = {"mode2": r2, "mode3": r3}
        print(f"{label:32} {cell(a):>21} {cell(b):>21} {ratio_text(r2):>5} {cell(c):>21} "
              f"{ratio_text(r3):>5}")
    print("medians over the trials (ratio = mode / reference); reference = vipcast's own "
          "speaker and BFD towards the router; mode 2 = the node's BIRD (calico-node's policy) "
          "carries vipcast's VIPs; mode 3 = the same BIRD announces what the agent handed it")
    if args.json:
        args.json.write_text(json.dumps({
            "trials": count, "request_interval_s": INTERVAL, "request_timeout_s": TIMEOUT,
            "bfd": "100 ms x 3", "ratios_over_reference": ratios,
            "results": {k: {"router_vip_s": f.router_vip, "router_pod_block_s": f.router_pods,
                            "client_s": f.client} for k, f in results.items()},
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
