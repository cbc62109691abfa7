"""``vipcast plan --json`` on 10,000 services, 50 pools, 50 nodes: where the time goes, and the
JSON encoding before (``json.dumps(plan_document(...), indent=2)``, the pure-Python encoder)
and after (``plan_json_chunks``: each entry encoded once by the C encoder) in one run.

    .venv/bin/python bench/plan_json.py [--services 10000] [--pools 50] [--nodes 50] [--out F]

The objects are bench/alloc_plan.py's, written as one YAML file and read as the CLI reads it.
CPU times are the ones to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from vipcast.core.allocation import allocate_spec
from vipcast.core.plan import plan_all
from vipcast.core.plan_document import plan_document, plan_json_chunks
from vipcast.sources.files import load_paths

sys.path.insert(0, str(Path(__file__).parent))
from alloc_plan import documents


def timed(label: str, fn: Any, figures: dict[str, Any]) -> Any:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    print(f"{label:<44} {wall:8.2f} s (cpu {cpu_s:7.2f} s)")
    figures[label] = {"s": round(wall, 2), "cpu_s": round(cpu_s, 2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--out", help="write the figures as JSON to this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {"services": args.services, "pools": args.pools,
                               "nodes": args.nodes,
                               "load_average_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="vc-plan-json-") as tmp:
        path = Path(tmp) / "objects.yaml"
        docs = [d for _, d in documents(args.services, args.pools, args.nodes)]
        path.write_text(yaml.safe_dump_all(docs))
        spec = timed("read + validate YAML (load_paths)", lambda: load_paths([path]), figures)
        result = timed("allocate", lambda: allocate_spec(spec), figures)
        plans = timed("plan_all (every node)", lambda: plan_all(spec, result.current()),
                      figures)
        new = timed("after: plan_json_chunks, joined",
                    lambda: "".join(plan_json_chunks(result, plans)), figures)
        old = timed("before: json.dumps(plan_document, indent=2)",
                    lambda: json.dumps(plan_document(result, plans), indent=2), figures)
        same = json.loads(new) == json.loads(old)
        print(f"same document: {same}; {len(new) / 1e6:.0f} MB after, "
              f"{len(old) / 1e6:.0f} MB before")
        del old, new
        ratio = (figures["before: json.dumps(plan_document, indent=2)"]["cpu_s"]
                 / max(figures["after: plan_json_chunks, joined"]["cpu_s"], 1e-9))
        print(f"encoding: after is {ratio:.1f}x faster (cpu)")
        figures["encoding_speedup_cpu"] = round(ratio, 1)
        with open(os.devnull, "wb") as sink:
            start = time.perf_counter()
            cpu0 = os.times()
            subprocess.run([sys.executable, "-m", "vipcast.cli.main", "plan", "--json",
                            "--no-save", str(path)], stdout=sink, check=True)
            cpu1 = os.times()
        wall = time.perf_counter() - start
        cpu_s = (cpu1.children_user + cpu1.children_system
                 - cpu0.children_user - cpu0.children_system)
        print(f"{'vipcast plan --json (whole command, after)':<44} {wall:8.2f} s "
              f"(cpu {cpu_s:7.2f} s)")
        figures["vipcast plan --json (after)"] = {"s": round(wall, 2), "cpu_s": round(cpu_s, 2)}
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
