"""The Kubernetes tier at scale, on the real API server (tests/kube/harness), one cluster per size.

For each size N: N LoadBalancer Services, one EndpointSlice each, plus N/4 slices of headless
Services (what a real cluster's EndpointSlice controller labels ``service.kubernetes.io/headless``)
are created through the API server. Then, in one run:

1. **speaker watch tier, before/after**: a child process runs the speaker's Service and
   EndpointSlice reflectors (``vipcast.sources.kube.reflector``) to sync, reports its RSS growth
   and CPU time, then the CPU per watch event while the bench patches Services. "before" = every
   EndpointSlice, objects stored whole; "after" = the speaker's selector (no headless slices) and
   ``managedFields`` dropped (what ``SPEAKER_KINDS`` does now).
2. **controller cold start**: two ``vipcast controller`` processes (leader-elected, status writes
   limited to ``--qps``/``--burst``) allocate and write every Service's status; when half are
   written the Lease holder is SIGKILLed, and restarted (same identity, as a container restart)
   once the other replica holds the Lease. An auditor watches every status change: moves and
   double assignments must be 0. Then both are stopped and a fresh controller starts on the
   written statuses: the time until its first round finds nothing to write (rebuild from
   status) is the restart figure. CPU seconds of each process and the 1-min load are recorded.

The objects are created once per size (straight at the API server, not through the shim) and
kept as an etcd data directory in ``~/.cache/vipcast-scale`` (``VIPCAST_SCALE_CACHE``); each
measurement starts a fresh API server on a copy.

    nice .venv/bin/python bench/kube_scale.py --sizes 5000,10000 [--qps 100 --burst 200]
    .venv/bin/python bench/kube_scale.py --sizes 50000 --keep-speaker

Writes bench/kube_scale.json (each size's figures; sizes merged into the existing file). A size
in progress is written after each phase (and every ~30 s of the cold start) with
``"partial": true``, so a run cut short keeps what it measured; the RSS of the test cluster's
processes (etcd, API server) is recorded after creation and at the end.

The cluster and its cache are in ``bench/scale_cluster.py``, the controller tier in
``bench/scale_controller.py``; the speaker tier and the run are here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import httpx2 as httpx  # noqa: E402
from scale_cluster import HEADERS, NS, created_cluster, load1, progress, server_memory  # noqa: E402
from scale_controller import cold_start  # noqa: E402
from tests.kube.harness.cluster import Cluster, binaries_present  # noqa: E402

# --- the speaker's watch tier, in a child process ---------------------------------------------

async def probe(kubeconfig: Path, mode: str, events: int) -> dict[str, Any]:
    from vipcast.sources.kube.client import make_client
    from vipcast.sources.kube.reflector import Reflector
    from vipcast.sources.kube.resources import ENDPOINT_SLICES, SERVICES, SPEAKER_ENDPOINT_SLICES

    client = make_client(kubeconfig, NS, "probe")
    slices = ENDPOINT_SLICES if mode == "before" else SPEAKER_ENDPOINT_SLICES
    changes = 0

    def changed() -> None:
        nonlocal changes
        changes += 1
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    t0 = time.monotonic()
    refl = [Reflector(client, w, changed, slim=mode != "before") for w in (SERVICES, slices)]
    tasks = [asyncio.create_task(r.run()) for r in refl]
    for r in refl:
        await r.synced.wait()
    out: dict[str, Any] = {
        "mode": mode, "services": len(refl[0].store), "slices": len(refl[1].store),
        "sync_s": round(time.monotonic() - t0, 2),
        "sync_cpu_s": round(time.process_time() - cpu0, 2),
        "rss_growth_mb": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1),
    }
    print(json.dumps({"synced": True}), flush=True)  # the bench now patches Services
    base, cpu1 = changes, time.process_time()
    while changes - base < events:
        await asyncio.sleep(0.05)
    out["cpu_ms_per_event"] = round((time.process_time() - cpu1) * 1000 / events, 3)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.close()
    return out


async def speaker_tier(cluster: Cluster, mode: str, events: int, n: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--probe", mode, "--kubeconfig", str(cluster.kubeconfig),
        "--events", str(events), stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 1800)
    assert json.loads(line)["synced"], line
    async with httpx.AsyncClient(base_url=cluster.url, headers={
            **HEADERS, "Content-Type": "application/merge-patch+json"}, timeout=60.0) as c:
        for i in range(events):
            await c.patch(f"/api/v1/namespaces/{NS}/services/s{(i * 7919) % n}",
                          content=json.dumps({"metadata": {"annotations": {
                              "bench/touch": f"{mode}{i}"}}}))
    result: dict[str, Any] = json.loads(await asyncio.wait_for(proc.stdout.readline(), 600))
    await proc.wait()
    return result


# --- one size ---------------------------------------------------------------------------------

async def one_size(n: int, args: argparse.Namespace, work: Path,
                   save: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"services": n, "headless_slices": n // 4, "load_1m_start": load1()}
    if args.speaker_from is not None:
        out["speaker"] = {**args.speaker_from, "kept": "measured in an earlier run"}
    cluster = await created_cluster(n, args, work, out)
    try:
        if save:
            save(out)
        if args.speaker_from is None:
            out["speaker"] = {}
            for mode in ("before", "after"):
                out["speaker"][mode] = await speaker_tier(cluster, mode, args.events, n)
                progress(f"speaker {mode}: {out['speaker'][mode]}")
                if save:
                    save(out)
        logdir = work / f"logs-{n}"
        logdir.mkdir()
        out["controller"] = await cold_start(
            cluster, n, logdir, args,
            (lambda fig: save({**out, "controller": fig})) if save else None)
        out["controller"].update(qps_limit=args.qps, burst=args.burst)
        out["server_rss_mb_end"] = server_memory(cluster)
        return out
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,10000")
    parser.add_argument("--qps", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--json", type=Path, default=HERE / "kube_scale.json")
    parser.add_argument("--probe", choices=("before", "after"))
    parser.add_argument("--kubeconfig", type=Path)
    parser.add_argument("--lease-duration", type=float, default=15.0,
                        help="the controllers' Lease (s), vipcast's default; a 5 s Lease "
                             "stepped down at load 28-31 (docs/kubernetes.md 'Lease timing')")
    parser.add_argument("--controller-nice", type=int, default=0,
                        help="niceness of the controller processes (the run's own: 0)")
    parser.add_argument("--keep-speaker", action="store_true",
                        help="keep the speaker figures already in --json for a size (not "
                             "measured again)")
    parser.add_argument("--no-cache", action="store_true",
                        help="create the objects even if a cached etcd holds them (not saved)")
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(asyncio.run(probe(args.kubeconfig, args.probe, args.events))))
        return 0
    if not binaries_present():
        print("no API server binaries: run scripts/build-k8s.sh", file=sys.stderr)
        return 2
    old = json.loads(args.json.read_text()) if args.json.exists() else {}
    results: dict[str, Any] = old.get("sizes", {})
    with tempfile.TemporaryDirectory(prefix="vc-scale-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            t0 = time.monotonic()
            args.speaker_from = (results.get(str(n)) or {}).get("speaker") \
                if args.keep_speaker else None
            if args.keep_speaker and args.speaker_from is None:
                print(f"--keep-speaker: no speaker figures for {n} in {args.json}",
                      file=sys.stderr)
                return 2

            def save(partial: dict[str, Any], key: str = str(n)) -> None:
                results[key] = {**partial, "partial": True}
                args.json.write_text(json.dumps({"sizes": results}, indent=2) + "\n")

            results[str(n)] = asyncio.run(one_size(n, args, Path(tmp), save))
            results[str(n)]["total_s"] = round(time.monotonic() - t0, 1)
            sp = results[str(n)]["speaker"]
            b, a = sp["before"], sp["after"]
            print(f"n={n} speaker rss {b['rss_growth_mb']} -> {a['rss_growth_mb']} MB "
                  f"(x{a['rss_growth_mb'] / max(b['rss_growth_mb'], 0.1):.2f}), sync cpu "
                  f"{b['sync_cpu_s']} -> {a['sync_cpu_s']} s, cpu/event {b['cpu_ms_per_event']}"
                  f" -> {a['cpu_ms_per_event']} ms; controller {results[str(n)]['controller']}",
                  flush=True)
            args.json.write_text(json.dumps({"sizes": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
