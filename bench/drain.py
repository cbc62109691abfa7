"""Drains and stops against FRR 8.4 under steady load: when the path leaves, and what fails.

Lab (namespaces under ``vc-<pid>-``): FRR router with ``fib_multipath_hash_policy=1``, three
vipcast agents announcing one VIP (ECMP), a TCP server answering on the VIP on every node,
and a client behind the router opening new connections at about 100/s. In each trial n3 is
taken out one way and the bench measures the time from the command to FRR's withdrawal of
n3's path, and counts the client's new connections (ok / failed / reset):

* ``grace``     — ``vipcast drain n3`` with a 10 s grace and no early end (the reference:
  GRACEFUL_SHUTDOWN, then the withdrawal when the grace passes);
* ``quiet``     — the same drain with a 120 s grace and ``--drain-quiet 3``: the nftables
  counter of new connections to the VIP ends the wait once the routers moved away;
* ``sigterm``   — SIGTERM to n3's agent: withdraw, then Cease, then exit.

    .venv/bin/python bench/drain.py [--trials 1]

Prints a table (withdrawal time as a ratio of the grace) and writes ``bench/drain.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "bgp"))  # the lab modules the tests import

from tests.bgp.test_interop_frr_drain import VIP, cli, loaded_lab  # noqa: E402

from vipcast.lab.netns import Topology  # noqa: E402

MODES: dict[str, tuple[float, float]] = {"grace": (10.0, 0.0), "quiet": (120.0, 3.0),
                                         "sigterm": (10.0, 0.0)}
LOAD_SECONDS = 20


def trial(mode: str) -> dict[str, Any]:
    grace, quiet = MODES[mode]
    with Topology() as topo:
        loaded = loaded_lab(topo, grace=grace, quiet=quiet, seconds=LOAD_SECONDS)
        lab = loaded.lab
        start = time.monotonic()
        if mode == "sigterm":
            lab.agents["n3"].signal(signal.SIGTERM)
        else:
            cli("drain", "n3", "--config", str(lab.config))
        lab.frr.wait_paths(VIP, 2, timeout=grace + 60)
        withdrawn = time.monotonic() - start
        totals = loaded.totals(timeout=LOAD_SECONDS + 60)
    return {"mode": mode, "grace_s": grace, "quiet_s": quiet, "withdrawn_after_s": withdrawn,
            "ok": totals["ok"], "failed": totals["failed"], "resets": totals["resets"],
            "n3_served": totals["by_node"].get("n3", 0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1)
    args = parser.parse_args()
    results = [trial(mode) for _ in range(args.trials) for mode in MODES]
    reference = [r["withdrawn_after_s"] for r in results if r["mode"] == "grace"]
    ref = sum(reference) / len(reference)
    print(f"{'mode':8} {'grace':>6} {'withdrawn':>10} {'/ ref':>7} {'ok':>6} {'failed':>6} "
          f"{'resets':>6}")
    for r in results:
        r["ratio_to_grace_reference"] = r["withdrawn_after_s"] / ref
        print(f"{r['mode']:8} {r['grace_s']:6.0f} {r['withdrawn_after_s']:9.2f}s "
              f"{r['ratio_to_grace_reference']:7.2f} {r['ok']:6} {r['failed']:6} "
              f"{r['resets']:6}")
    doc = {"bench": "drain", "when": datetime.now(UTC).isoformat(timespec="seconds"),
           "reference": "drain with a 10 s grace and no early end", "results": results}
    (HERE / "drain.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
