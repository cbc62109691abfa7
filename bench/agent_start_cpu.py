"""The agent's own part of a cold start, in CPU seconds: process start -> last route received.

    .venv/bin/python bench/agent_start_cpu.py [--services 10000] [--trials 3]
                                              [--variants before,before-warm,after,warm]
                                              [--before-rev 4f6fdc7]

``bench/agent_routes.py`` times the whole start into FRR's kernel; on a machine shared with
other engineers' test runs its wall times are several times an idle machine's. This bench
counts what the agent itself spends, which such a machine inflates far less: ``vipcast agent
--no-dataplane`` is started (as a user runs it, byte-compiled) with N Services in one YAML file
and one BGPPeer, a passive vipcast speaker in this process on loopback (127.0.0.3) is its
router, and at the moment the router has received all N routes the agent's user + system CPU
(``/proc/PID/stat``, all its threads) and the wall time since its start are taken.

Variants: ``before``/``before-warm``: the tree at ``--before-rev`` (extracted with ``git
archive``) with an empty / a primed ``--cache-dir`` (its per-file cache); ``after``/``warm``:
this tree, likewise (``warm``: the start cache, ``app/start_cache.py``). A priming start, not
timed, fills a warm cache and is stopped once the cache is written. Writes
``bench/agent_start_cpu.json`` with the 1-minute load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from agent_routes import (
    base_objects,
    cache_written,
    compiled,
    extract,
    service_objects,
    user_env,
)
from bgp_routes import prefixes

from vipcast.proto.bgp import SessionConfig
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker

ROOT = Path(__file__).resolve().parents[1]
ROUTER, NODE = "127.0.0.3", "127.0.0.2"


def write_config(config: Path, n: int, port: int) -> None:
    config.mkdir(parents=True, exist_ok=True)
    base = base_objects(ROUTER, NODE, port)
    (config / "base.yaml").write_text(yaml.safe_dump_all(base, sort_keys=False))
    docs: list[dict[str, Any]] = []
    for i, prefix in enumerate(prefixes(n)):
        docs += service_objects(f"s{i:05d}", prefix.split("/")[0])
    (config / "services.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PEER = PeerSettings(name="node", address=NODE, session=SessionConfig(
    local_asn=65000, peer_asn=65001, router_id="192.0.2.3", passive=True))


async def one_start(router: Speaker, src: Path, config: Path, cache: Path, n: int,
                    log: Path, prime: bool = False) -> dict[str, float]:
    router.configure([])  # a fresh peer: its counters start at zero
    await asyncio.sleep(0.1)
    router.configure([PEER])
    # the installed `vipcast` program's entry point (pyproject.toml [project.scripts])
    argv = [sys.executable, "-c", "from vipcast.cli.main import main; main()", "agent",
            "--config", str(config), "--node", "n1", "--no-dataplane",
            "--metrics-address", "127.0.0.1:0", "--log-level", "WARNING",
            "--cache-dir", str(cache)]
    with log.open("w") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, env=user_env(src), stdout=out, stderr=out)
        try:
            def received(s: Speaker) -> bool:
                peer = s.peers().get("node")
                return peer is not None and peer.status().prefixes_received >= n

            if not await router.wait_for(received, 600):
                raise TimeoutError(f"the router did not receive {n} routes")
            wall, cpu = time.monotonic() - t0, cpu_of(proc.pid)
            if prime:
                await asyncio.to_thread(cache_written, src, cache)
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)
    return {"wall_s": wall, "cpu_s": cpu}


async def run(args: argparse.Namespace, root: Path) -> dict[str, list[dict[str, float]]]:
    router = Speaker(listen=[(ROUTER, 0)], log=logging.getLogger("bench.router"))
    await router.start()
    variants = args.variants.split(",")
    trees = {"after": compiled(ROOT / "src")}
    if any(v.startswith("before") for v in variants):
        trees["before"] = extract(args.before_rev, root / "before")
    config = root / "config"
    write_config(config, args.services, router.listen_ports[0])
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    try:
        for trial in range(args.trials):
            for variant in variants:  # interleaved: a busy machine's noise falls on all
                tree = trees["before" if variant.startswith("before") else "after"]
                warm = variant in ("warm", "before-warm")
                cache = root / f"cache-{variant}" if warm else root / f"cold-{variant}-{trial}"
                if warm and trial == 0:
                    await one_start(router, tree, config, cache, args.services,
                                    root / f"{variant}-prime.log", prime=True)
                result = await one_start(router, tree, config, cache, args.services,
                                         root / f"{variant}-{trial}.log")
                runs[variant].append(result)
                print(variant, json.dumps(result), flush=True)
    finally:
        await router.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--variants", default="before,before-warm,after,warm")
    parser.add_argument("--before-rev", default="4f6fdc7")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "agent_start_cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vc-asc-") as tmp:
        runs = asyncio.run(run(args, Path(tmp)))
    summary = {v: {k: round(statistics.median(r[k] for r in rs), 3) for k in ("cpu_s", "wall_s")}
               for v, rs in runs.items() if rs}
    ref = summary.get("before", {}).get("cpu_s")
    print(f"\n{args.services} services, process start -> last route at the router, medians:")
    for v, fig in summary.items():
        ratio = f"  before/{v} {ref / fig['cpu_s']:.2f}x" if ref else ""
        print(f"{v:12} CPU {fig['cpu_s']:.3f} s  wall {fig['wall_s']:.3f} s{ratio}")
    args.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "services": args.services, "trials": args.trials,
        "before_rev": args.before_rev, "load_average_1min": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(), "median": summary, "runs": runs,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
