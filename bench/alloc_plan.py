"""Allocate and plan 10,000 services over 50 pools and 50 nodes; print times and peak memory.

    .venv/bin/python bench/alloc_plan.py [--services 10000] [--pools 50] [--nodes 50]

Pools alternate IPv4 /24s and dual-stack pools (an IPv4 /24 plus an IPv6 /64); a third of the
services are dual stack, a tenth use externalTrafficPolicy Local, every fifth shares an address.
Half the pools are announced over BGP (2 peers), half over L2. Goal: clearly under 1 s for
allocate + one node's plan. The headline is "agent planner": the agent's own planning step
(``run_planner(default_planner, ...)``, as ``Agent.load`` runs it, cyclic GC paused); the
steps after it run with the collector on and the loaded spec frozen. Compare CPU times: a busy
machine stretches wall time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import time
from typing import Any

from vipcast.app.agent import default_planner, run_planner
from vipcast.core.allocation import allocate_spec
from vipcast.core.plan import plan_all, plan_node
from vipcast.spec import Spec, load_documents

V = "vipcast.io/v1beta1"


def documents(services: int, pools: int, nodes: int) -> list[tuple[str, dict[str, Any]]]:
    docs: list[dict[str, Any]] = []
    for i in range(pools):
        addresses = [f"198.18.{i}.0/24"]
        if i % 2:
            addresses.append(f"2001:db8:{i:x}::/64")
        docs.append({"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": f"p{i}"},
                     "spec": {"addresses": addresses, "avoidBuggyIPs": True,
                              "serviceAllocation": {"priority": i % 5}}})
    for name in ("tor-a", "tor-b"):
        docs.append({"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": name},
                     "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}})
    half = [f"p{i}" for i in range(pools // 2)]
    rest = [f"p{i}" for i in range(pools // 2, pools)]
    docs.append({"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "bgp"},
                 "spec": {"ipAddressPools": half, "communities": ["65000:1"]}})
    docs.append({"apiVersion": V, "kind": "L2Advertisement", "metadata": {"name": "l2"},
                 "spec": {"ipAddressPools": rest}})
    for n in range(nodes):
        docs.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{n}"}})
    for s in range(services):
        ns, name = f"ns{s % 20}", f"svc-{s}"
        meta: dict[str, Any] = {"name": name, "namespace": ns}
        spec: dict[str, Any] = {"type": "LoadBalancer", "selector": {"app": name},
                                "ports": [{"name": "http", "port": 80 + (s % 5)}]}
        if s % 3 == 0:
            spec |= {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}
        if s % 10 == 1:
            spec["externalTrafficPolicy"] = "Local"
        if s % 5 == 2:
            meta["annotations"] = {"vipcast.io/allow-shared-ip": f"share-{s % 7}"}
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})
        docs.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [f"10.{s // 65536}.{s // 256 % 256}.{s % 256}"],
                           "nodeName": f"node-{s % nodes}"},
                          {"addresses": [f"10.128.{s // 256 % 256}.{s % 256}"],
                           "nodeName": f"node-{(s + 1) % nodes}"}],
        })
    return [("bench", d) for d in docs]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed(label: str, fn: Any, figures: dict[str, Any]) -> Any:
    before = peak_rss_mb()
    start = time.perf_counter()
    cpu = time.process_time()
    out = fn()
    took = time.perf_counter() - start
    cpu_took = time.process_time() - cpu
    peak = peak_rss_mb()
    print(f"{label:<34} {took * 1000:9.1f} ms (cpu {cpu_took * 1000:7.1f})   "
          f"peak RSS so far {peak:7.1f} MB (+{peak - before:.1f})")
    figures[label] = {"ms": round(took * 1000, 1), "cpu_ms": round(cpu_took * 1000, 1),
                      "peak_rss_mb": round(peak, 1), "peak_rss_growth_mb": round(peak - before, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--all-nodes", action="store_true", help="also time plan_all")
    parser.add_argument("--out", help="write the figures as JSON to this file")
    args = parser.parse_args()
    docs = documents(args.services, args.pools, args.nodes)
    spec: Spec = load_documents(docs)  # not timed: the spec loader is not under test here
    print(f"{args.services} services, {args.pools} pools, {args.nodes} nodes")
    figures: dict[str, Any] = {
        "services": args.services, "pools": args.pools, "nodes": args.nodes,
        # a busy machine stretches wall time: the CPU figures are the ones to compare
        "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    # the agent's own step, right after the load: allocate and plan this node with the
    # cyclic GC paused (Agent.load runs its planner through run_planner)
    timed("agent planner (allocate + plan)",
          lambda: run_planner(default_planner, spec, "node-0"), figures)
    # the steps below run with the collector on, the loaded spec frozen out of its sight (as
    # the figures before the agent paused it were measured)
    gc.collect()
    gc.freeze()
    first = timed("allocate (empty state)", lambda: allocate_spec(spec), figures)
    again = timed(
        "allocate (restart from state)", lambda: allocate_spec(spec, first.current()), figures
    )
    if again.current() != first.current():
        print("WARNING: a restart from the state changed assignments")
    plan = timed(
        "plan_node (one node)", lambda: plan_node(spec, first.current(), "node-0"), figures
    )
    steps = (figures["allocate (empty state)"], figures["plan_node (one node)"])
    total, total_cpu = (round(sum(f[k] for f in steps), 1) for k in ("ms", "cpu_ms"))
    figures["allocate + plan_node"] = {"ms": total, "cpu_ms": total_cpu}
    print(f"{'allocate + plan_node':<34} {total:9.1f} ms (cpu {total_cpu:7.1f})")
    granted = sum(1 for a in first.assignments.values() if a.ok)
    print(f"granted {granted}/{args.services}; node-0: {len(plan.bgp)} routes, "
          f"{len(plan.l2)} L2 duties, {len(plan.nat)} NAT rules")
    if args.all_nodes:
        timed("plan_all (every node)", lambda: plan_all(spec, first.current()), figures)
    if args.out:
        with open(args.out, "w") as out:
            json.dump(figures, out, indent=2)
            out.write("\n")


if __name__ == "__main__":
    main()
