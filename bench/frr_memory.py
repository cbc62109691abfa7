"""FRR 8.4's memory for N VIPs x 3 next hops (docs/scale.md): what a router pays per path.

As root, in its own namespaces (vc-<pid>-...): one FRR router, three vipcast speakers
(``vipcast.app.bgp_static``, one per node) on their own links, each announcing the same N /32s,
so FRR holds 3N paths and installs N ECMP routes of 3 next hops (maximum-paths 8). Reports the
RSS of bgpd and zebra before any route and with all N in the kernel, and the growth per route
and per path. Writes bench/frr_memory.json.

    nice .venv/bin/python bench/frr_memory.py [--counts 10000,50000]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.frr import FrrConfig, start_frr
from vipcast.lab.netns import Topology

HERE = Path(__file__).resolve().parent
BASE = ipaddress.IPv4Address("198.18.0.0")
ROUTER_ASN, SPEAKER_ASN = 65000, 65001
SPEAKERS = 3


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def daemons(pids: list[int]) -> dict[str, int]:
    out = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name in ("bgpd", "zebra"):
            out[name] = pid
    return out


def one(n: int) -> dict[str, object]:
    with Topology() as topo:
        router = topo.add_netns("rtr", router=True)
        neighbors, procs = [], []
        links = []
        for i in range(SPEAKERS):
            spk = topo.add_netns(f"s{i}")
            topo.veth(router, f"eth{i}", spk, "eth0")
            r_ip, s_ip = f"10.0.{i}.1", f"10.0.{i}.2"
            router.add_address(f"eth{i}", f"{r_ip}/24")
            spk.add_address("eth0", f"{s_ip}/24")
            neighbors.append(Neighbor(s_ip, SPEAKER_ASN))
            links.append((spk, r_ip, s_ip))
        frr = start_frr(router, FrrConfig(asn=ROUTER_ASN, router_id="10.0.0.1",
                                          neighbors=tuple(neighbors), graceful_restart=False),
                        topo.workdir / "frr")
        stdins: list[IO[str]] = []
        try:
            for spk, r_ip, s_ip in links:
                proc = subprocess.Popen(
                    spk.exec_argv([sys.executable, "-m", "vipcast.app.bgp_static"]),
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, text=True)
                assert proc.stdin is not None
                procs.append(proc)
                stdins.append(proc.stdin)
                peer = {"name": "rtr", "address": r_ip, "local_asn": SPEAKER_ASN,
                        "peer_asn": ROUTER_ASN, "router_id": s_ip, "ttl": 1}
                proc.stdin.write(json.dumps({"peers": [peer], "routes": {}}) + "\n")
                proc.stdin.flush()
            frr.wait_established(*(s for _, _, s in links), timeout=120)
            time.sleep(2.0)
            pids = daemons(router.pids())
            before = {k: rss_kib(p) for k, p in pids.items()}
            t0 = time.monotonic()
            for stdin in stdins:
                stdin.write(json.dumps({"generate": {"peer": "rtr", "base": str(BASE),
                                                     "count": n}}) + "\n")
                stdin.flush()
            last = str(BASE + n - 1)
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                out = router.run(["ip", "route", "show", f"{last}/32"], check=False).stdout
                if out.count("nexthop") >= SPEAKERS:
                    break
                time.sleep(1.0)
            else:
                raise TimeoutError(f"{last} never had {SPEAKERS} next hops")
            count = int(router.run(["sh", "-c", "ip -o route show proto bgp | wc -l"]).stdout)
            converge = time.monotonic() - t0
            time.sleep(3.0)
            after = {k: rss_kib(p) for k, p in pids.items()}
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(10)
    grown = {k: after[k] - before[k] for k in after}
    total = sum(grown.values())
    return {"routes": n, "paths": n * SPEAKERS, "kernel_routes": count,
            "converge_s": round(converge, 1), "rss_before_kib": before, "rss_after_kib": after,
            "growth_kib": grown,
            "bytes_per_route": round(total * 1024 / n),
            "bgpd_bytes_per_path": round(grown.get("bgpd", 0) * 1024 / (n * SPEAKERS))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,50000")
    parser.add_argument("--json", type=Path, default=HERE / "frr_memory.json")
    args = parser.parse_args()
    results = []
    for n in (int(c) for c in args.counts.split(",")):
        res = one(n)
        print(json.dumps(res), flush=True)
        results.append(res)
    args.json.write_text(json.dumps({"frr": "8.4", "speakers": SPEAKERS,
                                     "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
