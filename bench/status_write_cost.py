"""Where a controller status write's time and CPU go, on the test API server (issue 19).

One cluster (tests/kube/harness), M fresh Services per phase; each phase writes every one of its
Services once and reports writes/s, ms per write and the CPU per write of each process (etcd,
the Python shim for core paths, the API server, this client):

- ``apply``: what the controller sends, server-side apply of ``status.loadBalancer.ingress``
  plus its two conditions on ``/status`` (``vipcast.sources.kube.status.apply_service_ips``);
- ``apply_ingress_only``: the same without conditions (the size of the request);
- ``merge``: a JSON merge patch of the same status (no server-side apply);
- ``event``: the Event the controller creates for a new assignment;
- ``apply+event``: the controller's pair, one at a time and 8 in flight
  (``--status-write-concurrency``), alternated three times;
- ``apply_direct``: the apply sent straight to the API server, not through the shim.

    .venv/bin/python bench/status_write_cost.py [--m 300]   # writes bench/status_write_cost.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import httpx2 as httpx  # noqa: E402
from lightkube.resources.core_v1 import Service  # noqa: E402
from lightkube.types import PatchType  # noqa: E402
from scale_cluster import NS, cpu_s, create_objects, load1, setup  # noqa: E402
from tests.kube.harness.cluster import start_cluster  # noqa: E402
from tests.kube.harness.proxy import CORE_APIVERSION, TOKEN  # noqa: E402

from vipcast.sources.kube.client import make_client  # noqa: E402
from vipcast.sources.kube.status import EventRecorder, apply_service_ips  # noqa: E402

PHASES = 7 + 2 * 3  # the single phases, then three rounds of one-at-a-time vs 8 in flight


def ip(i: int) -> str:
    return f"198.18.{i // 256}.{i % 256}"


def conditions(i: int) -> list[dict[str, Any]]:
    """Like the controller's Allocated and Announced conditions."""
    stamp = "2026-12-06T08:00:00Z"
    return [{"type": "vipcast.io/Allocated", "status": "True", "reason": "Allocated",
             "message": f"{ip(i)} from pool scale", "lastTransitionTime": stamp,
             "observedGeneration": 1},
            {"type": "vipcast.io/Announced", "status": "False", "reason": "NoSpeaker",
             "message": "no node announces it", "lastTransitionTime": stamp,
             "observedGeneration": 1}]


async def run(m: int) -> dict[str, Any]:
    n = PHASES * m + 100
    with tempfile.TemporaryDirectory(prefix="vc-wcost-") as tmp:
        cluster = start_cluster(Path(tmp) / "k8s", webhooks=False)
        try:
            setup(cluster, n)
            await create_objects(f"https://127.0.0.1:{cluster.api_port}", n, 0)
            client = make_client(cluster.kubeconfig, NS, "vipcast-controller")
            recorder = EventRecorder(client, "vipcast-controller", "bench")
            direct = httpx.AsyncClient(base_url=f"https://127.0.0.1:{cluster.api_port}",
                                       verify=False, headers={"Authorization": f"Bearer {TOKEN}"})
            fresh = iter(range(n))
            out: dict[str, Any] = {"m": m, "load_1m_start": load1(), "phases": {}}

            async def phase(name: str, one: Callable[[int], Awaitable[None]],
                            width: int = 1) -> None:
                todo = iter([next(fresh) for _ in range(m)])
                cpu0 = {k: cpu_s(p.pid) for k, p in cluster.procs.items()}
                own0 = time.process_time()
                t0 = time.monotonic()

                async def worker() -> None:
                    for i in todo:
                        await one(i)
                await asyncio.gather(*(worker() for _ in range(width)))
                wall = time.monotonic() - t0
                cpu = {k: round((cpu_s(p.pid) - cpu0[k]) * 1000 / m, 2)
                       for k, p in cluster.procs.items()}
                cpu["client"] = round((time.process_time() - own0) * 1000 / m, 2)
                out["phases"][name] = {"in_flight": width, "per_s": round(m / wall, 1),
                                       "ms_each": round(wall * 1000 / m, 1),
                                       "cpu_ms_per_write": cpu, "load_1m": load1()}
                print(name, out["phases"][name], flush=True)

            async def apply(i: int) -> None:
                await apply_service_ips(client, NS, f"s{i}", [ip(i)], conditions=conditions(i))

            async def apply_ingress_only(i: int) -> None:
                await apply_service_ips(client, NS, f"s{i}", [ip(i)])

            async def merge(i: int) -> None:
                await client.patch(Service.Status, f"s{i}", {"status": {
                    "loadBalancer": {"ingress": [{"ip": ip(i), "ipMode": "VIP"}]},
                    "conditions": conditions(i)}}, namespace=NS, patch_type=PatchType.MERGE,
                    field_manager="vipcast-controller")

            async def event(i: int) -> None:
                await recorder.emit({"apiVersion": "v1", "kind": "Service", "metadata": {
                    "name": f"s{i}", "namespace": NS, "uid": f"u{i}"}},
                    "Normal", "IPAllocated", f"Assigned {ip(i)} from pool scale")

            async def apply_event(i: int) -> None:
                await apply(i)
                await event(i)

            async def apply_direct(i: int) -> None:
                body = {"apiVersion": CORE_APIVERSION, "kind": "Service",
                        "metadata": {"name": f"s{i}", "namespace": NS},
                        "status": {"loadBalancer": {"ingress": [{"ip": ip(i), "ipMode": "VIP"}]},
                                   "conditions": conditions(i)}}
                r = await direct.patch(
                    f"/apis/{CORE_APIVERSION}/namespaces/{NS}/services/s{i}/status",
                    params={"fieldManager": "vipcast-controller", "force": "true"},
                    content=json.dumps(body),
                    headers={"Content-Type": "application/apply-patch+yaml"})
                assert r.status_code == 200, r.text

            await phase("apply", apply)
            await phase("apply_ingress_only", apply_ingress_only)
            await phase("merge", merge)
            await phase("event", event)
            await phase("apply_direct", apply_direct)
            await phase("apply, 8 in flight", apply, 8)
            await phase("merge, 8 in flight", merge, 8)
            # the controller's pair, alternated so that a load change does not favour either
            for r in (1, 2, 3):
                await phase(f"apply+event one at a time #{r}", apply_event)
                await phase(f"apply+event 8 in flight #{r}", apply_event, 8)
            await client.close()
            await direct.aclose()
            out["load_1m_end"] = load1()
            out["cpu_count"] = os.cpu_count()
            return out
        finally:
            cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=300)
    parser.add_argument("--json", type=Path, default=HERE / "status_write_cost.json")
    args = parser.parse_args()
    result = asyncio.run(run(args.m))
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
