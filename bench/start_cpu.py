"""The stages of an agent's first start without a cache, before (``--before-rev``) and after.

    .venv/bin/python bench/start_cpu.py [--services 10000] [--trials 5] [--before-rev d2d510e]

``bench/agent_routes.py`` times the whole start into FRR's kernel; this bench takes it apart.
Each trial is a fresh interpreter of one tree (both byte-compiled, as an installed vipcast
runs; trials alternate between the trees) that, with the cyclic GC paused as the agent's load
pauses it:

- imports what ``vipcast agent`` imports before its first load (``vipcast.cli.main``,
  ``vipcast.app.agent``, ``vipcast.app.node``);
- reads the object files (``vipcast.sources.files.load_paths``: read, parse, validate,
  assemble) of N Services with their EndpointSlices in one YAML file, as
  ``bench/agent_routes.py`` writes them;
- plans the node (``NodePlanner``: allocate, plan).

Per stage it records the CPU time of this process, the CPU time of its worker processes (the
YAML parse's, ``sources/yaml_split.py``) and the wall time; the figure of a trial is the best
of ``--trials`` (a busy machine only ever adds). Writes ``bench/start_cpu.json`` with the
1-minute load average at the start and the end, and the CPUs the process may use.
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

sys.path.insert(0, str(Path(__file__).parent))

from agent_routes import compiled, extract, user_env, write_config

ROOT = Path(__file__).resolve().parents[1]

#: one trial, run inside the tree under test; prints one JSON line of stage figures
TRIAL = r"""
import gc, json, resource, sys, time
from pathlib import Path

def now():
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), kids.ru_utime + kids.ru_stime, time.perf_counter()

out = {}
def stage(name, start):
    end = now()
    out[name] = {"cpu_s": end[0] - start[0], "workers_cpu_s": end[1] - start[1],
                 "wall_s": end[2] - start[2]}
    return end

t = now()
import vipcast.cli.main, vipcast.app.agent, vipcast.app.node
t = stage("imports", t)
from vipcast.sources.files import load_paths
from vipcast.core.incremental import NodePlanner
gc.disable()
t = now()
spec = load_paths([Path(sys.argv[1])])
t = stage("load_paths", t)
duties = NodePlanner()(spec, "n1")
t = stage("plan", t)
assert len(duties.bgp) == int(sys.argv[2]), len(duties.bgp)
print(json.dumps(out))
"""


def one(src: Path, config: Path, n: int) -> dict[str, dict[str, float]]:
    done = subprocess.run([sys.executable, "-c", TRIAL, str(config), str(n)], env=user_env(src),
                          capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def best(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per stage and figure, the smallest of the trials."""
    return {stage: {k: round(min(r[stage][k] for r in runs), 3) for k in runs[0][stage]}
            for stage in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--before-rev", default="d2d510e")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "start_cpu.json")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vc-scpu-") as tmp:
        config = Path(tmp) / "config"
        write_config(config, args.services)
        trees = {"before": extract(args.before_rev, Path(tmp) / "before"),
                 "after": compiled(ROOT / "src")}
        for src in trees.values():
            one(src, config, args.services)  # the page cache warm, not counted
        runs: dict[str, list[dict[str, dict[str, float]]]] = {k: [] for k in trees}
        for _ in range(min(args.trials, 20)):
            for name, src in trees.items():
                runs[name].append(one(src, config, args.services))
    summary = {name: best(rs) for name, rs in runs.items()}
    print(f"{args.services} services, best of {args.trials}; before = {args.before_rev}")
    ratios: dict[str, dict[str, float]] = {}
    for stage in summary["after"]:
        b, a = summary["before"][stage], summary["after"][stage]
        ratios[stage] = {k: round(b[k] / a[k], 2) for k in ("cpu_s", "wall_s") if a[k] > 0}
        print(f"{stage:11} CPU {b['cpu_s']:.3f} -> {a['cpu_s']:.3f} s (+ workers "
              f"{b['workers_cpu_s']:.3f} -> {a['workers_cpu_s']:.3f} s)   wall "
              f"{b['wall_s']:.3f} -> {a['wall_s']:.3f} s   before/after wall "
              f"{ratios[stage].get('wall_s', 0):.2f}x")
    total = {name: round(sum(s["wall_s"] for s in fig.values()), 3)
             for name, fig in summary.items()}
    print(f"imports + load_paths + plan, wall: {total['before']:.3f} -> {total['after']:.3f} s "
          f"({total['before'] / total['after']:.2f}x)")
    args.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "services": args.services,
        "trials": args.trials, "before_rev": args.before_rev,
        "load_average_1min": round(load_start, 1),
        "load_average_1min_end": round(os.getloadavg()[0], 1),
        "cpus": len(os.sched_getaffinity(0)), "best": summary,
        "before_over_after": ratios, "total_wall_s": total, "runs": runs,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
