"""``vipcast plan --json`` on 10,000 services, 50 pools, 50 nodes: where the time goes in this
tree, and the whole command before (``--before-rev``, extracted with ``git archive``) and
after, in one run; writes the figures to bench/plan_json.json (``--out``). About a minute and a
half on a quiet machine (3 rounds).

    .venv/bin/python bench/plan_json.py [--services 10000] [--pools 50] [--nodes 50]
                                        [--before-rev afa287f] [--rounds 3] [--out F]

The objects are bench/alloc_plan.py's, written as one YAML file and read as the CLI reads it.
CPU times are the ones to compare on a shared machine (the whole command: the user + system
time of the command and of the worker processes it waited for, from interpreter start to its
exit, with its output to /dev/null); wall time is what a user waits, reported beside it (on a
quiet machine only it says much). The rounds are interleaved (before, after, before, ...) and
the best of each is kept, for the whole command and for each stage (measured in a child
process per tree and round; the import stage is a fresh interpreter importing what ``vipcast
plan`` imports). Before the timed runs, each version's output is hashed once (untimed): the
figures say whether the two documents are byte-identical. The 1-minute load average is
recorded at the start and at the end.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from vipcast.core import plan_document
from vipcast.core.allocation import allocate_spec
from vipcast.core.plan import plan_all
from vipcast.sources.files import load_paths

sys.path.insert(0, str(Path(__file__).parent))
from agent_routes import compiled, extract, user_env
from alloc_plan import documents

ROOT = Path(__file__).resolve().parents[1]


def cpu_now() -> float:
    """User + system CPU seconds of this process and of the children it waited for (the YAML
    reader's worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(label: str, fn: Any, figures: dict[str, Any]) -> Any:
    start, cpu = time.perf_counter(), cpu_now()
    out = fn()
    wall, cpu_s = time.perf_counter() - start, cpu_now() - cpu
    print(f"{label:<44} {wall:8.2f} s (cpu {cpu_s:7.2f} s)")
    figures[label] = {"s": round(wall, 2), "cpu_s": round(cpu_s, 2)}
    return out


IMPORT = "import what vipcast plan imports"
STAGES = (IMPORT, "read + validate YAML (load_paths)", "allocate", "plan_all (every node)",
          "encode (plan_json_bytes, or _chunks before)")
#: a fresh interpreter importing the command line as ``vipcast plan`` does (the whole command
#: line before cli.main.app_for existed), then its CPU seconds from interpreter start
IMPORT_CODE = ("import os, vipcast.cli.main as m\n"
               "if hasattr(m, 'app_for'): m.app_for(['plan'])\n"
               "t = os.times(); print(t.user + t.system)")


def stages(path: Path, figures: dict[str, Any]) -> None:
    """The stages of the tree on ``PYTHONPATH``, in process (cyclic GC off, as the command)."""
    gc.disable()
    spec = timed(STAGES[1], lambda: load_paths([path]), figures)
    result = timed(STAGES[2], lambda: allocate_spec(spec), figures)
    plans = timed(STAGES[3], lambda: plan_all(spec, result.current()), figures)
    encode = getattr(plan_document, "plan_json_bytes", None) or plan_document.plan_json_chunks
    size = timed(STAGES[4], lambda: sum(len(c) for c in encode(result, plans)), figures)
    print(f"{size / 1e6:.0f} MB of JSON")


def import_cpu(src: Path) -> float:
    """CPU seconds of a fresh interpreter importing what ``vipcast plan`` imports from ``src``."""
    out = subprocess.run([sys.executable, "-c", IMPORT_CODE], check=True, env=user_env(src),
                         capture_output=True, text=True).stdout
    return float(out)


def stages_of(src: Path, path: Path) -> dict[str, Any]:
    """:func:`stages` of the tree at ``src``, in a child process of its own."""
    out = subprocess.run([sys.executable, __file__, "--stages-of", str(path)], check=True,
                         env=user_env(src), capture_output=True, text=True).stdout
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    return figures


def whole_command(src: Path, path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``vipcast plan --json`` run from ``src``."""
    env = user_env(src)
    with open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        cpu0 = os.times()
        subprocess.run([sys.executable, "-m", "vipcast.cli.main", "plan", "--json",
                        "--no-save", str(path)], stdout=sink, check=True, env=env)
        cpu1 = os.times()
    wall = time.perf_counter() - start
    return wall, (cpu1.children_user + cpu1.children_system
                  - cpu0.children_user - cpu0.children_system)


def output_digest(src: Path, path: Path) -> tuple[str, int]:
    """(sha256, bytes) of what ``vipcast plan --json`` run from ``src`` prints (untimed)."""
    digest, size = hashlib.sha256(), 0
    with subprocess.Popen([sys.executable, "-m", "vipcast.cli.main", "plan", "--json",
                           "--no-save", str(path)], stdout=subprocess.PIPE,
                          env=user_env(src)) as child:
        assert child.stdout is not None
        while block := child.stdout.read(1 << 20):
            digest.update(block)
            size += len(block)
    if child.returncode:
        raise SystemExit(f"vipcast plan --json from {src} failed ({child.returncode})")
    return digest.hexdigest(), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--before-rev", default="afa287f")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "plan_json.json"),
                        help="write the figures as JSON to this file (default: %(default)s)")
    parser.add_argument("--stages-of", type=Path, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    if args.stages_of is not None:
        measured: dict[str, Any] = {}
        stages(args.stages_of, measured)
        print(json.dumps(measured))
        return
    figures: dict[str, Any] = {"services": args.services, "pools": args.pools,
                               "nodes": args.nodes, "before_rev": args.before_rev,
                               "load_average_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="vc-plan-json-") as tmp:
        path = Path(tmp) / "objects.yaml"
        docs = [d for _, d in documents(args.services, args.pools, args.nodes)]
        path.write_text(yaml.safe_dump_all(docs))
        before_src = extract(args.before_rev, Path(tmp) / "before")
        compiled(ROOT / "src")
        # each tree's stages in a process of its own (a first call, as the command makes it),
        # interleaved over the rounds; the best CPU of each stage is kept
        best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
        for _ in range(args.rounds):
            for name, src in (("before", before_src), ("after", ROOT / "src")):
                for label, value in stages_of(src, path).items():
                    best[name][label] = min(best[name].get(label, 1e9), value["cpu_s"])
                best[name][IMPORT] = min(best[name].get(IMPORT, 1e9), import_cpu(src))
        figures["stages_cpu_s"] = {}
        for label in STAGES:
            before, after = best["before"][label], best["after"][label]
            ratio = round(before / after, 2) if after else None
            figures["stages_cpu_s"][label] = {"before": before, "after": after,
                                              "before/after": ratio}
            print(f"{label:<44} CPU before {before:6.2f} s, after {after:6.2f} s, "
                  f"{ratio}x", flush=True)
        digests = {name: output_digest(src, path)
                   for name, src in (("before", before_src), ("after", ROOT / "src"))}
        figures["output"] = {name: {"sha256": d, "bytes": n} for name, (d, n) in digests.items()}
        figures["output"]["byte_identical"] = digests["before"] == digests["after"]
        print(f"output: {digests['after'][1] / 1e6:.0f} MB, byte-identical to before: "
              f"{digests['before'] == digests['after']}")
        runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for _ in range(args.rounds):  # interleaved: a busy machine's noise falls on both
            for name, src in (("before", before_src), ("after", ROOT / "src")):
                wall, cpu = whole_command(src, path)
                runs[name].append((wall, cpu))
                print(f"vipcast plan --json ({name:6}) {wall:8.2f} s (cpu {cpu:7.2f} s)",
                      flush=True)
        for name, values in runs.items():
            figures[f"vipcast plan --json ({name})"] = {
                "s": round(min(w for w, _ in values), 2),
                "cpu_s": round(min(c for _, c in values), 2),
                "runs": [{"s": round(w, 2), "cpu_s": round(c, 2)} for w, c in values]}
        before_fig = figures["vipcast plan --json (before)"]
        after_fig = figures["vipcast plan --json (after)"]
        ratio = before_fig["cpu_s"] / after_fig["cpu_s"]
        wall_ratio = before_fig["s"] / after_fig["s"]
        figures["speedup_cpu"] = round(ratio, 2)
        figures["speedup_wall"] = round(wall_ratio, 2)
        print(f"whole command, best of {args.rounds}: CPU before {before_fig['cpu_s']:.2f} s, "
              f"after {after_fig['cpu_s']:.2f} s ({ratio:.2f}x); wall before {before_fig['s']:.2f}"
              f" s, after {after_fig['s']:.2f} s ({wall_ratio:.2f}x)")
    figures["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
