"""L2 failover benchmark: the owner of a VIP is killed (SIGKILL) or its cable cut (link down)
while a client sends a UDP request every 10 ms; measured is the time from the failure to the
first request answered by the new owner. Median and max over N trials per failure kind.

    sudo .venv/bin/python bench/l2_failover.py [--trials 10] [--json out.json]

Runs in its own namespaces (vc-<pid>-l2b*), deleted afterwards. Goal: ≤ 1 s median, ≤ 2 s max.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "l2"))

from l2_lan import VIP4, L2Lan, parse_probe

from vipcast.lab.netns import Topology

#: a probe runs this long; the failure happens PRE_FAILURE seconds into it
PROBE_SECONDS = 4.0
PRE_FAILURE = 1.0


def trial(lan: L2Lan, kind: str) -> float | None:
    """One failure of n1 with n2 expected to take over; seconds to the first answer by n2."""
    lan.start_all()
    probe = lan.start_probe(VIP4, period=0.01, duration=PROBE_SECONDS)
    time.sleep(PRE_FAILURE)
    failed_at = lan.kill("n1") if kind == "sigkill" else lan.cable("n1", up=False)
    probe.popen.wait(PROBE_SECONDS + 30)
    result = parse_probe(probe.log_text())
    first = result.first_from("n2", after=failed_at)
    # reset for the next trial: every agent stopped, n1's cable back
    for node, proc in lan.agents.items():
        if proc.alive():
            proc.stop()
        if kind == "linkdown" and node == "n1":
            lan.cable("n1", up=True)
    lan.agents.clear()
    return None if first is None else first.recv - failed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, object] = {"trials": args.trials, "request_period_s": 0.01}
    with Topology(f"vc-{os.getpid()}-l2b") as topo:
        lan = L2Lan(topo).build()
        for kind in ("sigkill", "linkdown"):
            times = [trial(lan, kind) for _ in range(args.trials)]
            ok = [t for t in times if t is not None]
            summary = {
                "samples_s": [None if t is None else round(t, 3) for t in times],
                "failed_trials": len(times) - len(ok),
                "median_s": round(statistics.median(ok), 3) if ok else None,
                "max_s": round(max(ok), 3) if ok else None,
            }
            report[kind] = summary
            print(
                f"{kind:9s} median {summary['median_s']} s  max {summary['max_s']} s  "
                f"failed {summary['failed_trials']}/{args.trials}",
                flush=True,
            )
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
