"""What single Envoy settings cost per request, paired (as root; namespaces ``vc-<pid>-*``).

For each setting, two Envoys run side by side in the gateway lab — the configuration vipcast
renders (a static bootstrap of the same model) without the setting, and with it — each with
one worker, and are loaded *at the same time* by one ``wrk -t1 -c32`` each, so whatever else
the shared machine runs hits both alike. Per round: requests per Envoy CPU-second of each
(Envoy's threads, schedstat); the figure is the median ratio with/without over the rounds.
An identical pair (``same``) shows the method's own spread.

    .venv/bin/python bench/gateway_settings.py [--rounds 6] [--seconds 6] \
        [--out bench/gateway_settings.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_throughput import _objects, nginx, thread_cpu

from vipcast.core.gateway import translate
from vipcast.dataplane.envoy import ProxyOptions, static_bootstrap, to_json
from vipcast.lab.gateway import GATEWAY_IP, GatewayLab, pod_ip
from vipcast.lab.netns import Process, Topology, wait_until
from vipcast.runtime.envoy import find_envoy
from vipcast.spec import load_documents

Doc = dict[str, Any]


def _router(cfg: Doc) -> Doc:
    hcm: Doc = cfg["staticResources"]["listeners"][0]["filterChains"][0]["filters"][0][
        "typedConfig"]
    router: Doc = hcm["httpFilters"][-1]["typedConfig"]
    return router


def _hcm(cfg: Doc) -> Doc:
    hcm: Doc = cfg["staticResources"]["listeners"][0]["filterChains"][0]["filters"][0][
        "typedConfig"]
    return hcm


#: setting -> (without, with): edits of the rendered bootstrap
SETTINGS: dict[str, tuple[Callable[[Doc], None], Callable[[Doc], None]]] = {
    "same": (lambda c: None, lambda c: None),
    "suppress_envoy_headers": (lambda c: _router(c).pop("suppressEnvoyHeaders", None),
                               lambda c: _router(c).update(suppressEnvoyHeaders=True)),
    "no_request_id": (lambda c: None, lambda c: _hcm(c).update(generateRequestId=False)),
    "no_dynamic_stats": (lambda c: None, lambda c: _router(c).update(dynamicStats=False)),
}


def _envoy(lab: GatewayLab, cfg: Doc, n: int) -> tuple[Process, str]:
    cfg = copy.deepcopy(cfg)
    cfg["admin"]["address"]["socketAddress"]["portValue"] = 19100 + n
    port = 8000 + n
    cfg["staticResources"]["listeners"][0]["address"]["socketAddress"]["portValue"] = port
    path = lab.topo.workdir / f"envoy-{n}.json"
    path.write_text(json.dumps(cfg))
    proc = lab.gw.spawn([find_envoy(), "-c", str(path), "--concurrency", "1", "-l", "warning",
                         "--base-id", str(400 + n)], name=f"envoy-{n}")
    wait_until(lambda: lab.gw.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                   f"127.0.0.1:{19100 + n}/ready"], check=False).stdout == "200",
               timeout=60, what=f"envoy {n} ready", on_timeout=proc.log_text)
    return proc, f"http://{GATEWAY_IP}:{port}/"


def pair(lab: GatewayLab, base: Doc, name: str, first: int, rounds: int,
         seconds: int) -> dict[str, Any]:
    without, with_ = copy.deepcopy(base), copy.deepcopy(base)
    SETTINGS[name][0](without)
    SETTINGS[name][1](with_)
    envoys = [_envoy(lab, without, first), _envoy(lab, with_, first + 1)]
    per_round = []
    try:
        for _ in range(rounds):
            cpu0 = [thread_cpu(p.pid) for p, _url in envoys]
            wrks = [subprocess.Popen(lab.client.exec_argv(
                ["wrk", "-t1", "-c32", f"-d{seconds}s", "-H", "Host: bench", url]),
                stdout=subprocess.PIPE, text=True) for _p, url in envoys]
            outs = [w.communicate(timeout=seconds + 60)[0] for w in wrks]
            per = []
            for (p, _url), out, c0 in zip(envoys, outs, cpu0, strict=True):
                done = re.search(r"(\d+) requests in", out)
                assert done, out
                per.append(int(done.group(1)) / (thread_cpu(p.pid) - c0))
            per_round.append({"without": round(per[0]), "with": round(per[1]),
                              "ratio": round(per[1] / per[0], 3)})
    finally:
        for p, _url in envoys:
            p.stop()
    ratios = [r["ratio"] for r in per_round]
    return {"ratio_median": round(statistics.median(ratios), 3),
            "range": [min(ratios), max(ratios)], "rounds": per_round}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--out", default="bench/gateway_settings.json")
    args = parser.parse_args()
    result: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "method": "requests per Envoy CPU-second, with/without, "
                                        "both Envoys (1 worker) loaded at once",
                              "loadavg_1m_before": round(os.getloadavg()[0], 1)}
    with Topology() as topo:
        lab = GatewayLab(topo)
        lab.client.ip("route", "add", "10.0.0.0/24", "via", GATEWAY_IP)
        lab.pods_ns.ip("route", "add", "default", "via", "10.0.0.1")
        ip = pod_ip(9)
        lab.pods_ns.add_address("eth0", f"{ip}/24")
        nginx(lab.pods_ns, topo, "nginx-backend",
              f'server {{ listen {ip}:8080; location / {{ return 200 "ok\\n"; }} }}')
        spec = load_documents([("bench", d) for d in _objects(GATEWAY_IP, ip)])
        base = json.loads(to_json(static_bootstrap(translate(spec, "gw").model,
                                                   ProxyOptions(), admin_port=19100)))
        for n, name in enumerate(SETTINGS):
            result[name] = pair(lab, base, name, 2 * n, args.rounds, args.seconds)
            print(name, json.dumps({k: v for k, v in result[name].items() if k != "rounds"}),
                  flush=True)
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 1)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
