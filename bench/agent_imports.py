"""CPU an agent start spends importing, before (``--before-rev``) and after, in one run.

    .venv/bin/python bench/agent_imports.py [--trials 15] [--before-rev REV]

Each trial is a fresh interpreter importing what ``vipcast agent`` imports before its first
plan (``vipcast.cli.main``, ``vipcast.app.agent``, ``vipcast.app.node``), both trees
byte-compiled first (as an installed vipcast runs); the figure is the child's user + system
CPU time (``RUSAGE_CHILDREN``), which a busy machine slows far less than wall time. Trials
alternate between the trees. Writes ``bench/agent_imports.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from agent_routes import compiled, extract, user_env

ROOT = Path(__file__).resolve().parents[1]
CODE = ("import sys, vipcast.cli.main, vipcast.app.agent, vipcast.app.node; "
        "print(' '.join(sorted({'aiohttp', 'pyroute2', 'rich', 'prometheus_client'} "
        "& set(sys.modules))))")


def one(src: Path) -> tuple[float, float, str]:
    """(CPU s, wall s, the listed heavy modules loaded) of one interpreter importing."""
    env = user_env(src)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                         check=True, timeout=300)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--before-rev", default="c1fda5e")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "agent_imports.json")
    args = parser.parse_args()
    trials = min(args.trials, 50)
    with tempfile.TemporaryDirectory(prefix="vc-ai-") as tmp:
        trees = {"before": extract(args.before_rev, Path(tmp) / "before"),
                 "after": compiled(ROOT / "src")}
        for src in trees.values():
            one(src)  # warm the page cache, not counted
        runs: dict[str, list[tuple[float, float, str]]] = {k: [] for k in trees}
        for _ in range(trials):
            for name, src in trees.items():
                runs[name].append(one(src))
    summary: dict[str, dict[str, Any]] = {
        name: {"cpu_s": round(statistics.median(r[0] for r in rs), 3),
               "wall_s": round(statistics.median(r[1] for r in rs), 3),
               "loaded": rs[-1][2].split()}
        for name, rs in runs.items()}
    ratio = summary["before"]["cpu_s"] / summary["after"]["cpu_s"]
    for name, fig in summary.items():
        print(f"{name:7} CPU {fig['cpu_s']:.3f} s  wall {fig['wall_s']:.3f} s  loaded: "
              f"{', '.join(fig['loaded']) or '-'}")
    print(f"import CPU before/after: {ratio:.2f}x")
    args.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "trials": trials, "before_rev": args.before_rev,
        "load_average_1min": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
        "median": summary, "before_over_after_cpu": round(ratio, 2),
        "runs": {k: [[round(c, 4), round(w, 4)] for c, w, _ in v] for k, v in runs.items()},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
