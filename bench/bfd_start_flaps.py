"""BGP flaps at start with BFD toward FRR 8.4: vipcast before and after, BIRD 2 beside them.

Each start is a fresh lab (``tests/bfd/bfdecmp.py``): FRR router ``r`` (bgpd + bfdd, the
neighbours with ``bfd`` and profile 100 ms x 3) and one node ``n1``, which runs

* ``before``: ``vipcast agent`` from ``--before-rev`` (extracted with ``git archive``), BFD
  started with the agent;
* ``after``: ``vipcast agent`` from this tree, BFD started at Established (``docs/bfd.md``);
* ``bird``: BIRD 2 with ``bfd on`` (the reference: another speaker whose BFD starts first).

in two ways: ``cold`` (router and node start together) and ``held`` (TCP 179 dropped in the
router's namespace for 5 s after the node is up, so BFD has time to come up before BGP). After
the session is Established and the router's BFD session toward n1 (the one with the local
address) is Up, the start settles for 5 s; a flap is a ``connectionsDropped`` > 0 in FRR's
``show bgp neighbors``. Starts are interleaved (before, after, bird, ...).

    .venv/bin/python bench/bfd_start_flaps.py [--starts 5] [--before-rev b85d85a] \
        [--speakers before,after,bird] [--modes cold,held]

Prints a table and writes ``bench/bfd_start_flaps.json`` (with the 1-minute load average at the
start and the end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "bfd"))

from agentlab import AgentNode, write_config  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from bfdecmp import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    NODES,
    build,
    start_bird_node,
    start_router,
)

from vipcast.lab.netns import Netns, Topology, wait_until  # noqa: E402

N1 = NODES["n1"]
HOLD = ("add table inet vc_hold179; "
        "add chain inet vc_hold179 in { type filter hook input priority 0; }; "
        "add rule inet vc_hold179 in tcp dport 179 drop; "
        "add rule inet vc_hold179 in tcp sport 179 drop")  # fmt: skip


def extract(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def router_up(frr: Any) -> bool:
    """bfdd's session toward n1 with the local address (after bgpd's hand-over) is up."""
    return any(p.get("peer") == N1 and p.get("local") and p.get("status") == "up"
               for p in frr.bfd_peers())  # fmt: skip


def one_start(speaker: str, mode: str, src: Path | None) -> dict[str, Any]:
    with Topology() as topo:
        r, _sw, nodes = build(topo)
        n1: Netns = nodes["n1"]
        if mode == "held":
            r.run(["nft", HOLD])
        frr = start_router(topo, r)
        t0 = time.monotonic()
        agent = None
        if speaker == "bird":
            start_bird_node(topo, n1, N1)
        else:
            config = topo.workdir / "objects.yaml"
            write_config(config)
            env = {**os.environ, "PYTHONPATH": str(src)} if src is not None else None
            agent = AgentNode.start(topo, n1, "n1", config, env=env)
            wait_until(lambda: bool(agent.bfd().get("state")), timeout=60, what="agent up",
                       on_timeout=topo.logs)  # fmt: skip
        if mode == "held":
            time.sleep(5)
            r.run(["nft", "delete table inet vc_hold179"])
        wait_until(lambda: frr.neighbor_state(N1) == "Established" and router_up(frr),
                   timeout=120, interval=0.2, what="Established, router BFD up",
                   on_timeout=topo.logs)  # fmt: skip
        up_after = time.monotonic() - t0
        time.sleep(5)
        record = frr.neighbors().get(N1, {})
        result = {
            "speaker": speaker, "mode": mode,
            "established": record.get("connectionsEstablished", 0),
            "dropped": record.get("connectionsDropped", 0),
            "reason": (f"{record.get('lastResetDueTo', '')}: "
                       f"{record.get('lastNotificationReason', '')}"),
            "up_after_s": round(up_after, 2),
        }  # fmt: skip
        if agent is not None:
            agent.proc.stop(timeout=10)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--before-rev", default="b85d85a")
    parser.add_argument("--speakers", default="before,after,bird")
    parser.add_argument("--modes", default="cold,held")
    parser.add_argument("--out", default=str(HERE / "bfd_start_flaps.json"))
    args = parser.parse_args()
    speakers = args.speakers.split(",")
    modes = args.modes.split(",")
    load_start = round(os.getloadavg()[0], 1)
    starts: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vc-bfdstart-") as tmp:
        srcs = {"before": extract(args.before_rev, Path(tmp) / "before"), "after": None,
                "bird": None}  # fmt: skip
        for i in range(args.starts):
            for mode in modes:
                for speaker in speakers:
                    result = one_start(speaker, mode, srcs[speaker])
                    result["round"] = i
                    starts.append(result)
                    print(json.dumps(result), flush=True)
    summary = []
    for speaker in speakers:
        for mode in modes:
            runs = [s for s in starts if s["speaker"] == speaker and s["mode"] == mode]
            summary.append({
                "speaker": speaker, "mode": mode, "starts": len(runs),
                "starts_with_a_flap": sum(1 for s in runs if s["dropped"]),
                "drops": sum(int(s["dropped"]) for s in runs),
            })  # fmt: skip
    print(f"\n{'speaker':8} {'mode':5} {'starts':>6} {'flapped':>8} {'drops':>6}")
    for row in summary:
        print(f"{row['speaker']:8} {row['mode']:5} {row['starts']:>6} "
              f"{row['starts_with_a_flap']:>8} {row['drops']:>6}")  # fmt: skip
    document = {
        "bench": "bfd_start_flaps", "when": datetime.now().isoformat(timespec="seconds"),
        "before_rev": args.before_rev, "after_rev": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True).stdout.strip(),
        "load_average_1min": {"start": load_start, "end": round(os.getloadavg()[0], 1)},
        "cpus": os.cpu_count(), "summary": summary, "starts": starts,
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
