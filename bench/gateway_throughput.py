"""Throughput through one gateway node, side by side in one run (``bench/gateway.py --parts
throughput``): vipcast's Envoy as rendered and run at ``BEFORE_COMMIT`` (main before the
gateway performance work), as rendered and run now, and straight to the backend.

Sides (all in the gateway namespace, each its own ``vipcast gateway`` and Envoy on its own
Gateway address, the same HTTPRoute to the same nginx backend, ``200 ok``, keep-alive):

- ``before_default``: the source tree of ``BEFORE_COMMIT`` (``git archive``) with its defaults:
  one Envoy worker (what ``vipcast agent --gateway-workdir`` and ``vipcast gateway`` ran);
- ``before``: the same with ``--concurrency 2``, as that commit's bench ran it;
- ``after``: this tree, no ``--concurrency`` (one worker per CPU it may use);
- ``direct``: wrk straight to nginx.

wrk runs in the client namespace; rounds are interleaved, the order rotated each round.
Three ways of sharing this 2-core machine:

- ``shared``: nothing pinned; wrk (-t2 -c32), nginx (one worker) and Envoy share both cores,
  as the earlier figures did.
- ``envoy_one_core``: Envoy's threads pinned to the first CPU, wrk (-t1 -c32) and nginx to the
  second: Envoy is given one whole core, the load side the other (the direct rounds show the
  load side's own ceiling on its core, which must be well above Envoy's).
- ``paired``: before and after loaded at the same time, for a cost ratio that holds on a busy
  machine.

Every round records who used the CPU (in cores, from ``/proc``: Envoy's threads, the
``vipcast gateway`` process feeding it and nginx's worker from schedstat, wrk from the rusage
of the finished child, the machine from ``/proc/stat``; ``others`` is the rest: the other
engineers' work on the shared machine, and kernel work no process was charged for), and
requests per Envoy CPU-second (what Envoy costs, whatever else runs).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

from vipcast.lab.gateway import (
    GATEWAY_IP,
    GatewayLab,
    base_objects,
    http_route,
    pod_ip,
    service_objects,
)
from vipcast.lab.netns import Netns, Process, Topology, wait_until

BEFORE_COMMIT = "4f6fdc7"
BEFORE_IP = "203.0.113.2"
BEFORE_DEFAULT_IP = "203.0.113.3"
SIDES = ("before_default", "before", "after", "direct")
BEFORE_ADMIN_PORT = 19001
ORIGINAL_PER_NODE = (1734, 3529)  # the original system's 1-node RPS range (issue #12)
REPO = Path(__file__).resolve().parents[1]

NGINX_BASE = """daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {d}/b;
  proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
{body}
}}
"""


def nginx(ns: Netns, topo: Topology, name: str, body: str) -> tuple[Process, Path]:
    d = topo.workdir / name
    d.mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(NGINX_BASE.format(d=d, body=body))
    proc = ns.spawn(["nginx", "-c", str(conf), "-p", str(d)], name=name)
    wait_until(lambda: (d / "nginx.pid").exists(), timeout=20, what=f"{name} started")
    return proc, conf


def thread_cpu(pid: int) -> float:
    """CPU seconds of every thread of ``pid`` (schedstat: nanoseconds, not 10 ms ticks)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between listdir and read
    return total / 1e9


def machine_busy() -> float:
    """CPU seconds the whole machine was busy (all CPUs; /proc/stat minus idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - fields[3] - fields[4]) / hz


def set_affinity(pid: int, cpus: set[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            continue


def workers(pid: int) -> int:
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return int(argv[argv.index("--concurrency") + 1])


def _objects(address: str, backend: str) -> list[dict[str, Any]]:
    docs = base_objects()
    docs[1]["spec"]["addresses"] = [{"type": "IPAddress", "value": address}]
    return [*docs, *service_objects("be", {backend: "ready"}),
            http_route("be", rules=[{"backendRefs": [{"name": "be", "port": 80}]}])]


def _read_status(path: Path) -> dict[str, Any]:
    import json

    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc


def before_source(lab: GatewayLab) -> Path | str:
    """BEFORE_COMMIT's ``src`` (git archive) in the lab's work directory, or why not."""
    if shutil.which("git") is None:
        return "git not installed"
    root = lab.topo.workdir / "before"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_COMMIT, "src"],
                             capture_output=True, timeout=120)
    if archive.returncode != 0:
        return f"git archive {BEFORE_COMMIT}: {archive.stderr.decode(errors='replace')}"
    tar_path = root / "src.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(root, filter="data")
    return root / "src"


def before_gateway(lab: GatewayLab, src: Path, name: str, address: str, admin_port: int,
                   backend: str, *extra: str) -> tuple[Process, int]:
    """``vipcast gateway`` from BEFORE_COMMIT's source serving ``address``: (process, Envoy
    pid) once its Envoy serves."""
    root = lab.topo.workdir / name
    config = root / "config"
    config.mkdir(parents=True)
    (config / "objects.yaml").write_text(yaml.safe_dump_all(_objects(address, backend)))
    status = root / "status.json"
    lab.gw.ip("addr", "add", f"{address}/32", "dev", "eth0")
    proc = lab.gw.spawn([
        lab.python, "-m", "vipcast.cli.main", "gateway", "-c", str(config), "--node", "gw",
        "--workdir", str(root / "run"), "--admin-port", str(admin_port),
        "--status-file", str(status), "--log-level", "WARNING", *extra,
    ], name=f"gateway-{name}", env={**os.environ, "PYTHONPATH": str(src)})

    def ready() -> int | None:
        s = _read_status(status)
        envoy = s.get("envoy", {})
        acked = s.get("acked", {})
        if envoy.get("ready") and s.get("in_sync") and "Listener" in acked:
            return int(envoy["pid"])
        return None

    pid = wait_until(ready, timeout=120, what=f"{name}: gateway at {BEFORE_COMMIT} serving",
                     on_timeout=proc.log_text)
    return proc, pid


def run_wrk(ns: Netns, url: str, seconds: int, threads: int, cpu: int | None) -> dict[str, Any]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    out = ns.run([*pin, "wrk", f"-t{threads}", "-c32", f"-d{seconds}s", "--latency",
                  "-H", "Host: bench", url], timeout=seconds + 60).stdout
    done = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert done and rps and p99, out
    return {"requests": int(done.group(1)), "rps": float(rps.group(1)),
            "p99_ms": float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]}


def one_round(lab: GatewayLab, url: str, seconds: int, threads: int, envoy: int | None,
              vipcast: int | None, nginx_worker: int, wrk_cpu: int | None) -> dict[str, Any]:
    e0 = thread_cpu(envoy) if envoy else 0.0
    v0 = thread_cpu(vipcast) if vipcast else 0.0
    n0, m0, t0 = thread_cpu(nginx_worker), machine_busy(), time.monotonic()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    got = run_wrk(lab.client, url, seconds, threads, wrk_cpu)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - t0
    e = (thread_cpu(envoy) if envoy else 0.0) - e0
    v = (thread_cpu(vipcast) if vipcast else 0.0) - v0
    n, m = thread_cpu(nginx_worker) - n0, machine_busy() - m0
    w = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    got["cpu_cores"] = {"envoy": round(e / wall, 2), "wrk": round(w / wall, 2),
                        "nginx": round(n / wall, 2), "vipcast_gateway": round(v / wall, 2),
                        "others": round(max(0.0, m - e - v - n - w) / wall, 2),
                        "machine": round(m / wall, 2)}
    if envoy:
        got["requests_per_envoy_cpu_s"] = round(got["requests"] / e) if e > 0 else None
    return got


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rps": round(statistics.median(r["rps"] for r in runs)),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
        "cpu_cores_median": {k: round(statistics.median(r["cpu_cores"][k] for r in runs), 2)
                             for k in runs[0]["cpu_cores"]},
        "runs": runs,
    }
    if "requests_per_envoy_cpu_s" in runs[0]:
        per = [r["requests_per_envoy_cpu_s"] for r in runs if r["requests_per_envoy_cpu_s"]]
        out["requests_per_envoy_cpu_s"] = round(statistics.median(per)) if per else None
    return out


def ratios(res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    a, d = res["after"], res["direct"]
    out["after_vs_direct_rps"] = round(a["rps"] / d["rps"], 3)
    out["after_vs_direct_p99"] = round(a["p99_ms"] / d["p99_ms"], 2)
    bd = res.get("before_default")
    if bd is not None:
        out["after_vs_before_default_rps"] = round(a["rps"] / bd["rps"], 3)
        out["after_vs_before_default_p99"] = round(a["p99_ms"] / bd["p99_ms"], 2)
    b = res.get("before")
    if b is not None:
        out["after_vs_before_rps"] = round(a["rps"] / b["rps"], 3)
        out["after_vs_before_p99"] = round(a["p99_ms"] / b["p99_ms"], 2)
        if a.get("requests_per_envoy_cpu_s") and b.get("requests_per_envoy_cpu_s"):
            out["after_vs_before_requests_per_envoy_cpu_s"] = round(
                a["requests_per_envoy_cpu_s"] / b["requests_per_envoy_cpu_s"], 3)
        out["before_vs_direct_rps"] = round(b["rps"] / d["rps"], 3)
    return out


def paired(lab: GatewayLab, urls: dict[str, str], envoys: dict[str, int], rounds: int,
           seconds: int) -> dict[str, Any]:
    """Before and after loaded at the same time (one wrk -t1 -c32 each, unpinned): whatever
    else the machine runs hits both alike, so the ratio of their requests per Envoy CPU-second
    holds where the rates alone do not (an identical pair, tried by hand at load ~20, spread
    0.94-1.09 per 6 s round)."""
    per_round = []
    for r in range(rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        cpu0 = {s: thread_cpu(envoys[s]) for s in order}
        procs = {s: subprocess.Popen(lab.client.exec_argv(
            ["wrk", "-t1", "-c32", f"-d{seconds}s", "-H", "Host: bench", urls[s]]),
            stdout=subprocess.PIPE, text=True) for s in order}
        outs = {s: procs[s].communicate(timeout=seconds + 60)[0] for s in order}
        got: dict[str, Any] = {}
        for s in order:
            done = re.search(r"(\d+) requests in", outs[s])
            assert done, outs[s]
            cpu = thread_cpu(envoys[s]) - cpu0[s]
            got[s] = {"rps": round(int(done.group(1)) / seconds),
                      "requests_per_envoy_cpu_s": round(int(done.group(1)) / cpu) if cpu else 0}
        got["ratio"] = round(got["after"]["requests_per_envoy_cpu_s"]
                             / max(1, got["before"]["requests_per_envoy_cpu_s"]), 3)
        per_round.append(got)
    ratios_ = [g["ratio"] for g in per_round]
    return {"wrk": "-t1 -c32 per side, both at once, unpinned",
            "after_vs_before_requests_per_envoy_cpu_s": round(statistics.median(ratios_), 3),
            "range": [min(ratios_), max(ratios_)], "rounds": per_round}


def throughput(lab: GatewayLab, rounds: int, seconds: int) -> dict[str, Any]:
    lab.client.ip("route", "add", "10.0.0.0/24", "via", GATEWAY_IP)
    lab.pods_ns.ip("route", "add", "default", "via", "10.0.0.1")
    ip = pod_ip(9)
    lab.pods_ns.add_address("eth0", f"{ip}/24")
    _ngx, conf = nginx(lab.pods_ns, lab.topo, "nginx-backend",
                       f'server {{ listen {ip}:8080; location / {{ return 200 "ok\\n"; }} }}')
    master = int((conf.parent / "nginx.pid").read_text())
    nginx_worker = int(subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                      text=True, check=True).stdout.split()[0])
    lab.apply(_objects(GATEWAY_IP, ip))
    after_envoy = int(lab.status()["envoy"]["pid"])
    envoys = {"after": after_envoy}
    assert lab.gateway_proc is not None
    vipcasts = {"after": lab.gateway_proc.pid}  # `ip netns exec` execs: the same pid
    urls = {"after": f"http://{GATEWAY_IP}/", "direct": f"http://{ip}:8080/"}
    out: dict[str, Any] = {"before_commit": BEFORE_COMMIT}
    src = before_source(lab)
    if isinstance(src, str):
        out["before_skipped"] = src
    else:
        # as BEFORE_COMMIT's bench ran it (two workers), and as its defaults ran it (one)
        for side, address, port, extra in (
                ("before", BEFORE_IP, BEFORE_ADMIN_PORT, ("--concurrency", "2")),
                ("before_default", BEFORE_DEFAULT_IP, BEFORE_ADMIN_PORT + 1, ())):
            proc, pid = before_gateway(lab, src, side, address, port, ip, *extra)
            envoys[side], vipcasts[side] = pid, proc.pid
            urls[side] = f"http://{address}/"
    out["envoy_workers"] = {k: workers(pid) for k, pid in envoys.items()}
    sides = [s for s in SIDES if s in urls]
    cpus = sorted(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]

    def measure(threads: int, wrk_cpu: int | None) -> dict[str, Any]:
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
        for r in range(rounds):
            for side in sides[r % len(sides):] + sides[:r % len(sides)]:
                runs[side].append(one_round(lab, urls[side], seconds, threads,
                                            envoys.get(side), vipcasts.get(side),
                                            nginx_worker, wrk_cpu))
        res = {s: summary(v) for s, v in runs.items()}
        return {**res, "ratios": ratios(res)}

    out["shared"] = {"wrk": "-t2 -c32, unpinned", **measure(2, None)}
    if len(cpus) >= 2:
        everything = set(cpus)
        for pid in envoys.values():
            set_affinity(pid, {cpus[0]})
        set_affinity(nginx_worker, {cpus[1]})
        try:
            out["envoy_one_core"] = {
                "wrk": f"-t1 -c32 on CPU {cpus[1]} with nginx; Envoy on CPU {cpus[0]}",
                **measure(1, cpus[1])}
        finally:
            for pid in [*envoys.values(), nginx_worker]:
                set_affinity(pid, everything)
    if "before" in envoys:
        out["paired"] = paired(lab, urls, envoys, 2 * rounds, seconds)
    out["loadavg_1m_before_after"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    others = [r["cpu_cores"]["others"] for mode in ("shared", "envoy_one_core") if mode in out
              for side in sides for r in out[mode][side]["runs"]]
    out["others_cores_median"] = round(statistics.median(others), 2)
    if out["others_cores_median"] > 0.3:
        out["warning"] = (f"other work used {out['others_cores_median']} of {len(cpus)} cores "
                          "during the rounds: the rates are what this machine left over, not "
                          "Envoy's (requests per Envoy CPU-second suffers too: more wake-ups "
                          "per request, cold caches)")
    out["per_node"] = per_node(out, len(cpus))
    return out


def per_node(out: dict[str, Any], cores: int) -> dict[str, Any]:
    """The figures to hold against the original system's 1,734-3,529 RPS per node: measured
    with wrk, nginx and Envoy on this machine's cores, and for Envoy given all the node's cores
    (client and pods elsewhere, as in production), which this machine cannot measure (the load
    side needs cores of its own): Envoy's workers share nothing, so that is ``cores`` x what
    one Envoy CPU-second serves."""
    lo, hi = ORIGINAL_PER_NODE
    after = out["shared"]["after"]
    res: dict[str, Any] = {"node_cores": cores, "shared_rps": after["rps"],
                           "shared_vs_original": [round(after["rps"] / hi, 1),
                                                  round(after["rps"] / lo, 1)]}
    one = out.get("envoy_one_core", {}).get("after")
    if one:
        res["envoy_one_core_rps"] = one["rps"]
        res["envoy_one_core_cores_used"] = one["cpu_cores_median"]["envoy"]
    per_s = [r["requests_per_envoy_cpu_s"]
             for mode in ("shared", "envoy_one_core") if mode in out
             for r in out[mode]["after"]["runs"] if r.get("requests_per_envoy_cpu_s")]
    if per_s:
        cost = round(statistics.median(per_s))
        res["requests_per_envoy_cpu_s_all_rounds"] = cost
        res["envoy_given_node_cores_rps"] = cost * cores
        res["envoy_given_node_cores_vs_original"] = [round(cost * cores / hi, 1),
                                                     round(cost * cores / lo, 1)]
    return res


def table(out: dict[str, Any]) -> str:
    """The throughput part as the markdown rows bench/README.md shows."""
    lines = [f"load average {out['loadavg_1m_before_after'][0]} -> "
             f"{out['loadavg_1m_before_after'][1]}, other work {out['others_cores_median']} "
             f"cores; Envoy workers {out['envoy_workers']}", "",
             "| sharing | path | RPS | p99 | requests per Envoy CPU-s | CPU cores: Envoy / "
             "wrk / nginx / vipcast / others |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for mode in ("shared", "envoy_one_core"):
        if mode not in out:
            continue
        for side in SIDES:
            x = out[mode].get(side)
            if x is None:
                continue
            c = x["cpu_cores_median"]
            per = x.get("requests_per_envoy_cpu_s")
            lines.append(
                f"| {mode} | {side} | {x['rps']:,} | {x['p99_ms']} ms | "
                f"{f'{per:,}' if per else ''} | {c['envoy']} / {c['wrk']} / {c['nginx']} / "
                f"{c['vipcast_gateway']} / {c['others']} |")
    lines.append("")
    for mode in ("shared", "envoy_one_core"):
        if mode in out:
            lines.append(f"{mode} ratios: " + ", ".join(
                f"{k} {v}" for k, v in out[mode]["ratios"].items()))
    if "paired" in out:
        pr = out["paired"]
        lines.append(f"paired (before and after at once): after/before requests per Envoy "
                     f"CPU-s {pr['after_vs_before_requests_per_envoy_cpu_s']} "
                     f"(range {pr['range'][0]}-{pr['range'][1]})")
    lines.append(f"per node: {out['per_node']}")
    return "\n".join(lines)
