"""Would ``vipcast plan --json`` gain from planning and encoding the nodes in parallel?

Issue 11's idea: each node's plan and its JSON are independent, so spread them over the CPUs
with forked workers writing in order. This measures it on the 10,000-service, 50-pool, 50-node
set, in one process after reading and allocating once: serial (every node planned and encoded
here) against the nodes split in ``--parts`` contiguous groups, each planned
(``core.plan._build`` for its nodes: the planner's own restriction, as ``plan_node`` uses it)
and encoded in a forked process of its own, writing to /dev/null one after the other. Also the
parts of the serial work a split does not divide: planning one node and half of them, encoding
half of them. Interleaved rounds, best wall and best CPU (this process and the workers it
waited for) of each; the 1-minute load average at start and end. Writes
bench/plan_json_split.json (``--out``).

    .venv/bin/python bench/plan_json_split.py [--rounds 3] [--parts 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from vipcast.core.allocation import allocate_spec
from vipcast.core.plan import _build
from vipcast.core.plan_context import PlanContext
from vipcast.core.plan_document import plan_json_bytes
from vipcast.core.weights import weighted
from vipcast.sources.files import load_paths

sys.path.insert(0, str(Path(__file__).parent))
from alloc_plan import documents

ROOT = Path(__file__).resolve().parents[1]


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "plan_json_split.json"))
    args = parser.parse_args()
    figures: dict[str, object] = {"services": 10_000, "pools": 50, "nodes": 50,
                                  "parts": args.parts,
                                  "load_average_1min": round(os.getloadavg()[0], 2)}
    gc.disable()
    with tempfile.TemporaryDirectory(prefix="vc-plan-split-") as tmp:
        path = Path(tmp) / "objects.yaml"
        path.write_text(yaml.safe_dump_all([d for _, d in documents(10_000, 50, 50)]))
        spec = load_paths([path])
    result = allocate_spec(spec)
    current = result.current()
    names = sorted(PlanContext(spec, current).nodes)
    sink = os.open(os.devnull, os.O_WRONLY)

    def plan(group: list[str]) -> dict[str, object]:
        return dict(weighted(spec, _build(PlanContext(spec, current), frozenset(group))))

    def part(group: list[str]) -> None:
        for chunk in plan_json_bytes(result, plan(group)):  # type: ignore[arg-type]
            os.write(sink, chunk)

    def split() -> None:
        k = args.parts
        groups = [names[i * len(names) // k:(i + 1) * len(names) // k] for i in range(k)]
        workers = []
        for group in groups[1:]:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the worker
                part(group)
                os._exit(0)
            workers.append(pid)
        part(groups[0])
        for pid in workers:
            os.waitpid(pid, 0)

    half = names[: len(names) // 2]
    whole_plans = plan(names)
    cases: dict[str, Callable[[], object]] = {
        "serial: plan + encode every node": lambda: part(names),
        f"split over {args.parts} processes": split,
        "plan one node": lambda: plan(names[:1]),
        "plan half the nodes": lambda: plan(half),
        "plan every node": lambda: plan(names),
        "encode half the nodes": lambda: sum(map(len, plan_json_bytes(
            result, {n: whole_plans[n] for n in half}))),  # type: ignore[misc]
        "encode every node": lambda: sum(map(len, plan_json_bytes(
            result, whole_plans))),  # type: ignore[arg-type]
    }
    best: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for label, fn in cases.items():
            wall, cpu = time.perf_counter(), cpu_now()
            fn()
            wall, cpu = time.perf_counter() - wall, cpu_now() - cpu
            b = best.setdefault(label, [1e9, 1e9])
            b[0], b[1] = min(b[0], wall), min(b[1], cpu)
            print(f"{label:<36} wall {wall:6.2f} s  cpu {cpu:6.2f} s", flush=True)
    figures["best_of"] = args.rounds
    figures["seconds"] = {k: {"wall_s": round(w, 2), "cpu_s": round(c, 2)}
                          for k, (w, c) in best.items()}
    figures["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures["seconds"], indent=1))


if __name__ == "__main__":
    main()
