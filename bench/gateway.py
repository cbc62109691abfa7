"""The L7 gateway, side by side in one run (as root; namespaces ``vc-<pid>-*``):

1. RPS and p99 through one gateway node (Envoy fed by vipcast) as rendered at 4f6fdc7 and as
   rendered now, vs straight to the backend (nginx returning a small body, keep-alive, wrk
   from the client namespace; rounds interleaved), unpinned and with Envoy given one core;
   who used the CPU; per-node RPS against the original system's 1,734-3,529
   (``bench/gateway_throughput.py``).
2. Endpoint churn under steady load: vipcast (EDS updates) vs nginx as the proxy, reloaded on
   each change (the original system's design): failed requests and resets.
3. EndpointSlice change -> first request served by the new pod (median of N flips).
4. Scale: 1,000 HTTPRoutes / 10,000 endpoints: vipcast's CPU to load+translate+render, Envoy's
   RSS (over an idle Envoy), vipcast's RSS, and vipcast's CPU for one endpoint change.
5. EDS (state of the world) for one endpoint change at 10 and 1,000 clusters: bytes sent
   against what a delta response would carry, vipcast's and Envoy's CPU per update (is
   incremental xDS worth it?).

    .venv/bin/python bench/gateway.py [--quick] [--parts throughput,...] [--out F]

Only the parts run are replaced in ``--out`` (the others' figures stay).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from gateway_throughput import NGINX_BASE, nginx, table, throughput

from vipcast.lab.gateway import (
    GATEWAY_IP,
    GatewayLab,
    base_objects,
    http_route,
    pod_ip,
    service_objects,
)
from vipcast.lab.netns import Netns, Process, Topology, wait_until


def _load(lab: GatewayLab, url: str, seconds: int, name: str) -> tuple[Process, Path]:
    out = lab.topo.workdir / f"{name}.json"
    proc = lab.client.spawn([lab.python, "-m", "vipcast.lab.http_load", "--url", url,
                             "--connections", "4", "--rate", "200", "--duration",
                             str(seconds), "--out", str(out)], name=name)
    wait_until(lambda: "ready" in proc.log_text(), timeout=30, what="load started")
    return proc, out


def _finish(proc: Process, out: Path) -> dict[str, Any]:
    proc.signal(signal.SIGTERM)
    wait_until(lambda: out.exists(), timeout=30, what="load result")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def churn(lab: GatewayLab, cycles: int) -> dict[str, Any]:
    names = ["p0", "p1", "p2", "p3"]
    for n, name in enumerate(names):
        if name not in lab.pods:
            lab.start_pod(name, n)
    pool = {pod_ip(n): "ready" for n in range(4)}

    def objects() -> list[dict[str, Any]]:
        return [*base_objects(), *service_objects("app", pool),
                http_route("c", rules=[{"backendRefs": [{"name": "app", "port": 80}]}])]

    def cycle(i: int, remove: Any, add: Any) -> None:
        name = names[i % 4]
        ip = pod_ip(i % 4)
        remove(ip)
        lab.stop_pod(name)
        lab.start_pod(name, i % 4)
        add(ip)

    # vipcast: terminating, removed (EDS), pod replaced, added back (EDS)
    lab.apply(objects())
    proc, out = _load(lab, f"http://{GATEWAY_IP}/", 600, "churn-vipcast")
    time.sleep(1)
    started = time.monotonic()

    def v_remove(ip: str) -> None:
        pool[ip] = "terminating"
        lab.apply(objects())
        del pool[ip]
        lab.apply(objects())

    def v_add(ip: str) -> None:
        pool[ip] = "ready"
        lab.apply(objects())

    for i in range(cycles):
        cycle(i, v_remove, v_add)
    vip = _finish(proc, out)
    vip["churn_seconds"] = round(time.monotonic() - started, 2)

    # nginx in the gateway namespace, upstream rewritten and reloaded on every change
    members = {pod_ip(n) for n in range(4)}

    def body() -> str:
        servers = " ".join(f"server {ip}:8080;" for ip in sorted(members))
        return (f"upstream app {{ {servers} keepalive 32; }}\n"
                f"server {{ listen {GATEWAY_IP}:8081; location / {{ proxy_pass http://app; "
                'proxy_http_version 1.1; proxy_set_header Connection ""; } }')

    ngx, conf = nginx(lab.gw, lab.topo, "nginx-proxy", body())
    pid_file = conf.parent / "nginx.pid"

    def reload() -> None:
        conf.write_text(NGINX_BASE.format(d=conf.parent, body=body()))
        lab.gw.run(["kill", "-HUP", pid_file.read_text().strip()])
        time.sleep(0.3)  # reload is asynchronous; give the new workers their start

    proc, out = _load(lab, f"http://{GATEWAY_IP}:8081/", 600, "churn-nginx")
    time.sleep(1)
    started = time.monotonic()

    def n_remove(ip: str) -> None:
        members.discard(ip)
        reload()

    def n_add(ip: str) -> None:
        members.add(ip)
        reload()

    for i in range(cycles):
        cycle(i, n_remove, n_add)
    ngx_res = _finish(proc, out)
    ngx_res["churn_seconds"] = round(time.monotonic() - started, 2)
    ngx.stop()
    return {"cycles": cycles, "vipcast": vip, "nginx_reload": ngx_res}


FLIP_CLIENT = """
import http.client, json, sys, time
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
last = None
end = time.time() + float(sys.argv[2])
print("ready", flush=True)
while time.time() < end:
    try:
        c.request("GET", "/", headers={"Host": "flip"})
        b = json.loads(c.getresponse().read())["backend"]
    except Exception:
        c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
        continue
    if b != last:
        print(f"{time.time():.6f} {b}", flush=True)
        last = b
"""


def first_request(lab: GatewayLab, flips: int) -> dict[str, Any]:
    for n, name in enumerate(["p0", "p1"]):
        if name not in lab.pods:
            lab.start_pod(name, n)

    def objects(ip: str) -> list[dict[str, Any]]:
        return [*base_objects(), *service_objects("flip", {ip: "ready"}),
                http_route("f", rules=[{"backendRefs": [{"name": "flip", "port": 80}]}])]

    lab.apply(objects(pod_ip(0)))
    client = lab.client.spawn([lab.python, "-c", FLIP_CLIENT, GATEWAY_IP, "600"], name="flip")
    wait_until(lambda: "p0" in client.log_text(), timeout=30, what="flip client")
    took = []
    for i in range(1, flips + 1):
        want = f"p{i % 2}"
        t0 = time.time()
        lab.apply_nowait(objects(pod_ip(i % 2)))

        def seen(want: str = want, t0: float = t0) -> float | None:
            for line in client.log_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == want and float(parts[0]) > t0:
                    return float(parts[0])
            return None

        t1 = wait_until(seen, timeout=30, interval=0.01, what="new pod served")
        took.append((t1 - t0) * 1000)
        time.sleep(0.3)
    client.stop()
    return {"flips": flips, "median_ms": statistics.median(took),
            "max_ms": max(took), "all_ms": [round(t, 1) for t in took]}


def _proc_stat(ns: Netns, pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = 100.0
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmRSS")) / 1024
    return cpu, rss


def scale(topo: Topology, routes: int, services: int, per_service: int) -> dict[str, Any]:
    from vipcast.core.gateway import translate
    from vipcast.dataplane.envoy import render
    from vipcast.spec import load_documents

    def objects(shift: int = 0) -> list[dict[str, Any]]:
        docs = base_objects()
        for s in range(services):
            eps = {f"10.{100 + s // 200}.{s % 200}.{(e + shift) % 250 + 1}": "ready"
                   for e in range(per_service)}
            docs += service_objects(f"s{s}", eps)
        for r in range(routes):
            docs.append(http_route(f"r{r}", hostnames=[f"r{r}.example.com"], rules=[
                {"matches": [{"path": {"type": "PathPrefix", "value": f"/p{r % 7}"}}],
                 "backendRefs": [{"name": f"s{r % services}", "port": 80}]}]))
        return docs

    docs = objects()
    t = time.process_time()
    spec = load_documents([("bench", d) for d in docs])
    model = translate(spec, "gw").model
    render(model)
    in_process = time.process_time() - t

    lab = GatewayLab(topo) if "ggw" not in topo.namespaces else None
    assert lab is not None
    lab.apply_nowait(base_objects())
    lab.start_gateway("--concurrency", "1")
    idle = lab.status()
    _cpu0, envoy_idle = _proc_stat(lab.gw, idle["envoy"]["pid"])
    gw_pid = lab.gateway_proc.pid if lab.gateway_proc else 0
    cpu_a, _ = _proc_stat(lab.gw, gw_pid)
    st = lab.apply(docs, timeout=300)
    cpu_b, vip_rss = _proc_stat(lab.gw, gw_pid)
    _c, envoy_full = _proc_stat(lab.gw, st["envoy"]["pid"])
    # one endpoint change (one Service's slice) at that scale
    one = objects()
    one[2 + 1]["endpoints"][0]["addresses"] = ["10.99.0.1"]
    lab.apply(one, timeout=300)
    cpu_c, _ = _proc_stat(lab.gw, gw_pid)
    return {
        "routes": routes, "endpoints": services * per_service,
        "vipcast_cpu_s_load_translate_render_in_process": round(in_process, 3),
        "vipcast_cpu_s_full_config_in_gateway_process": round(cpu_b - cpu_a, 3),
        "vipcast_cpu_s_one_endpoint_change": round(cpu_c - cpu_b, 3),
        "vipcast_rss_mib": round(vip_rss, 1),
        "envoy_rss_mib_idle": round(envoy_idle, 1),
        "envoy_rss_mib_full": round(envoy_full, 1),
        "envoy_rss_mib_added": round(envoy_full - envoy_idle, 1),
    }


def eds(clusters: tuple[int, ...], per_service: int, changes: int) -> dict[str, Any]:
    """What state-of-the-world EDS costs for one endpoint change, by number of clusters (the
    question behind delta xDS): the bytes of the EDS response vipcast sends (every cluster's
    ClusterLoadAssignment) against the one assignment that changed (what a delta response
    would carry); vipcast's CPU to render and swap the xDS cache (in process); and Envoy's
    CPU per update, averaged over ``changes`` changes (its /proc counter ticks 10 ms)."""
    from vipcast.core.gateway import translate
    from vipcast.dataplane.envoy import render
    from vipcast.proto.xds import ENDPOINT
    from vipcast.runtime.envoy import XdsCache
    from vipcast.spec import load_documents

    def objects(n: int, moved: int = -1, shift: int = 0) -> list[dict[str, Any]]:
        docs = base_objects()
        for s in range(n):
            eps = {f"10.{100 + s // 200}.{s % 200}.{e + 1 + (shift if s == moved else 0)}":
                   "ready" for e in range(per_service)}
            docs += service_objects(f"s{s}", eps)
        docs.append(http_route("r", rules=[{"backendRefs": [
            {"name": f"s{s}", "port": 80} for s in range(min(n, 16))]}]))
        for r in range(n):
            docs.append(http_route(f"r{r}", hostnames=[f"r{r}.example.com"],
                                   rules=[{"backendRefs": [{"name": f"s{r}", "port": 80}]}]))
        return docs

    out: dict[str, Any] = {}
    for n in clusters:
        def resources(shift: int, n: int = n) -> dict[str, Any]:
            spec = load_documents([("bench", d) for d in objects(n, moved=0, shift=shift)])
            return render(translate(spec, "gw").model)

        base, moved = resources(0), resources(per_service)
        sotw = sum(len(m.SerializeToString()) for m in moved[ENDPOINT].values())
        changed = [name for name, m in moved[ENDPOINT].items()
                   if base[ENDPOINT].get(name) != m]
        delta = sum(len(moved[ENDPOINT][name].SerializeToString()) for name in changed)
        cache = XdsCache()
        cache.update(base)
        t = time.process_time()
        for i in range(changes):
            cache.update(moved if i % 2 == 0 else base)
        swap_ms = (time.process_time() - t) / changes * 1000

        with Topology() as topo:
            out[str(n)] = _eds_in_envoy(topo, objects, n, per_service, changes)
        out[str(n)].update({
            "eds_response_bytes_sotw": sotw, "eds_bytes_changed_assignments_only": delta,
            "bytes_ratio_sotw_to_delta": round(sotw / delta, 1),
            "vipcast_ms_per_cache_swap_in_process": round(swap_ms, 2)})
        print(json.dumps(out[str(n)], indent=1), flush=True)
    return out


def _eds_in_envoy(topo: Topology, objects: Any, n: int, per_service: int,
                  changes: int) -> dict[str, Any]:
    """Envoy's CPU per EDS update (one Service's endpoints moving back and forth)."""
    from vipcast.proto.xds import LISTENER

    lab = GatewayLab(topo)
    lab.apply_nowait(objects(n))
    lab.start_gateway("--concurrency", "1")
    st = lab.apply(objects(n), timeout=300)
    pid = st["envoy"]["pid"]
    listener = st["versions"]["Listener"]
    cpu_a, _ = _proc_stat(lab.gw, pid)
    t0 = time.monotonic()
    for i in range(changes):
        st = lab.apply(objects(n, moved=0, shift=per_service if i % 2 == 0 else 0),
                       timeout=300)
    wall = time.monotonic() - t0
    cpu_b, _ = _proc_stat(lab.gw, pid)
    idle_a, _ = _proc_stat(lab.gw, pid)
    time.sleep(min(wall, 10.0))
    idle_b, _ = _proc_stat(lab.gw, pid)
    idle_rate = (idle_b - idle_a) / min(wall, 10.0)
    assert st["envoy"]["pid"] == pid and st["versions"]["Listener"] == listener
    assert st["acked"][LISTENER.rsplit(".", 1)[-1]] == listener
    return {
        "clusters": n, "endpoints": n * per_service, "changes": changes,
        "envoy_cpu_ms_per_update": round((cpu_b - cpu_a) / changes * 1000, 1),
        "envoy_idle_cpu_ms_per_update_window": round(idle_rate * wall / changes * 1000, 1),
        "listener_version_unchanged": True, "envoy_restarts": 0,
    }


ALL_PARTS = "throughput,churn,first,scale,eds"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="bench/gateway.json")
    parser.add_argument("--parts", default=ALL_PARTS)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # the top-level time is the whole run's; a part run alone carries its own
    result: dict[str, Any] = {"when": when} if parts >= set(ALL_PARTS.split(",")) else {}
    with Topology() as topo:
        lab = GatewayLab(topo)
        lab.apply_nowait(base_objects())
        lab.start_gateway()  # Envoy: one worker per CPU
        if "throughput" in parts:
            result["throughput"] = {"when": when, **throughput(
                lab, 1 if args.quick else 3, 5 if args.quick else 10)}
            print(json.dumps(result["throughput"], indent=1), flush=True)
            print(table(result["throughput"]), flush=True)
            if "warning" in result["throughput"]:
                print(f"WARNING: {result['throughput']['warning']}", file=sys.stderr)
        if "churn" in parts:
            result["churn"] = churn(lab, 5 if args.quick else 20)
            print(json.dumps(result["churn"], indent=1), flush=True)
        if "first" in parts:
            result["first_request"] = first_request(lab, 5 if args.quick else 15)
            print(json.dumps(result["first_request"], indent=1), flush=True)
    if "eds" in parts:
        result["eds"] = eds((10, 1000), 10, 6 if args.quick else 20)
    if "scale" in parts:
        with Topology() as topo:
            result["scale"] = scale(topo, 1000, 100, 100)
            print(json.dumps(result["scale"], indent=1), flush=True)
    out = Path(args.out)
    try:  # the parts not run keep their figures
        kept: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        kept = {}
    kept.update(result)
    out.write_text(json.dumps(kept, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
