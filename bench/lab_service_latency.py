"""Time from a Service added to the object files to the first successful client response.

Builds the lab (FRR router, 3 vipcast nodes, client), then 20 times: writes a new Service and
its EndpointSlice, polls the VIP from the client every 5 ms (bounded), records the time of the
first HTTP 200, removes the Service and waits for the route to go. Prints median/min/max.
Run as root: .venv/bin/python bench/lab_service_latency.py [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from vipcast.app.lab.topology import LabOptions, build, frr_of, wait_sessions


def service_docs(name: str, ip: str) -> list[dict[str, object]]:
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": "default",
                      "annotations": {"vipcast.io/loadBalancerIPs": ip}},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-x", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": ["10.244.1.10"], "nodeName": "n1"}],
         "ports": [{"port": 8080, "protocol": "TCP"}]},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vc-bench-"))
    opts = LabOptions(nodes=3, bfd=False, prefix=f"vc-{os.getpid()}-bsl", workdir=workdir)
    topo, state = build(opts)
    times: list[float] = []
    try:
        wait_sessions(frr_of(topo, state), 3)
        config = workdir / "config"
        client = topo["client"]
        probe = ["python3", "-c", (
            "import sys,time,http.client\n"
            "ip=sys.argv[1]; end=time.monotonic()+15\n"
            "while time.monotonic()<end:\n"
            "  try:\n"
            "    c=http.client.HTTPConnection(ip,80,timeout=0.2); c.request('GET','/')\n"
            "    if c.getresponse().status==200: print(time.time()); break\n"
            "  except OSError: time.sleep(0.005)\n"
        )]
        for trial in range(min(args.trials, 100)):
            ip = f"192.0.2.{20 + trial % 8}"
            name = f"bench{trial}"
            t0 = time.time()
            tmp = config / f".{name}.tmp"
            tmp.write_text(yaml.safe_dump_all(service_docs(name, ip)))
            tmp.rename(config / f"{name}.yaml")
            out = client.run([*probe, ip], check=False, timeout=30).stdout.strip()
            if out:
                times.append(float(out) - t0)
            (config / f"{name}.yaml").unlink()
            topo["router"].wait_no_route(f"{ip}/32", timeout=30)
    finally:
        topo.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if times:
        print(f"service added -> first client response, {len(times)} trials: "
              f"median {statistics.median(times) * 1000:.0f} ms, "
              f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    else:
        print("no trial succeeded")


if __name__ == "__main__":
    main()
