"""Failover with BFD 100 ms x 3: how long until the router's kernel drops a cut node's nexthop.

Topology (namespaces under ``vc-<pid>-``): router ``r`` runs FRR (bgpd + bfdd + zebra, ECMP);
nodes ``n1`` and ``n2`` each announce 198.51.100.10/32 over eBGP with BFD; all three hang off a
bridge in ``sw``. A trial cuts n1's bridge port (the router's own link stays up, so only BFD can
tell) and measures, by polling the router's kernel table and bfdd, the time until

* bfdd reports the peer down, and
* the kernel route loses n1's nexthop (bgpd dropped the session, zebra withdrew the path).

Then the port comes back and the trial waits for both nexthops again. The node speaker is
either vipcast (its BGP speaker plus its BFD runtime, in-process, each node on its own event
loop inside its namespace) or BIRD 2 (BGP with ``bfd on``), for a side-by-side figure.

    .venv/bin/python bench/bfd_failover.py [--trials 10] [--speakers vipcast,bird]

Prints a table and writes ``bench/bfd_failover.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "bfd"))

from bfdecmp import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    NODES,
    VipcastNode,
    bfdd_status,
    build,
    nexthops,
    start_bird_node,
    start_router,
    trial,
)

from vipcast.lab.netns import Topology, wait_until  # noqa: E402


def run(speaker_kind: str, trials: int) -> dict[str, Any]:
    with Topology() as topo:
        r, sw, nodes = build(topo)
        frr = start_router(topo, r)
        vip_nodes: list[VipcastNode] = []
        try:
            for short, ns in nodes.items():
                if speaker_kind == "vipcast":
                    vip_nodes.append(VipcastNode.start(ns, NODES[short]))
                else:
                    start_bird_node(topo, ns, NODES[short])
            wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=90, interval=0.2,
                       what=f"{speaker_kind}: ECMP route with both nodes",
                       on_timeout=lambda: topo.logs()[-4000:])  # fmt: skip
            wait_until(lambda: all(bfdd_status(frr, a) == "up" for a in NODES.values()),
                       timeout=30, what="bfd up")  # fmt: skip
            results = []
            for i in range(trials):
                got = trial(r, sw, frr, "n1")
                results.append(got)
                shown = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(got.items()))
                print(f"  {speaker_kind} trial {i + 1}: {shown}", flush=True)
        finally:
            for node in vip_nodes:
                node.stop()
    return summarise(speaker_kind, results)


def summarise(kind: str, results: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"speaker": kind, "trials": len(results), "raw": results}
    for key in ("bfdd", "route"):
        values = [r[key] * 1000 for r in results if key in r]
        out[key] = {
            "n": len(values),
            "median_ms": round(statistics.median(values), 1) if values else None,
            "max_ms": round(max(values), 1) if values else None,
            "min_ms": round(min(values), 1) if values else None,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--speakers", default="vipcast,bird")
    parser.add_argument("--out", type=Path, default=HERE / "bfd_failover.json")
    args = parser.parse_args()
    summaries = []
    for kind in args.speakers.split(","):
        print(f"{kind}: {args.trials} trials", flush=True)
        summaries.append(run(kind, min(args.trials, 50)))
    print("\nBFD 100 ms x 3, node n1 cut behind the bridge (router link stays up)")
    print(f"{'node speaker':<14}{'bfdd down med/max (ms)':>26}{'nexthop gone med/max (ms)':>30}")
    for s in summaries:
        b, r = s["bfdd"], s["route"]
        print(f"{s['speaker']:<14}{b['median_ms']!s:>14} / {b['max_ms']!s:<9}"
              f"{r['median_ms']!s:>16} / {r['max_ms']!s:<9}")  # fmt: skip
    args.out.write_text(json.dumps({"bench": "bfd_failover", "results": summaries}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
