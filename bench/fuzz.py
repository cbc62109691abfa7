"""Coverage-guided fuzzing of vipcast's decoders with atheris (libFuzzer), run by hand.

    .venv/bin/python bench/fuzz.py [--targets bgp_message,bfd_packet] [--runs N | --seconds S]
                                   [--seed 1] [--crashes DIR] [--json bench/fuzz.json]

Each target (``tests/fuzz/targets.py``) runs in its own child process (libFuzzer ends the
process when it is done), seeded from the encoders, the repository's vectors and the FRR corpus.
Printed per target: inputs run, inputs/s, libFuzzer's edge coverage, and line/branch coverage
of the target's modules measured with coverage.py by replaying the corpus the run grew. A crash
(an exception the target does not allow, or an input that runs over ``--timeout`` seconds)
stops that target; its reproducer is kept in ``--crashes`` and the exit status is 1.
``tests/fuzz/test_fuzz_slice.py`` runs a short fixed-seed slice of every target in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_DIR = ROOT / "tests" / "fuzz"


def _targets() -> dict[str, object]:
    sys.path.insert(0, str(TARGETS_DIR))
    import targets

    return dict(targets.TARGETS)


# --------------------------------------------------------------------------- child


def child(name: str, args: argparse.Namespace) -> None:
    """Run one target under atheris in this process (never returns)."""
    import atheris

    sys.path.insert(0, str(TARGETS_DIR))
    with atheris.instrument_imports(include=["vipcast"]):
        import targets
    target = targets.TARGETS[name]
    work, seeds = Path(args.work), Path(args.seeds)
    for i, seed in enumerate(target.seeds()):
        (seeds / f"seed-{i:05d}").write_bytes(seed)
    argv = [
        sys.argv[0],
        f"-seed={args.seed}",
        f"-max_len={target.max_len}",
        f"-timeout={args.timeout}",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={args.crashes}/{name}-",
        "-print_final_stats=1",
        str(work),
        str(seeds),
    ]
    if args.runs:
        argv.insert(1, f"-runs={args.runs}")
    if args.seconds:
        argv.insert(1, f"-max_total_time={args.seconds}")

    run = target.run

    def one_input(data: bytes) -> None:
        run(data)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


# --------------------------------------------------------------------------- coverage


def measure_coverage(name: str, corpus_dirs: list[Path]) -> dict[str, object]:
    """Replay a corpus under coverage.py; line and branch coverage of the target's modules."""
    modules: tuple[str, ...] = _targets()[name].modules  # type: ignore[attr-defined]
    include = [_include(module) for module in modules]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "cov.json"
        code = (
            "import sys, pathlib, coverage\n"
            f"cov = coverage.Coverage(branch=True, include={include!r}, data_file=None)\n"
            "cov.start()\n"
            f"sys.path.insert(0, {str(TARGETS_DIR)!r})\n"
            "import targets\n"
            f"t = targets.TARGETS[{name!r}]\n"
            f"for d in {[str(d) for d in corpus_dirs]!r}:\n"
            "    for p in sorted(pathlib.Path(d).iterdir()):\n"
            "        t.run(p.read_bytes())\n"
            "cov.stop()\n"
            f"cov.json_report(outfile={str(report)!r})\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
        totals = json.loads(report.read_text())["totals"]
    return {
        "lines": f"{totals['covered_lines']}/{totals['num_statements']}",
        "line_pct": round(100 * totals["covered_lines"] / max(totals["num_statements"], 1), 1),
        "branches": f"{totals['covered_branches']}/{totals['num_branches']}",
        "branch_pct": round(100 * totals["covered_branches"] / max(totals["num_branches"], 1), 1),
    }


def _include(module: str) -> str:
    path = ROOT / "src" / Path(*module.split("."))
    return f"{path}/*" if path.is_dir() else f"{path}.py"


# --------------------------------------------------------------------------- parent

_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")


def run_target(name: str, args: argparse.Namespace) -> dict[str, object]:
    crashes = Path(args.crashes).resolve()
    crashes.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
        work, seeds = Path(tmp) / "corpus", Path(tmp) / "seeds"
        work.mkdir()
        seeds.mkdir()
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--work",
            str(work),
            "--seeds",
            str(seeds),
            "--seed",
            str(args.seed),
            "--timeout",
            str(args.timeout),
            "--crashes",
            str(crashes),
        ]
        if args.runs:
            cmd += ["--runs", str(args.runs)]
        if args.seconds:
            cmd += ["--seconds", str(args.seconds)]
        before = set(crashes.iterdir())
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        elapsed = time.monotonic() - started
        log = proc.stdout + proc.stderr
        done = _DONE.search(log)
        runs = int(done.group(1)) if done else _last_run(log)
        stats = _STAT.findall(log)
        new = sorted(str(p) for p in set(crashes.iterdir()) - before)
        result: dict[str, object] = {
            "runs": runs,
            "seconds": round(elapsed, 1),
            "inputs_per_s": round(runs / elapsed) if elapsed else 0,
            "libfuzzer_edges": int(stats[-1][0]) if stats else 0,
            "libfuzzer_features": int(stats[-1][1]) if stats else 0,
            "corpus": int(stats[-1][2]) if stats else 0,
            "crashes": new,
            "exit": proc.returncode,
        }
        if proc.returncode != 0 or new:
            start = log.find("Uncaught Python exception")
            result["log_tail"] = log[start : start + 4000] if start >= 0 else log[-4000:]
        elif not args.no_coverage:
            result["coverage"] = measure_coverage(name, [work, seeds])
    return result


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _last_run(log: str) -> int:
    runs = re.findall(r"^#(\d+)", log, re.M)
    return int(runs[-1]) if runs else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", default="", help="comma-separated, each name or name=runs (default: all)"
    )
    parser.add_argument("--runs", type=int, default=0, help="inputs per target")
    parser.add_argument("--seconds", type=int, default=0, help="time per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--crashes", default="fuzz-crashes")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--no-coverage", action="store_true")
    parser.add_argument(
        "--update", action="store_true", help="replace only these targets in an existing --json"
    )
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--work", default="", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return 0
    if not args.runs and not args.seconds:
        args.runs = 10_000
    known = _targets()
    plan = [item.partition("=") for item in args.targets.split(",") if item]
    runs = {name: int(count) if count else args.runs for name, _, count in plan}
    names = list(runs) or list(known)
    results: dict[str, dict[str, object]] = {}
    failed = False
    load_before = os.getloadavg()
    started = time.time()
    for name in names:
        result = run_target(
            name, argparse.Namespace(**{**vars(args), "runs": runs.get(name, args.runs)})
        )
        results[name] = result
        cov = result.get("coverage", {})
        print(
            f"{name:22} {result['runs']:>10,} inputs {result['seconds']:>7}s "
            f"{result['inputs_per_s']:>7,}/s  edges {result['libfuzzer_edges']:>5}  "
            f"lines {cov.get('lines', '-'):>9} ({cov.get('line_pct', '-')}%)  "  # type: ignore[union-attr]
            f"branches {cov.get('branches', '-'):>9} ({cov.get('branch_pct', '-')}%)  "  # type: ignore[union-attr]
            f"crashes {len(result['crashes'])}",  # type: ignore[arg-type]
            flush=True,
        )
        if result["exit"] != 0 or result["crashes"]:
            failed = True
            print(result.get("log_tail", ""), file=sys.stderr)
    bgp = sum(
        int(r["runs"])  # type: ignore[call-overload]
        for n, r in results.items()
        if known[n].bgp  # type: ignore[attr-defined]
    )
    summary = {
        "bgp_messages_fuzzed": bgp,
        "inputs_fuzzed": sum(int(r["runs"]) for r in results.values()),  # type: ignore[call-overload]
        "crashes": sum(len(r["crashes"]) for r in results.values()),  # type: ignore[arg-type]
        "seconds": round(time.time() - started),
        "seed": args.seed,
        "python": sys.version.split()[0],
        "atheris": _version("atheris"),
        "cpus": os.cpu_count(),
        "loadavg_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "niceness": os.nice(0),
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(started)),
    }
    print(
        f"BGP messages fuzzed: {bgp:,}; all inputs: {summary['inputs_fuzzed']:,}; "
        f"crashes: {summary['crashes']}"
    )
    if args.json:
        path = Path(args.json)
        if args.update and path.exists():
            # replace these targets' figures in an earlier run's file; keep both summaries
            doc = json.loads(path.read_text())
            doc["targets"].update(results)
            doc.setdefault("updates", []).append({**summary, "targets": sorted(results)})
        else:
            doc = {"summary": summary, "targets": results}
        path.write_text(json.dumps(doc, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
