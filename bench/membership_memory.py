"""Memory of the member table at scale: bytes per member record (one record per member, on
every member, so N x (N - 1) records in the simulator and N - 1 on a real node).

Runs the real protocol code of two source trees side by side in child processes (``--before``:
another tree's ``src``, by default main's checkout) on the simulator's warm start
(``vipcast.lab.membership_sim.warm_start``: every member knows every other alive and proven) and
reports the RSS growth per record, and what that means for a 5,000-member simulation and for one
real node at 5,000 members.

    python bench/membership_memory.py --sizes 300 1000 --before /path/to/old/src \\
        --json bench/membership_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import gc, json, sys
from vipcast.lab.membership_sim import swim_members, warm_start
from vipcast.proto.membership import Timers

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024

n = int(sys.argv[1])
gc.collect()
r0 = rss()
members = swim_members(n, Timers.lan(n), key=b"bench")
warm_start(members)
for m in members.values():
    m.view
gc.collect()
records = n * (n - 1)
print(json.dumps({"members": n, "records": records,
                  "bytes_per_record": round((rss() - r0) / records, 1)}))
"""


def measure(src: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--before", type=Path, required=True, help="the old tree's src")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    after_src = HERE.parent / "src"
    rows = []
    for n in args.sizes:
        before, after = measure(args.before, n), measure(after_src, n)
        b, a = before["bytes_per_record"], after["bytes_per_record"]
        row = {"members": n, "before_bytes_per_record": b, "after_bytes_per_record": a,
               "ratio": round(a / b, 3),
               "sim_5000_gb_before": round(b * 5000 * 4999 / 1e9, 2),
               "sim_5000_gb_after": round(a * 5000 * 4999 / 1e9, 2),
               "node_at_5000_mb_after": round(a * 4999 / 1e6, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        report = {"runs": rows, "before": str(args.before),
                  "load_average_1min": round(os.getloadavg()[0], 1)}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
