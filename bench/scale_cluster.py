"""The test cluster of ``bench/kube_scale.py`` (and ``bench/status_write_cost.py``): the real API
server (tests/kube/harness) holding N LoadBalancer Services with one EndpointSlice each plus
N/4 headless slices, created once per size and generator and kept as an etcd data directory in
``~/.cache/vipcast-scale`` (``VIPCAST_SCALE_CACHE``); and the CPU, memory and load figures of
the processes measured on it."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import httpx2 as httpx  # noqa: E402
from tests.kube.harness.builtin_crds import builtin_crds  # noqa: E402
from tests.kube.harness.cluster import (  # noqa: E402
    DEFAULT_BIN_DIR,
    Cluster,
    start_cluster,
)
from tests.kube.harness.proxy import CORE_APIVERSION, TOKEN  # noqa: E402

NS = "scale"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
#: created objects are kept here per size and generator (see ``objects_key``)
CACHE = Path(os.environ.get("VIPCAST_SCALE_CACHE", Path.home() / ".cache" / "vipcast-scale"))


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def cidr_for(n: int) -> str:
    bits = max(8, (n * 2 - 1).bit_length())
    return f"198.18.0.0/{32 - bits}"


async def create_objects(url: str, n: int, headless: int, width: int = 32) -> dict[str, float]:
    """N LB Services + a slice each, ``headless`` headless slices; objects/s of each phase.

    Set-up, not a measurement: sent straight to the API server (``url``, its HTTPS port, the
    Services at the stand-in core group), not through the Python shim, ``width`` at a time."""
    limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=120.0, verify=False,
                                 limits=limits) as c:
        async def post(path: str, body: dict[str, Any]) -> None:
            for attempt in range(8):
                try:
                    r = await c.post(path, json=body)
                    if r.status_code in (201, 409):
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2 * 2 ** attempt)
            raise RuntimeError(f"could not create {path} {body['metadata']['name']}")

        async def run(bodies: list[tuple[str, dict[str, Any]]]) -> float:
            t0 = time.monotonic()
            it = iter(bodies)

            async def worker() -> None:
                for path, body in it:
                    await post(path, body)
            await asyncio.gather(*(worker() for _ in range(width)))
            return len(bodies) / (time.monotonic() - t0)

        svc = [(f"/apis/{CORE_APIVERSION}/namespaces/{NS}/services", {
            "apiVersion": CORE_APIVERSION, "kind": "Service", "metadata": {"name": f"s{i}"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}})
            for i in range(n)]
        rate_svc = await run(svc)
        progress(f"{n} services at {rate_svc:.0f}/s")
        eps = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"

        def slice_(name: str, service: str, labels: dict[str, str]) -> dict[str, Any]:
            return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service,
                                                          **labels}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.244.1.10"], "nodeName": "n1",
                                   "conditions": {"ready": True}}],
                    "ports": [{"port": 8080, "protocol": "TCP", "name": ""}]}
        slices = [(eps, slice_(f"s{i}-x", f"s{i}", {})) for i in range(n)]
        slices += [(eps, slice_(f"h{i}-x", f"h{i}", {"service.kubernetes.io/headless": ""}))
                   for i in range(headless)]
        rate_eps = await run(slices)
        progress(f"{len(slices)} endpointslices at {rate_eps:.0f}/s")
        return {"services_per_s": round(rate_svc, 1), "slices_per_s": round(rate_eps, 1)}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def server_memory(cluster: Cluster) -> dict[str, float]:
    """RSS of the test cluster's processes (etcd, kube-apiserver, ...), MB."""
    return {name: rss_mb(p.pid) for name, p in cluster.procs.items()}


#: the kinds the created objects are stored as (their CRDs decide defaults and schema); the
#: other CRDs are applied afresh on every start, so they are not part of the key
STORED = {"services", "endpointslices", "xnamespaces", "ipaddresspools"}


def objects_key(n: int) -> str:
    """What the created objects depend on: size, the generator, their kinds' CRDs, the
    binaries."""
    from vipcast.sources.kube.crds import all_crds

    crds = [c for c in (*builtin_crds(), *all_crds()) if c["spec"]["names"]["plural"] in STORED]
    assert len(crds) == len(STORED), [c["metadata"]["name"] for c in crds]
    h = hashlib.sha256()
    for part in (str(n), inspect.getsource(create_objects), inspect.getsource(setup),
                 json.dumps(sorted(crds, key=lambda c: c["metadata"]["name"]), sort_keys=True),
                 (DEFAULT_BIN_DIR / "versions.txt").read_text()):
        h.update(part.encode())
    return f"{n}-{h.hexdigest()[:16]}"


def setup(cluster: Cluster, n: int) -> None:
    from vipcast.sources.kube.crds import all_crds

    cluster.apply_crds(all_crds())
    code, body = cluster.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    assert code == 201, body
    code, body = cluster.request("POST", "/apis/vipcast.io/v1beta1/ipaddresspools", {
        "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "scale"}, "spec": {"addresses": [cidr_for(n)]}})
    assert code == 201, body


async def watch_ready(cluster: Cluster, deadline_s: float = 900) -> None:
    """Until a watch of Services and of EndpointSlices from a list's resourceVersion is
    served (a freshly started API server answers 429 while its watch cache loads)."""
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient(base_url=cluster.url, headers=HEADERS, timeout=60.0) as c:
        for path in (f"/api/v1/namespaces/{NS}/services",
                     f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"):
            while True:
                r = await c.get(path, params={"limit": "1"})
                if r.status_code == 200:
                    rv = r.json()["metadata"]["resourceVersion"]
                    w = await c.get(path, params={"watch": "1", "resourceVersion": rv,
                                                  "timeoutSeconds": "1"})
                    if w.status_code == 200 and b'"Status"' not in w.content:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"watch of {path} not served: {r.status_code}")
                await asyncio.sleep(1.0)


async def created_cluster(n: int, args: argparse.Namespace, work: Path,
                          out: dict[str, Any]) -> Cluster:
    """A test cluster holding the N Services and slices, freshly started.

    The objects are created once per size and generator and their etcd data directory kept in
    ``CACHE`` (copied after a clean stop of the cluster); every measurement then starts etcd on
    a copy of it and a new API server, so a first run and a cached one measure the same thing
    (an API server that loaded the objects from etcd)."""
    from vipcast.sources.kube.crds import all_crds

    workdir = work / f"k8s-{n}"
    cached = CACHE / objects_key(n)
    if args.no_cache or not (cached / "done.json").exists():
        cluster = start_cluster(workdir, webhooks=False)
        try:
            setup(cluster, n)
            t0 = time.monotonic()
            out["create"] = await create_objects(f"https://127.0.0.1:{cluster.api_port}", n,
                                                 n // 4)
            out["create"]["wall_s"] = round(time.monotonic() - t0, 1)
            out["create"]["load_1m"] = load1()
            out["server_rss_mb_after_create"] = server_memory(cluster)
            progress(f"created: {out['create']} server rss {out['server_rss_mb_after_create']}")
        finally:
            cluster.stop()
        if args.no_cache:
            return start_cluster(workdir, webhooks=False, ready_deadline_s=900)
        tmp = cached.with_name(cached.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(workdir / "etcd-data", tmp / "etcd-data")
        (tmp / "done.json").write_text(json.dumps({
            "create": out["create"],
            "server_rss_mb_after_create": out["server_rss_mb_after_create"]}))
        tmp.rename(cached)
    else:
        done = json.loads((cached / "done.json").read_text())
        out.update(done)
        out["create"]["from_cache"] = str(cached)
        shutil.copytree(cached / "etcd-data", workdir / "etcd-data")
    t0 = time.monotonic()
    cluster = start_cluster(workdir, webhooks=False, ready_deadline_s=900)
    cluster.apply_crds(all_crds(), 900)
    out["restored_start_s"] = round(time.monotonic() - t0, 1)
    code, body = cluster.request("GET", f"/api/v1/namespaces/{NS}/services?limit=1")
    assert code == 200 and body["metadata"].get("remainingItemCount", 0) + 1 == n, (code, body)
    await watch_ready(cluster)
    out["restored_watch_ready_s"] = round(time.monotonic() - t0, 1)
    out["server_rss_mb_restored"] = server_memory(cluster)
    progress(f"cluster restored from etcd in {out['restored_start_s']} s, rss "
             f"{out['server_rss_mb_restored']}")
    return cluster
