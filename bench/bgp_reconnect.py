"""How fast a node's BGP session comes back after BFD dropped it, and who waits for whom.

The lab of ``tests/bfd/agentlab.py``: FRR router ``r`` (bgpd + bfdd + zebra, connect-retry
1 s, BFD 100 ms x 3) and the real ``vipcast agent`` on nodes ``n1`` and ``n2`` behind a bridge.
A trial cuts n1's bridge port until the router's bfdd says Down (the router sends Cease/BFD
Down and n1's agent drops its session on its own BFD Down), waits 0.5-1.5 s more (a seeded
draw, the same for every tree: the restore falls anywhere in the 1 s ConnectRetry cycle),
restores the port, and times from the restore, with ``tcpdump -tt`` in the router's
namespace (TCP 179 and BFD control packets between r and n1):

* ``bfd_up``: the first BFD packet in which the router says Up to n1 again;
* ``syn_r`` / ``syn_n1``: the first TCP SYN to port 179 from the router / from n1, and what
  answered it (SYN-ACK or RST: a refused connection);
* ``open_n1``: the moment n1's OPEN travels (TCP payload from n1 to the router);
* ``back``: both next hops back in the router's kernel (the table re-sent);
* ``since_drop``: the same from the moment the router had dropped n1 (the pause plus ``back``).

Each source tree (``--tree label=path/to/src``, default: this tree as ``after``) gets its own
lab, one after the other in one run, so the figures sit side by side; ``--tree bird=bird`` runs
BIRD 2 on the nodes instead (``tests/bfd/bfdecmp.py``: ``bfd on``, connect retry 1 s, error
wait 1-2 s), the reference. The ratio of the first two medians is printed. Writes
``bench/bgp_reconnect.json`` with the 1-minute load average.

    python bench/bgp_reconnect.py --trials 6 --tree before=/tmp/before/src --tree after=src \
        --tree bird=bird
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
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
    ROUTER,
    bfdd_status,
    build,
    nexthops,
    start_bird_node,
    start_router,
)

from vipcast.lab.netns import Netns, Process, Topology, wait_until  # noqa: E402

N1 = NODES["n1"]
_ADDR_PORT = r"(\d+\.\d+\.\d+\.\d+)\.(\d+)"
_BODY = re.compile(rf"^{_ADDR_PORT} > {_ADDR_PORT}: (.*)$")
_LINE = re.compile(rf"^(\d+\.\d+) IP {_ADDR_PORT} > {_ADDR_PORT}: (.*)$")


def capture(topo: Topology, r: Netns) -> Process:
    """``tcpdump`` on the router's link, line-buffered text with epoch times."""
    flt = f"host {N1} and (tcp port 179 or udp port 3784)"
    proc = r.spawn(["tcpdump", "-i", "eth0", "-n", "-tt", "-l", "-v", "--immediate-mode", flt],
                   name="tcpdump", log_path=topo.workdir / "r-tcpdump.txt")  # fmt: skip
    wait_until(lambda: "listening on" in proc.log_text(), timeout=20, what="tcpdump")
    return proc


def packets(text: str) -> list[tuple[float, str, int, str, int, str]]:
    """(time, src, sport, dst, dport, rest) of each IPv4 packet line (``-v`` puts the IP
    header on its own line first: joined here)."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        head = re.match(r"^(\d+\.\d+) IP \(", line)
        if head and i + 1 < len(lines):
            body = lines[i + 1].strip()
            found = _BODY.match(body)
            if found:
                rest = found.group(5)
                # BFD's decode continues on the following lines
                for extra in lines[i + 2 : i + 6]:
                    if re.match(r"^\d+\.\d+ ", extra):
                        break
                    rest += " " + extra.strip()
                out.append((float(head.group(1)), found.group(1), int(found.group(2)),
                            found.group(3), int(found.group(4)), rest))  # fmt: skip
            continue
        found = _LINE.match(line)
        if found:
            out.append((float(found.group(1)), found.group(2), int(found.group(3)),
                        found.group(4), int(found.group(5)), found.group(6)))  # fmt: skip
    return out


def timeline(text: str, since: float) -> dict[str, Any]:
    """What the capture shows from ``since`` (the restore, epoch seconds)."""
    got: dict[str, Any] = {}
    syns: list[str] = []
    for when, src, sport, _dst, dport, rest in packets(text):
        if when < since:
            continue
        at = round(when - since, 3)
        if 3784 in (sport, dport):
            if src == ROUTER and "State Up" in rest:
                got.setdefault("bfd_up", at)
            continue
        flags = re.search(r"Flags \[([^\]]*)\]", rest)
        flag = flags.group(1) if flags else ""
        if flag == "S":
            who = "r" if src == ROUTER else "n1"
            got.setdefault(f"syn_{who}", at)
            syns.append(f"{at:.3f} SYN {who}")
        elif flag in ("S.", "R.", "R"):
            answer = "SYN-ACK" if flag == "S." else "RST"
            who = "r" if src == ROUTER else "n1"
            syns.append(f"{at:.3f} {answer} {who}")
        payload = re.search(r"length [1-9]", rest) is not None and flag.startswith("P")
        if src == N1 and dport == 179 and payload and "open_n1" not in got:
            got["open_n1"] = at
    got["tcp"] = syns[:16]
    return got


def cut_and_restore(
    r: Netns, sw: Netns, frr: Any, dump: Process, n1: Process, pause: float
) -> dict[str, Any]:
    """One trial: cut n1 until the router dropped it, ``pause`` seconds more, restore, time
    the way back. ``log``: n1's log lines about its BGP peer since the cut (the agent's)."""
    marker = len(n1.log_text())
    sw.set_link("pn1", False)
    wait_until(lambda: bfdd_status(frr, N1) == "down", timeout=30, interval=0.02,
               what="bfdd down")  # fmt: skip
    wait_until(lambda: N1 not in nexthops(r), timeout=30, interval=0.02, what="nexthop gone")
    time.sleep(pause)  # both sides are down; where the restore falls in ConnectRetry's cycle
    restored = time.time()
    sw.set_link("pn1", True)
    wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=300, interval=0.02,
               what="both nexthops back")  # fmt: skip
    back = time.time() - restored
    time.sleep(0.5)
    got = timeline(dump.log_text(), restored)
    got["back"] = round(back, 3)
    got["pause"] = round(pause, 3)
    got["since_drop"] = round(pause + back, 3)  # the router's drop -> both next hops back
    got["log"] = [line[11:200] for line in n1.log_text()[marker:].splitlines()
                  if "peer r " in line or "BFD: peer" in line][:12]  # fmt: skip
    return got


def run(label: str, src: str, trials: int, settle: float, flaps: int) -> dict[str, Any]:
    """``trials`` cuts ``settle`` seconds after the session came back (a stable session), then
    ``flaps`` cuts in a row, each 1 s after the session came back (a flapping peer)."""
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    results: list[dict[str, Any]] = []
    flapped: list[dict[str, Any]] = []
    with Topology() as topo:
        r, sw, nodes = build(topo)
        frr = start_router(topo, r)
        config = topo.workdir / "objects.yaml"
        write_config(config)
        agents: list[AgentNode] = []
        n1: Process
        if src == "bird":  # the reference: BIRD 2 on the nodes (bfdecmp's configuration)
            birds = [start_bird_node(topo, ns, NODES[short]) for short, ns in nodes.items()]
            n1 = birds[0].process
        else:
            agents = [AgentNode.start(topo, ns, short, config, env=env)
                      for short, ns in nodes.items()]  # fmt: skip
            n1 = agents[0].proc

        def up(timeout: float) -> None:
            if agents:
                wait_agents_up(agents, timeout=timeout)
            wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=timeout,
                       interval=0.2, what=f"{label}: ECMP route")  # fmt: skip
            wait_until(lambda: bfdd_status(frr, N1) == "up", timeout=timeout, what="bfd up")

        try:
            up(300)
            dump = capture(topo, r)
            # the restore 0.5-1.5 s after the router dropped n1: every phase of the 1 s
            # ConnectRetry cycle, the same draws for every tree
            pauses = random.Random(11)
            for i in range(trials):
                time.sleep(settle)
                got = cut_and_restore(r, sw, frr, dump, n1, pauses.uniform(0.5, 1.5))
                results.append(got)
                shown = {k: v for k, v in got.items() if k != "log"}
                print(f"  {label} trial {i + 1}: {shown}", flush=True)
                for line in got["log"]:
                    print(f"      {line}", flush=True)
                up(120)
            for i in range(flaps):
                time.sleep(1.0)
                got = cut_and_restore(r, sw, frr, dump, n1, 0.5)
                flapped.append(got)
                print(f"  {label} flap {i + 1}: back {got['back']} s", flush=True)
                up(300)
        finally:
            for agent in agents:
                agent.proc.stop(timeout=10)
    out: dict[str, Any] = {"tree": label, "src": src, "trials": len(results), "raw": results,
                           "flaps_back_s": [x["back"] for x in flapped]}  # fmt: skip
    for key in ("bfd_up", "syn_r", "syn_n1", "open_n1", "back", "since_drop"):
        values = [float(x[key]) for x in results if key in x]
        out[key] = {"n": len(values),
                    "median_s": round(statistics.median(values), 3) if values else None,
                    "max_s": round(max(values), 3) if values else None,
                    "min_s": round(min(values), 3) if values else None}  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[],
                        help="label=path of a source tree (its src/), or label=bird for BIRD 2 "
                             "on the nodes (the reference); repeatable")  # fmt: skip
    parser.add_argument("--settle", type=float, default=12.0,
                        help="seconds Established before each trial's cut (past stable_time)")
    parser.add_argument("--flaps", type=int, default=4,
                        help="cuts in a row after the trials, 1 s after each return")
    parser.add_argument("--out", type=Path, default=HERE / "bgp_reconnect.json")
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in args.tree] or [["after", str(HERE.parent / "src")]]
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    summaries: list[dict[str, Any]] = []

    def write() -> None:  # after every tree: a later failure keeps what was measured
        args.out.write_text(json.dumps({"bench": "bgp_reconnect", "load_1min": load,
                                        "load_1min_end": os.getloadavg()[0], "started": started,
                                        "ended": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                               time.gmtime()),
                                        "results": summaries}, indent=2) + "\n")  # fmt: skip

    for label, src in trees:
        summaries.append(run(label, src, min(args.trials, 30), args.settle, min(args.flaps, 8)))
        write()
    print("\nBFD Down drops BGP; n1's port restored: seconds from the restore (median / max)")
    for s in summaries:
        shown = "  ".join(f"{k} {s[k]['median_s']}/{s[k]['max_s']}"
                          for k in ("bfd_up", "syn_r", "syn_n1", "back", "since_drop"))  # fmt: skip
        print(f"{s['tree']:<10}{shown}  flaps in a row: back {s['flaps_back_s']}")
    medians = [s["back"]["median_s"] for s in summaries]
    for s, median in zip(summaries[1:], medians[1:], strict=True):
        if medians[0] and median:
            print(f"back: {summaries[0]['tree']} / {s['tree']} = {medians[0] / median:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
