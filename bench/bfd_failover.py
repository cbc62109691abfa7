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

    .venv/bin/python bench/bfd_failover.py [--trials 10] [--speakers vipcast,bird] \
        [--agents 0,10000]

Prints a table and writes ``bench/bfd_failover.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "bfd"))

from agentlab import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    AgentNode,
    wait_agents_up,
    write_config,
)
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

#: seconds the session stays Established between trials: past the speaker's stable time
#: (RFC 4271 §8.1.1 damping, ``SessionConfig.stable_time`` 10 s), so each trial is a first
#: drop, not a flapping peer waiting out a growing idle hold (bench/bgp_reconnect.py shows both)
SETTLE = 12.0

#: "BFD 192.0.2.1: UP -> DOWN" and "BFD: peer r down" lines of the agent log, with their times
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?(UP -> DOWN|BFD: peer r down)")


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
                time.sleep(SETTLE if i else 0.0)
                got = trial(r, sw, frr, "n1")
                results.append(got)
                shown = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(got.items()))
                print(f"  {speaker_kind} trial {i + 1}: {shown}", flush=True)
        finally:
            for node in vip_nodes:
                node.stop()
    return summarise(speaker_kind, results)


def node_side(log: str, since: float) -> dict[str, float]:
    """From the cut node's agent log: seconds from ``since`` (wall clock of the cut) until its
    own BFD saw the router go silent (``node_bfd``) and it dropped the BGP session
    (``node_bgp``)."""
    got: dict[str, float] = {}
    for line in log.splitlines():
        found = _LOG_TIME.match(line)
        if found is None:
            continue
        moment = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if moment < since - 0.001:
            continue
        key = "node_bfd" if found.group(2) == "UP -> DOWN" else "node_bgp"
        got.setdefault(key, moment - since)
    return got


def run_agents(trials: int, load: int, reloads: int = 1) -> dict[str, Any]:
    """The same trials with the full ``vipcast agent`` on both nodes; n1 also announces
    ``load`` more routes (its own config file: services from a /18, one ready endpoint each)."""
    kind = f"agent+{load}" if load else "agent"
    with Topology() as topo:
        r, sw, nodes = build(topo)
        frr = start_router(topo, r)
        agents = []
        for short, ns in nodes.items():
            config = topo.workdir / f"objects-{short}.yaml"
            write_config(config, load=load if short == "n1" else 0)
            agents.append(AgentNode.start(topo, ns, short, config))
        n1 = agents[0]
        results = []
        try:
            started = time.monotonic()
            wait_agents_up(agents, timeout=900)
            wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=900, interval=0.5,
                       what=f"{kind}: ECMP route with both nodes",
                       on_timeout=lambda: topo.logs()[-4000:])  # fmt: skip
            wait_until(lambda: all(bfdd_status(frr, a) == "up" for a in NODES.values()),
                       timeout=30, what="bfd up")  # fmt: skip
            up_after = time.monotonic() - started
            received = len(frr.received_prefixes(NODES["n1"]))
            print(f"  {kind}: up after {up_after:.0f} s, router holds {received} prefixes "
                  "from n1", flush=True)  # fmt: skip
            downs_before = _downs(n1)
            for i in range(trials):
                time.sleep(SETTLE if i else 0.0)
                since = time.time()
                got = trial(r, sw, frr, "n1", back_timeout=300)
                got.update(node_side(n1.proc.log_text(), since))
                results.append(got)
                shown = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(got.items()))
                print(f"  {kind} trial {i + 1}: {shown}", flush=True)
            flaps = _downs(n1) - downs_before - trials
            reload = [
                reload_check(n1, topo.workdir / "objects-n1.yaml", load, r, extra=(i + 1) % 2)
                for i in range(reloads)
            ]
        finally:
            for agent in agents:
                agent.proc.stop(timeout=10)
    out = summarise(kind, results)
    out.update(
        routes_from_n1=received, up_after_s=round(up_after, 1), extra_bfd_downs=flaps, reload=reload
    )
    return out


def reload_check(
    node: AgentNode, config: Path, load: int, r: Any, extra: int = 1
) -> dict[str, Any]:
    """Rewrite the node's object file with ``extra`` BGP services more (new mtime: the agent
    reloads and re-plans everything) and watch its BFD session and the router's nexthop until
    the reload is logged done."""
    downs = _downs(node)
    marker = len(node.proc.log_text())
    write_config(config, load=load, extra=extra)
    t0 = time.monotonic()
    lost_nexthop = False
    deadline = t0 + 600
    while time.monotonic() < deadline:
        if NODES["n1"] not in nexthops(r):
            lost_nexthop = True
        if "plan for n1" in node.proc.log_text()[marker:]:
            break
        time.sleep(0.05)
    took = time.monotonic() - t0
    time.sleep(2)
    result = {"reload_s": round(took, 1), "bfd_downs": _downs(node) - downs,
              "nexthop_lost": lost_nexthop}  # fmt: skip
    print(f"  reload of n1's file: {result}", flush=True)
    return result


def _downs(node: AgentNode) -> int:
    """DOWN transitions of the node's BFD session so far (its metrics)."""
    total = 0.0
    for line in node.get("/metrics").splitlines():
        if line.startswith("vipcast_bfd_state_transitions_total{") and 'state="DOWN"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def summarise(kind: str, results: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"speaker": kind, "trials": len(results), "raw": results}
    for key in ("bfdd", "route", "node_bfd", "node_bgp", "back"):
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
    parser.add_argument("--agents", default="",
                        help="also the full agent: comma-separated extra route counts on n1, "
                             "e.g. 0,10000")  # fmt: skip
    parser.add_argument(
        "--reloads",
        type=int,
        default=1,
        help="reloads of n1's file after the agent trials (each changes it)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "bfd_failover.json")
    args = parser.parse_args()
    summaries = []
    trials = min(args.trials, 50)
    for kind in filter(None, args.speakers.split(",")):
        print(f"{kind}: {args.trials} trials", flush=True)
        summaries.append(run(kind, trials))
    for load in filter(None, args.agents.split(",")):
        print(f"agent with {load} extra routes on n1: {trials} trials", flush=True)
        summaries.append(run_agents(trials, min(int(load), 16000), min(args.reloads, 20)))
    print("\nBFD 100 ms x 3, node n1 cut behind the bridge (router link stays up)")
    print(f"{'node speaker':<14}{'bfdd down med/max (ms)':>26}{'nexthop gone med/max (ms)':>30}")
    for s in summaries:
        b, r = s["bfdd"], s["route"]
        print(f"{s['speaker']:<14}{b['median_ms']!s:>14} / {b['max_ms']!s:<9}"
              f"{r['median_ms']!s:>16} / {r['max_ms']!s:<9}")  # fmt: skip
        if s["node_bfd"]["n"]:
            nb, ng, back = s["node_bfd"], s["node_bgp"], s["back"]
            print(f"{'':<14}node's own BFD down {nb['median_ms']} / {nb['max_ms']} ms, BGP "
                  f"dropped {ng['median_ms']} / {ng['max_ms']} ms, table back "
                  f"{back['median_ms']} / {back['max_ms']} ms, "
                  f"unexpected BFD downs {s.get('extra_bfd_downs', 0)}")  # fmt: skip
    args.out.write_text(json.dumps({"bench": "bfd_failover", "results": summaries}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
