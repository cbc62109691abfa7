"""External load balancers: HAProxy appliance member-change latency and throughput, and
Octavia API calls per Service create / node change.

Run as root: ``.venv/bin/python bench/external_lb.py [--changes 20] [--duration 5] [--json OUT]``

1. Member change -> HAProxy routes to it: the appliance lab (vipcast.lab.appliance) with one
   member; each round swaps it for another (``update_members``: runtime ``add server`` of the
   new one, drain + ``del server`` of the old), while a probe in the client namespace sends a
   request every ~5 ms and stamps each answer with CLOCK_MONOTONIC (system-wide, so comparable
   across namespaces). Latency = first answer from the new member - start of the call.
2. Throughput through the appliance vs straight to the backend: wrk (``-c 16 -t 2``, bounded)
   from the client to the VIP (router -> HAProxy -> nginx on n1) and to the same nginx
   directly (router -> the appliance namespace's kernel forwarding); one run each, as a ratio.
   The client reaches the VIP by the route the router learned from vipcast's BGP speaker on
   the appliance.
3. Octavia: API calls the driver makes for one Service create (2 ports, 3 nodes) and for one
   node change (a 4th node), against the real Octavia API server (tests/providers/octavia_api).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "providers"))

from dataplane_wrk import NGINX_CONF, wrk_in  # noqa: E402

from vipcast.core.external import DesiredLB, HealthMonitor, Listener, Member  # noqa: E402
from vipcast.lab.appliance import VIP, build  # noqa: E402
from vipcast.lab.netns import Topology, wait_until  # noqa: E402
from vipcast.providers.port import Applied  # noqa: E402

MONITOR = HealthMonitor("TCP", None, None, 1.0, 1.0, 1, 2)
PROBE = r"""
import http.client, json, sys, time
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        c = http.client.HTTPConnection(sys.argv[1], 80, timeout=1)
        c.request("GET", "/")
        body = json.loads(c.getresponse().read())
        print(f"{time.monotonic():.6f} {body['backend']}", flush=True)
        c.close()
    except Exception as exc:
        print(f"{time.monotonic():.6f} ERR {exc}", flush=True)
    time.sleep(0.005)
"""


def lb(members: list[Member], port: int = 80) -> DesiredLB:
    listener = Listener("TCP", port, tuple(sorted(members)), MONITOR, (), "none",
                        "ROUND_ROBIN", "default/web")
    return DesiredLB("kube_service_bench_default_web", ("default/web",), VIP, (listener,))


def member_changes(changes: int, duration: int) -> dict[str, Any]:
    with Topology() as topo:
        lab = build(topo, nodes=2, backends_per_node=2)
        lab.announce([VIP])  # by vipcast's BGP speaker on the appliance, to the FRR router
        lab.wait_route(VIP, timeout=60)
        drv = lab.driver(Path(tempfile.mkdtemp(prefix="vc-bench-haproxy-")))
        try:
            pool = lab.members
            assert isinstance(asyncio.run(drv.ensure(lb([pool[0]]))), Applied)
            script = topo.workdir / "probe.py"
            script.write_text(PROBE)
            log = topo.workdir / "probe.log"
            probe = lab.client.spawn([sys.executable, str(script), VIP,
                                      str(changes * 1.5 + 10)], name="probe", log_path=log)
            wait_until(lambda: "n1-8081" in probe.log_text(), timeout=20, what="probe answers")
            starts: list[tuple[float, str]] = []
            current = pool[0]
            for i in range(changes):
                nxt = pool[(i + 1) % len(pool)]
                t0 = time.monotonic()
                outcome = asyncio.run(drv.update_members(lb([nxt])))
                assert isinstance(outcome, Applied), outcome
                starts.append((t0, f"{nxt.node}-{nxt.port}"))
                current = nxt
                time.sleep(1.0)
            del current
            reloads = drv.reloads  # during the member changes (the port-8090 frontend reloads)
            lines = [ln.split(" ", 2) for ln in probe.log_text().splitlines() if ln[:1].isdigit()]
            probe.stop()
            answers = [(float(t), who) for t, who, *_ in lines]
            errors = sum(1 for _, who in answers if who == "ERR")
            latencies = []
            for t0, who in starts:
                first = next((t for t, b in answers if t >= t0 and b == who), None)
                if first is not None:
                    latencies.append((first - t0) * 1000)
            # throughput: the appliance vs straight to nginx on n1
            n1 = lab.nodes[0]
            directory = topo.workdir / "nginx"
            directory.mkdir()
            conf = directory / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=directory, port=8090, name="n1"))
            n1.spawn(["nginx", "-p", str(directory), "-c", str(conf), "-e",
                      str(directory / "error.log")], name="nginx-n1")
            wait_until(lambda: ":8090 " in n1.run(["ss", "-Htln"]).stdout, timeout=15,
                       what="nginx listening")
            direct_member = Member("10.20.1.2", 8090, "n1")
            assert isinstance(asyncio.run(drv.ensure(lb([direct_member], port=8090))), Applied)
            wrk_in(lab.client, "http://10.20.1.2:8090/", 1)  # warm-up
            direct = wrk_in(lab.client, "http://10.20.1.2:8090/", duration)
            appliance = wrk_in(lab.client, f"http://{VIP}:8090/", duration)
        finally:
            asyncio.run(drv.stop())
    return {
        "member_change_to_first_answer_ms": {
            "median": round(statistics.median(latencies), 1) if latencies else None,
            "min": round(min(latencies), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
            "n": len(latencies), "changes": changes, "probe_errors": errors,
            "reloads_during_changes": reloads,
        },
        "throughput_rps": {"direct": direct["rps"], "appliance": appliance["rps"],
                           "ratio_appliance_over_direct": round(appliance["rps"] /
                                                                direct["rps"], 3),
                           "errors": direct["errors"] + appliance["errors"]},
    }


def octavia_calls() -> dict[str, Any]:
    from octavia_api import MISSING, PROJECT, SUBNET, OctaviaAPI

    from vipcast.providers.octavia.driver import OctaviaDriver

    if MISSING:
        return {"skipped": MISSING}
    api = OctaviaAPI(Path(tempfile.mkdtemp(prefix="vc-bench-octavia-")))
    api.start()
    try:
        async def run() -> dict[str, int]:
            drv = OctaviaDriver(api.url, project_id=PROJECT, vip_subnet_id=SUBNET)
            nodes = [Member(f"10.0.0.{i}", 30080, f"n{i}") for i in range(1, 4)]

            def desired(members: list[Member]) -> DesiredLB:
                return DesiredLB("kube_service_bench_default_web", ("default/web",),
                                 "198.51.100.30", tuple(
                                     Listener("TCP", p, tuple(members), MONITOR, (), "none",
                                              "ROUND_ROBIN", "default/web") for p in (80, 443)))
            await drv.ensure(desired(nodes))
            create = drv.calls
            drv.calls = 0
            await drv.update_members(desired([*nodes, Member("10.0.0.4", 30080, "n4")]))
            node_change = drv.calls
            drv.calls = 0
            await drv.ensure(desired([*nodes, Member("10.0.0.4", 30080, "n4")]))
            no_change = drv.calls
            await drv.delete("kube_service_bench_default_web")
            await drv.close()
            return {"service_create_2_ports_3_nodes": create, "node_added": node_change,
                    "resync_no_change": no_change}
        return asyncio.run(run())
    finally:
        api.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = {"haproxy": member_changes(args.changes, min(args.duration, 30)),
              "octavia_calls": octavia_calls()}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
