"""``vipcast plan --json`` on 10,000 services, 50 pools, 50 nodes: where the time goes in this
tree, and the whole command before (``--before-rev``, extracted with ``git archive``) and
after, in one run; writes the figures to bench/plan_json.json (``--out``). About two and a
half minutes on a quiet machine (5 rounds).

    .venv/bin/python bench/plan_json.py [--services 10000] [--pools 50] [--nodes 50]
                                        [--before-rev 115af2f] [--rounds 5] [--out F]
                                        [--sink devnull|pipe|file] [--skip-stages]

The objects are bench/alloc_plan.py's, written as one YAML file and read as the CLI reads it.
CPU times are the ones to compare on a shared machine (the whole command: the user + system
time of the command and of the worker processes it waited for, from interpreter start to its
exit, with its output to /dev/null unless ``--sink`` says otherwise); wall time is what a user
waits, reported beside it (on a quiet machine only it says much). The rounds are interleaved
(before, after, before, ...); for the whole command every round is kept (best, median, worst,
worst/best: the issue's bar holds only if the worst round meets it), for each stage the best
(measured in a child process per tree and round; the import stage is a fresh interpreter
importing what ``vipcast plan`` imports).

Each timed command is also asked for its own phase times (``VIPCAST_PHASE_TIMES=1``: wall,
CPU, page faults and context switches of reading, allocating, planning, encoding + writing, as
the real command ran them; a tree without it reports none), and each is preceded by a
calibration (:data:`CALIBRATE_CODE`: a fixed piece of work, CPU-bound and memory-bound, in a
fresh interpreter): when the command's CPU moves with the calibration's from round to round,
the spread is the machine's speed at that moment, not the command's work. Before the timed
runs, each version's output is hashed once (untimed): the figures say whether the two
documents are byte-identical. The 1-minute load average is recorded at the start, per round
and at the end.
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
from alloc_plan import documents

ROOT = Path(__file__).resolve().parents[1]


def user_env(src: Path) -> dict[str, str]:
    """bench/agent_routes.py's environment of a process run from ``src`` (imported here, not
    at the top: the child measuring the stages runs the before tree, where bench/agent_routes.py's
    imports of today's modules may not exist)."""
    from agent_routes import user_env as env_of

    return env_of(src)


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
          "encode + write to /dev/null")
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
    size = timed(STAGES[4], lambda: encode_to_null(result, plans), figures)
    print(f"{size / 1e6:.0f} MB of JSON")


def encode_to_null(result: Any, plans: Any) -> int:
    """The document encoded and written to /dev/null as the tree's ``vipcast plan`` writes it
    (pieces with ``os.writev``; before them, bytes or text chunks with ``write``); its size."""
    size = 0
    with open(os.devnull, "wb", buffering=0) as null:
        pieces = getattr(plan_document, "plan_json_pieces", None)
        if pieces is not None:
            for group in pieces(result, plans):
                for at in range(0, len(group), 1024):
                    size += os.writev(null.fileno(), group[at:at + 1024])
            return size
        encode = getattr(plan_document, "plan_json_bytes", None) or plan_document.plan_json_chunks
        for chunk in encode(result, plans):
            size += null.write(chunk if isinstance(chunk, bytes) else chunk.encode())
    return size


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


#: a fixed amount of work timed in a fresh interpreter (CPU seconds), before each command:
#: how fast the machine runs Python right then. ``loop``: a small loop (cache-resident: the
#: CPU's own speed); ``memory``: a million small objects walked in a random order (memory-bound,
#: as the command's millions of objects are). When the command's CPU moves with these, the
#: spread is the machine's, not the command's.
CALIBRATE_CODE = """
import json, random, time
start = time.process_time()
x = 0
for i in range(3_000_000):
    x += i & 7
loop = time.process_time() - start
objects = [[i] for i in range(1_000_000)]
order = list(range(len(objects)))
random.Random(1).shuffle(order)
start = time.process_time()
total = 0
for i in order:
    total += objects[i][0]
memory = time.process_time() - start
print(json.dumps({"loop_cpu_s": round(loop, 3), "memory_cpu_s": round(memory, 3)}))
"""


def calibration() -> dict[str, float]:
    """:data:`CALIBRATE_CODE`'s CPU seconds, in a child process."""
    out = subprocess.run([sys.executable, "-c", CALIBRATE_CODE], check=True,
                         capture_output=True, text=True).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def whole_command(src: Path, path: Path, sink: str, tmp: Path) -> dict[str, Any]:
    """Wall and CPU seconds of ``vipcast plan --json`` run from ``src`` (its output to
    ``sink``: /dev/null, a pipe this process reads, or a file), and the phases the command
    reports of itself (``VIPCAST_PHASE_TIMES``; a tree without it reports none)."""
    env = {**user_env(src), "VIPCAST_PHASE_TIMES": "1"}
    argv = [sys.executable, "-m", "vipcast.cli.main", "plan", "--json", "--no-save", str(path)]
    target = tmp / "plan-out.json"
    with open(os.devnull if sink != "file" else target, "wb") as out:
        start = time.perf_counter()
        cpu0 = os.times()
        with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE,
                              stdout=subprocess.PIPE if sink == "pipe" else out) as child:
            if child.stdout is not None:  # a reader as ``| sha256sum`` is: every byte read
                while child.stdout.read(1 << 20):
                    pass
            assert child.stderr is not None
            err = child.stderr.read()
        cpu1 = os.times()
    wall = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"vipcast plan --json from {src} failed ({child.returncode})")
    target.unlink(missing_ok=True)
    run: dict[str, Any] = {"s": round(wall, 3),
                           "cpu_s": round(cpu1.children_user + cpu1.children_system
                                          - cpu0.children_user - cpu0.children_system, 3)}
    for line in err.decode(errors="replace").splitlines():
        if line.startswith('{"phases"'):
            run.update(json.loads(line))
    return run


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


def _correlation(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r of the two series (None: fewer than 3 values or no variation)."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return round(sxy / (sxx * syy) ** 0.5, 2) if sxx and syy else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--before-rev", default="115af2f")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sink", choices=("devnull", "pipe", "file"), default="devnull",
                        help="where the timed commands' output goes: /dev/null, a pipe this "
                             "process reads to the end, or a file in a temporary directory")
    parser.add_argument("--skip-stages", action="store_true",
                        help="measure only the whole command (not each stage in process)")
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
                               "sink": args.sink,
                               "load_average_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="vc-plan-json-") as tmp:
        path = Path(tmp) / "objects.yaml"
        docs = [d for _, d in documents(args.services, args.pools, args.nodes)]
        path.write_text(yaml.safe_dump_all(docs))
        from agent_routes import compiled, extract

        before_src = extract(args.before_rev, Path(tmp) / "before")
        compiled(ROOT / "src")
        # each tree's stages in a process of its own (a first call, as the command makes it),
        # interleaved over the rounds; the best CPU of each stage is kept
        best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
        for _ in range(0 if args.skip_stages else args.rounds):
            for name, src in (("before", before_src), ("after", ROOT / "src")):
                for label, value in stages_of(src, path).items():
                    best[name][label] = min(best[name].get(label, 1e9), value["cpu_s"])
                best[name][IMPORT] = min(best[name].get(IMPORT, 1e9), import_cpu(src))
        figures["stages_cpu_s"] = {}
        for label in STAGES if not args.skip_stages else ():
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
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for n in range(args.rounds):  # interleaved: a busy machine's noise falls on both
            for name, src in (("before", before_src), ("after", ROOT / "src")):
                run = {"round": n + 1, "load_average_1min": round(os.getloadavg()[0], 2),
                       "calibration": calibration(),
                       **whole_command(src, path, args.sink, Path(tmp))}
                runs[name].append(run)
                phases = ", ".join(f"{k.split(' (')[0]} {v['cpu_s']:.2f}"
                                   for k, v in run.get("phases", {}).items())
                print(f"vipcast plan --json ({name:6}) {run['s']:8.2f} s (cpu {run['cpu_s']:7.2f}"
                      f" s; calibration {run['calibration']['loop_cpu_s']:.3f}/"
                      f"{run['calibration']['memory_cpu_s']:.3f} s; load "
                      f"{run['load_average_1min']}) {phases}", flush=True)
        for name, values in runs.items():
            walls = sorted(r["s"] for r in values)
            cpus = sorted(r["cpu_s"] for r in values)
            figures[f"vipcast plan --json ({name})"] = {
                "s": walls[0], "cpu_s": cpus[0], "worst_s": walls[-1], "worst_cpu_s": cpus[-1],
                "median_s": walls[len(walls) // 2], "median_cpu_s": cpus[len(cpus) // 2],
                "spread_worst/best_wall": round(walls[-1] / walls[0], 2),
                "spread_worst/best_cpu": round(cpus[-1] / cpus[0], 2),
                "cpu_vs_memory_calibration_correlation": _correlation(
                    [r["cpu_s"] for r in values],
                    [r["calibration"]["memory_cpu_s"] for r in values]),
                "runs": values}
        before_fig = figures["vipcast plan --json (before)"]
        after_fig = figures["vipcast plan --json (after)"]
        for what, key in (("best", "cpu_s"), ("worst", "worst_cpu_s")):
            figures[f"speedup_cpu_{what}"] = round(before_fig[key] / after_fig[key], 2)
        for what, key in (("best", "s"), ("worst", "worst_s")):
            figures[f"speedup_wall_{what}"] = round(before_fig[key] / after_fig[key], 2)
        print(f"whole command over {args.rounds} rounds, best..worst: CPU before "
              f"{before_fig['cpu_s']:.2f}..{before_fig['worst_cpu_s']:.2f} s, after "
              f"{after_fig['cpu_s']:.2f}..{after_fig['worst_cpu_s']:.2f} s; wall before "
              f"{before_fig['s']:.2f}..{before_fig['worst_s']:.2f} s, after "
              f"{after_fig['s']:.2f}..{after_fig['worst_s']:.2f} s (best "
              f"{figures['speedup_wall_best']}x, worst {figures['speedup_wall_worst']}x)")
    figures["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
