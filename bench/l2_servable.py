"""L2 ownership that follows servability: full agents (``vipcast agent``) on a namespaced LAN,
one local backend per node, ``externalTrafficPolicy: Local``. Per trial the owner's only
backend is stopped (health check: tcp, interval 0.3 s, fall 2), or its endpoint is marked not
ready in the config file (a plan change, picked up by polling every 0.2 s), while a client sends
an HTTP GET every 20 ms; measured is the time from the event to the first request answered
through the next candidate, and the requests that failed in between.

    sudo .venv/bin/python bench/l2_servable.py [--trials 5] [--json out.json]

Runs in its own namespaces (vc-<pid>-l2s*), deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "l2"))

from agent_lan import AgentLan, parse_attempts

from vipcast.lab.netns import Topology

PROBE_SECONDS = 6.0
PRE_EVENT = 1.0


def trial(kind: str, index: int) -> dict[str, Any]:
    with Topology(f"vc-{os.getpid()}-l2s{index}") as topo:
        lan = AgentLan(topo).build()
        first, second = lan.candidates()[:2]
        lan.start_all()
        lan.wait_sole_owner(first)
        probe = lan.start_probe(period=0.02, duration=PROBE_SECONDS)
        time.sleep(PRE_EVENT)
        if kind == "backend-killed":
            event = lan.stop_backend(first)
        else:
            event = time.time()
            lan.set_ready(first, False)
        probe.popen.wait(PROBE_SECONDS + 30)
        attempts = parse_attempts(probe.log_text())
        moved = next((a for a in attempts if a.node == second and a.sent > event), None)
        failed = [a for a in attempts if a.sent > event and a.node is None
                  and (moved is None or a.sent < moved.sent)]
        return {
            "seconds": None if moved is None else moved.sent - event,
            "failed_requests": len(failed),
            "answered_by_others": sorted({a.node for a in attempts if a.sent > event
                                          and a.node not in (None, first, second)}),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for kind in ("backend-killed", "endpoint-not-ready"):
        runs = [trial(kind, i + (0 if kind == "backend-killed" else 100))
                for i in range(max(1, min(args.trials, 20)))]
        times = [r["seconds"] for r in runs if r["seconds"] is not None]
        figures[kind] = {
            "trials": len(runs),
            "moved": len(times),
            "median_s": statistics.median(times) if times else None,
            "max_s": max(times) if times else None,
            "failed_requests_median": statistics.median(r["failed_requests"] for r in runs),
            "runs": runs,
        }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
