"""The controller tier of ``bench/kube_scale.py``: two leader-elected ``vipcast controller``
processes assign and write every Service's status while an auditor watches for moves and double
assignments; the Lease holder is SIGKILLed half-way and restarted; then a fresh controller
rebuilds from the written statuses."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx2 as httpx
from scale_cluster import HEADERS, NS, cpu_s, load1, progress
from tests.kube.harness.cluster import Cluster


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

