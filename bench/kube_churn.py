"""kill -9 the controller at random moments while Services churn, on the real API server.

The issue's scale by default: 100 kills of the Lease holder (two controller processes, lease
1 s) while 1,000 Services are created and then replaced one by one (delete a random one, create
a new one). An auditor watches every Service status change. Prints the figures: kills, services,
moves, double assignments, wall time; writes ``bench/kube_churn.json``.

    .venv/bin/python bench/kube_churn.py [--kills 100] [--services 1000] [--replacements 200]

Needs the API server built by ``scripts/build-k8s.sh`` (see tests/kube/harness).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.kube.churn import ChurnPlan, run_churn  # noqa: E402
from tests.kube.harness.cluster import binaries_present, start_cluster  # noqa: E402

from vipcast.sources.kube.crds import all_crds  # noqa: E402


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--replacements", type=int, default=200)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--json", type=Path, default=HERE / "kube_churn.json")
    args = parser.parse_args()
    if not binaries_present():
        print("no API server binaries: run scripts/build-k8s.sh", file=sys.stderr)
        return 2
    plan = ChurnPlan(kills=args.kills, services=args.services, replacements=args.replacements,
                     cidr="198.18.0.0/21", lease_duration=args.lease, kill_gap=(0.2, 2.0),
                     create_rate=40.0, settle_timeout=600.0, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="vc-churn-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        cluster = start_cluster(work / "k8s")
        try:
            cluster.apply_crds(all_crds())
            code, body = cluster.request("POST", "/api/v1/namespaces", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "churn"}})
            assert code == 201, body
            logs = work / "logs"
            logs.mkdir()
            experiment = run_churn(cluster, "churn", logs, plan, progress)
            figures = asyncio.run(asyncio.wait_for(experiment, 3600))
        finally:
            cluster.stop()
        total = time.monotonic() - started
    print(figures.line(), f"total_with_cluster={total:.1f}s")
    for violation in figures.violations:
        print("  violation:", violation)
    result = {"plan": asdict(plan), "figures": asdict(figures), "total_s": round(total, 1)}
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if not figures.violations else 1


if __name__ == "__main__":
    sys.exit(main())
