"""Planning CPU (issue 11, "plancore"): ``allocate_spec``, ``plan_all`` (every node, as
``vipcast plan --json``) and ``plan_node`` (one node, as the agent's first start) on 10,000
services, 50 pools, 50 nodes; the tree at ``--before-rev`` (extracted with ``git archive``) and
this tree side by side in one run; figures to bench/plan_core.json (``--out``).

    .venv/bin/python bench/plan_core.py [--services 10000] [--pools 50] [--nodes 50]
                                        [--before-rev 115af2f] [--rounds 5] [--out F]

The objects are bench/alloc_plan.py's, written as one YAML file and read with ``load_paths``
as the CLI reads them. Each round runs each tree in a fresh child process (cyclic GC off, as
the command): read the file, then time each stage's CPU (user + system of the process) as a
first call, as the command makes it. Rounds are interleaved (before, after, before, ...) so
a busy machine's noise falls on both; the best and the median of each stage are kept, and
their ratios printed. Before the timed rounds each tree's ``vipcast plan --json`` document is
hashed (in process, untimed): the figures say whether the two are byte-identical. The
1-minute load average is recorded at the start and at the end.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("allocate", "plan_all (every node)", "plan_node (node-0)")


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system


def child(path: Path, digest: bool) -> dict[str, Any]:
    """The stages of the tree on ``PYTHONPATH`` (or the plan document's digest)."""
    from vipcast.core.allocation import allocate_spec
    from vipcast.core.plan import plan_all, plan_node
    from vipcast.sources.files import load_paths

    spec = load_paths([path])
    gc.disable()
    out: dict[str, Any] = {}
    cpu = cpu_now()
    result = allocate_spec(spec)
    out[STAGES[0]] = cpu_now() - cpu
    current = result.current()
    cpu = cpu_now()
    plans = plan_all(spec, current)
    out[STAGES[1]] = cpu_now() - cpu
    if digest:
        from vipcast.core import plan_document

        encode = (getattr(plan_document, "plan_json_bytes", None)
                  or plan_document.plan_json_chunks)
        sha, size = hashlib.sha256(), 0
        for chunk in encode(result, plans):
            data = chunk if isinstance(chunk, bytes) else chunk.encode()
            sha.update(data)
            size += len(data)
        return {"sha256": sha.hexdigest(), "bytes": size}
    del plans
    cpu = cpu_now()
    plan_node(spec, current, "node-0")
    out[STAGES[2]] = cpu_now() - cpu
    return out


def run_child(src: Path, path: Path, digest: bool = False) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [sys.executable, __file__, "--child", str(path)] + (["--digest"] if digest else [])
    out = subprocess.run(args, check=True, env=env, capture_output=True, text=True).stdout
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    return figures


def extract(rev: str, into: Path) -> Path:
    """The ``src`` tree of ``rev``, extracted under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--before-rev", default="115af2f")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "plan_core.json"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--digest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.digest)))
        return
    import yaml

    sys.path.insert(0, str(Path(__file__).parent))
    from alloc_plan import documents

    figures: dict[str, Any] = {
        "services": args.services, "pools": args.pools, "nodes": args.nodes,
        "before_rev": args.before_rev, "rounds": args.rounds,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    trees: dict[str, Path] = {"after": ROOT / "src"}
    with tempfile.TemporaryDirectory(prefix="vc-plan-core-") as tmp:
        path = Path(tmp) / "objects.yaml"
        path.write_text(yaml.safe_dump_all(
            [d for _, d in documents(args.services, args.pools, args.nodes)]))
        trees = {"before": extract(args.before_rev, Path(tmp) / "before"), **trees}
        digests = {name: run_child(src, path, digest=True) for name, src in trees.items()}
        figures["output"] = {**digests, "byte_identical": (
            digests["before"]["sha256"] == digests["after"]["sha256"])}
        print(f"plan --json document byte-identical: {figures['output']['byte_identical']}",
              flush=True)
        runs: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STAGES}
                                                   for name in trees}
        for _ in range(args.rounds):
            for name, src in trees.items():
                got = run_child(src, path)
                for stage in STAGES:
                    runs[name][stage].append(got[stage])
                print(f"{name:6} " + ", ".join(f"{s} {got[s]:.3f} s" for s in STAGES),
                      flush=True)
    table: dict[str, Any] = {}
    for stage in (*STAGES, "allocate + plan_all"):
        row: dict[str, Any] = {}
        for name in trees:
            values = (runs[name][stage] if stage in STAGES else
                      [a + p for a, p in zip(runs[name]["allocate"],
                                             runs[name]["plan_all (every node)"], strict=True)])
            row[name] = {"best": round(min(values), 3),
                         "median": round(statistics.median(values), 3),
                         "runs": [round(v, 3) for v in values]}
        for kind in ("best", "median"):
            before, after = row["before"][kind], row["after"][kind]
            row[f"before/after ({kind})"] = round(before / after, 2)
            row[f"cut ({kind})"] = f"{100 * (1 - after / before):.0f} %"
        table[stage] = row
        print(f"{stage:<24} CPU best {row['before']['best']:.3f} -> {row['after']['best']:.3f} s"
              f" ({row['before/after (best)']}x), median {row['before']['median']:.3f} -> "
              f"{row['after']['median']:.3f} s ({row['before/after (median)']}x)")
    figures["stages_cpu_s"] = table
    figures["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
