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
    .venv/bin/python bench/kube_scale.py --sizes 50000 --keep-speaker --lease-duration 15

Writes bench/kube_scale.json (each size's figures; sizes merged into the existing file). A size
in progress is written after each phase (and every ~30 s of the cold start) with
``"partial": true``, so a run cut short keeps what it measured; the RSS of the test cluster's
processes (etcd, API server) is recorded after creation and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import inspect
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import httpx2 as httpx  # noqa: E402
from tests.kube.harness.builtin_crds import builtin_crds  # noqa: E402
from tests.kube.harness.cluster import (  # noqa: E402
    DEFAULT_BIN_DIR,
    Cluster,
    binaries_present,
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


# --- the controller ---------------------------------------------------------------------------

def start_controller(cluster: Cluster, ident: str, logdir: Path, args: argparse.Namespace,
                     health: int | None = None) -> subprocess.Popen[bytes]:
    with (logdir / f"{ident}.log").open("ab") as log:
        return subprocess.Popen(
            ["nice", "-n", str(args.controller_nice), sys.executable, "-m", "vipcast.cli.main",
             "controller", "--kubeconfig", str(cluster.kubeconfig), "--namespace", NS,
             "--identity", ident, "--lease-duration", str(args.lease_duration),
             "--log-level", "WARNING",
             "--kube-api-qps", str(args.qps), "--kube-api-burst", str(args.burst),
             *(["--health", str(health)] if health else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def lease_holder(cluster: Cluster) -> str | None:
    code, body = cluster.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/vipcast-controller")
    return (body.get("spec") or {}).get("holderIdentity") if code == 200 else None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


async def cold_start(cluster: Cluster, n: int, logdir: Path,
                     args: argparse.Namespace, save: Any = None) -> dict[str, Any]:
    """Two leader-elected controllers assign and write every Service; the Lease holder is
    SIGKILLed at n/2 and restarted (same identity, as a container restart) only once the other
    replica holds the Lease; then a fresh controller starts on the written statuses."""
    holders: dict[str, str] = {}
    first: dict[str, tuple[str, ...]] = {}
    fig: dict[str, Any] = {"moves": 0, "double_assignments": 0, "kills": 0,
                           "controller_nice": args.controller_nice,
                           "lease_duration_s": args.lease_duration}
    stamps: list[float] = []
    writes: list[float] = []  # every status change seen (first writes and rewrites)
    loads: list[float] = [load1()]

    async def audit() -> None:
        async with httpx.AsyncClient(base_url=cluster.url, headers=HEADERS,
                                     timeout=httpx.Timeout(60.0, read=None)) as c:
            code = 0
            r = await c.get(f"/api/v1/namespaces/{NS}/services", params={"limit": "1"})
            rv = r.json()["metadata"]["resourceVersion"]
            async with c.stream("GET", f"/api/v1/namespaces/{NS}/services",
                                params={"watch": "1", "resourceVersion": rv}) as s:
                code = s.status_code
                async for line in s.aiter_lines():
                    ev = json.loads(line)
                    if "object" not in ev or ev.get("type") == "ERROR":
                        raise RuntimeError(f"status watch: {line[:300]}")
                    obj = ev["object"]
                    name = obj["metadata"]["name"]
                    ing = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                    ips = tuple(i["ip"] for i in ing or ())
                    if not ips:
                        continue
                    writes.append(time.monotonic())
                    if name not in first:
                        first[name] = ips
                        stamps.append(time.monotonic())
                    elif first[name] != ips:
                        fig["moves"] += 1
                    for ip in ips:
                        if holders.setdefault(ip, name) != name:
                            fig["double_assignments"] += 1
            raise RuntimeError(f"status watch ended ({code})")

    def server_cpu() -> dict[str, float]:
        return {name: cpu_s(p.pid) for name, p in cluster.procs.items()}

    def rate(times: list[float], since: float) -> float:
        later = [t for t in times if t > since]
        span = later[-1] - since if later else 0
        return round(len(later) / span, 1) if span > 0 else 0.0

    auditor = asyncio.create_task(audit())
    await asyncio.sleep(1.0)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ctl_cpu: dict[str, float] = {}
    cpu0 = server_cpu()
    t0 = time.monotonic()
    last_save = t0
    victim = ""
    kill_time = takeover_time = 0.0
    try:
        for ident in ("ctl-a", "ctl-b"):
            procs[ident] = start_controller(cluster, ident, logdir, args)
        killed = False
        deadline = t0 + args.timeout
        while len(first) < n and time.monotonic() < deadline:
            if auditor.done():
                auditor.result()
            if not killed and len(first) >= n // 2:
                victim = lease_holder(cluster) or "ctl-a"
                fig["killed"] = victim
                fig["killed_at"] = len(first)
                span = time.monotonic() - stamps[0]
                fig["writes_per_s_before_kill"] = round(len(writes) / span, 1) if span else 0
                fig["first_writes_per_s_before_kill"] = round(len(stamps) / span, 1) \
                    if span else 0
                fig["load_1m_at_kill"] = load1()
                kill_time = time.monotonic()
                ctl_cpu[f"{victim} (killed)"] = round(cpu_s(procs[victim].pid), 1)
                os.kill(procs[victim].pid, signal.SIGKILL)
                procs[victim].wait(10)
                fig["kills"] += 1
                killed = True
                progress(f"SIGKILL {victim} at {len(first)} assigned")
            if killed and not takeover_time:
                holder = lease_holder(cluster)
                if holder and holder != victim:
                    takeover_time = time.monotonic()
                    fig["new_leader"] = holder
                    fig["lease_takeover_s"] = round(takeover_time - kill_time, 2)
                    procs[victim] = start_controller(cluster, victim, logdir, args)
                    progress(f"{holder} holds the Lease {fig['lease_takeover_s']} s after "
                             f"the kill; {victim} restarted as a standby")
            now = time.monotonic()
            if now - last_save >= 30:
                last_save = now
                loads.append(load1())
                if save and len(stamps) > 1:
                    span = stamps[-1] - stamps[0]
                    save({**fig, "assigned_so_far": len(first), "elapsed_s": round(
                        now - t0, 1), "status_writes_per_s_so_far": round(
                            (len(stamps) - 1) / span, 1) if span else 0,
                        "load_1m": loads})
                progress(f"{len(first)} assigned after {now - t0:.0f} s, load {loads[-1]}")
            await asyncio.sleep(0.25 if killed and not takeover_time else 0.5)
        await asyncio.sleep(2.0)  # late writes would show as violations
        fig["assigned"] = len(first)
        fig["distinct_addresses"] = len({ip for ips in first.values() for ip in ips})
        if stamps:
            fig["first_write_s"] = round(stamps[0] - t0, 2)
            fig["all_assigned_s"] = round(stamps[-1] - t0, 2)
            window = stamps[-1] - stamps[0]
            fig["status_writes_per_s"] = round((len(stamps) - 1) / window, 1) if window else 0
            fig["status_writes_seen"] = len(writes)
            if killed:
                after = [w for w in writes if w > kill_time]
                fig["writes_after_kill"] = len(after)
            if takeover_time:
                new = [t for t in stamps if t > takeover_time]
                if new:
                    fig["first_new_write_after_kill_s"] = round(new[0] - kill_time, 2)
                    fig["first_writes_per_s_after_takeover"] = rate(stamps, new[0])
        for ident, p in procs.items():
            ctl_cpu[ident] = round(cpu_s(p.pid), 1)
        cpu1 = server_cpu()
        wall = time.monotonic() - t0
        fig["cpu_s"] = {**{k: round(cpu1[k] - cpu0.get(k, 0), 1) for k in cpu1}, **ctl_cpu}
        fig["wall_s"] = round(wall, 1)
        loads.append(load1())
        fig["load_1m"] = loads
        progress(f"cold start: {fig}")
        if save:
            save(fig)
    finally:
        for p in procs.values():
            p.kill()
            p.wait(10)
        auditor.cancel()
        with contextlib.suppress(BaseException):
            await auditor
    # restart on written statuses: rebuild from status, nothing to write (the dead leader's
    # Lease must expire first: --lease-duration)
    port = 20000 + os.getpid() % 20000
    t1 = time.monotonic()
    p = start_controller(cluster, "ctl-c", logdir, args, health=port)
    try:
        synced = False
        while time.monotonic() - t1 < args.timeout:
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
                    st = json.loads(r.read())
                if st.get("synced") and not synced:
                    synced = True
                    fig["restart_synced_s"] = round(time.monotonic() - t1, 2)
                last = st.get("last_round") or {}
                if st.get("leader") and last.get("allocated") == n:
                    fig["restart_rebuild_s"] = round(time.monotonic() - t1, 2)
                    fig["restart_writes"] = last.get("written")
                    fig["restart_status_writes_taken"] = (st.get("status_writes") or {}).get(
                        "taken")
                    break
            await asyncio.sleep(0.5)
        fig["restart_cpu_s"] = round(cpu_s(p.pid), 1)
        fig["load_1m_restart"] = load1()
    finally:
        p.kill()
        p.wait(10)
    return fig


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
    if not (args.no_cache or (cached / "done.json").exists()):
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
    parser.add_argument("--lease-duration", type=float, default=5.0,
                        help="the controllers' Lease (s; vipcast's default is 15)")
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
