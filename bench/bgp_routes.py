"""Benchmark: N host routes from a speaker to FRR 8.4, until FRR's kernel table holds them.

Not a test. Runs in its own network namespaces (prefix vc-<pid>-...), as root:

    .venv/bin/python bench/bgp_routes.py [--counts 1000,10000] [--speakers vipcast,bird]

For each speaker and N: time from the trigger until the router namespace's kernel table holds
all N routes (``proto bgp``), time to withdraw them all, the speaker's RSS with N routes
announced. vipcast is driven through ``python -m vipcast.runtime.bgp_static`` (trigger = the
JSON line written); BIRD announces N static blackholes (trigger = ``birdc enable``/``disable``
of its static protocol). Also: one VIP from the trigger to the router's kernel (vipcast).
GoBGP (``--speakers gobgp``, not in the default set) gets its N routes in one batch through its
API: an MRT TABLE_DUMP_V2 file written here, injected with ``gobgp mrt inject global``. With the
Debian gobgp 3.10 CLI only part of the dump reaches the RIB (4 of 10 in a probe; the CLI
parses all records), so that run times out and GoBGP has no figure yet; the per-prefix CLI
(``gobgp global rib add``, one process per route) would measure the CLI, not the daemon.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, start_bird
from vipcast.lab.frr import FrrConfig, FrrInstance, start_frr
from vipcast.lab.gobgp import GobgpConfig, start_gobgp
from vipcast.lab.netns import Netns, Topology

ROUTER, SPEAKER = "10.0.0.1", "10.0.0.2"
ROUTER_ASN, SPEAKER_ASN = 65000, 65001
BASE = ipaddress.IPv4Address("198.18.0.0")
DEADLINE = 120.0


def kernel_count(router: Netns) -> int:
    out = router.run(["ip", "-4", "route", "show", "proto", "bgp"], check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def wait_count(router: Netns, predicate: Callable[[int], bool], start: float) -> float:
    deadline = start + DEADLINE
    while time.monotonic() < deadline:
        if predicate(kernel_count(router)):
            return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError("kernel table did not converge")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def prefixes(n: int) -> list[str]:
    return [f"{BASE + i}/32" for i in range(n)]


def build(topo: Topology) -> tuple[Netns, Netns]:
    router = topo.add_netns("rtr", router=True)
    speaker = topo.add_netns("spk")
    topo.veth(router, "eth0", speaker, "eth0")
    router.add_address("eth0", f"{ROUTER}/24")
    speaker.add_address("eth0", f"{SPEAKER}/24")
    return router, speaker


def start_router(topo: Topology, router: Netns) -> FrrInstance:
    return start_frr(
        router,
        FrrConfig(
            asn=ROUTER_ASN,
            router_id=ROUTER,
            neighbors=(Neighbor(SPEAKER, SPEAKER_ASN),),
            graceful_restart=False,
        ),
        topo.workdir / "frr",
    )


def bench_vipcast(n: int) -> dict[str, float]:
    with Topology() as topo:
        router, speaker = build(topo)
        frr = start_router(topo, router)
        proc = subprocess.Popen(
            speaker.exec_argv([sys.executable, "-m", "vipcast.runtime.bgp_static"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin: IO[str] = proc.stdin
        peer = {
            "name": "rtr", "address": ROUTER, "local_asn": SPEAKER_ASN,
            "peer_asn": ROUTER_ASN, "router_id": SPEAKER, "ttl": 1,
        }  # fmt: skip

        def send(doc: dict[str, object]) -> float:
            t = time.monotonic()
            stdin.write(json.dumps(doc) + "\n")
            stdin.flush()
            return t

        try:
            send({"peers": [peer], "routes": {}})
            frr.wait_established(SPEAKER, timeout=60)
            one = send({"routes": {"rtr": {"203.0.113.10/32": {}}}})
            vip = wait_count(router, lambda c: c == 1, one)
            send({"routes": {}})
            wait_count(router, lambda c: c == 0, time.monotonic())
            t0 = send({"generate": {"peer": "rtr", "base": str(BASE), "count": n}})
            announce = wait_count(router, lambda c: c >= n, t0)
            rss = rss_kib(proc.pid)
            t1 = send({"routes": {}})
            withdraw = wait_count(router, lambda c: c == 0, t1)
            send({"stop": True})
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    return {"announce": announce, "withdraw": withdraw, "rss_kib": rss, "vip": vip}


def bench_bird(n: int) -> dict[str, float]:
    with Topology() as topo:
        router, speaker = build(topo)
        start_router(topo, router)
        bird = start_bird(
            speaker,
            BirdConfig(
                asn=SPEAKER_ASN,
                router_id=SPEAKER,
                neighbors=(Neighbor(ROUTER, ROUTER_ASN),),
                networks=tuple(prefixes(n)),
                kernel_export=False,
                graceful_restart=False,
            ),
            topo.workdir / "bird",
        )
        bird.wait_established(ROUTER, timeout=60)
        wait_count(router, lambda c: c >= n, time.monotonic())
        t = time.monotonic()
        bird.birdc("disable", "static_ipv4")
        withdraw = wait_count(router, lambda c: c == 0, t)
        t = time.monotonic()
        bird.birdc("enable", "static_ipv4")
        announce = wait_count(router, lambda c: c >= n, t)
        rss = rss_kib(bird.pid)
    return {"announce": announce, "withdraw": withdraw, "rss_kib": rss}


def mrt_file(path: Path, n: int, nexthop: str) -> None:
    """An MRT TABLE_DUMP_V2 dump (RFC 6396) of N /32s from one peer, for ``gobgp mrt inject``."""

    def record(subtype: int, body: bytes) -> bytes:
        return struct.pack("!IHHI", 0, 13, subtype, len(body)) + body

    # the dump's one peer is a notional source (not the speaker itself, or GoBGP drops the paths)
    source = ipaddress.IPv4Address("198.51.100.99").packed
    peers = struct.pack("!H", 1) + bytes([0x02]) + source + source + struct.pack("!I", 64999)
    out = [record(1, source + struct.pack("!H", 0) + peers)]
    attrs = (
        bytes([0x40, 1, 1, 0])  # ORIGIN IGP
        + bytes([0x40, 2, 0])  # AS_PATH empty (GoBGP prepends its own AS on eBGP)
        + bytes([0x40, 3, 4])
        + ipaddress.IPv4Address(nexthop).packed
    )
    for i in range(n):
        prefix = (BASE + i).packed
        entry = struct.pack("!HIH", 0, 0, len(attrs)) + attrs
        out.append(record(2, struct.pack("!IB", i, 32) + prefix + struct.pack("!H", 1) + entry))
    path.write_bytes(b"".join(out))


def bench_gobgp(n: int) -> dict[str, float]:
    with Topology() as topo:
        router, speaker = build(topo)
        start_router(topo, router)
        g = start_gobgp(
            speaker,
            GobgpConfig(
                asn=SPEAKER_ASN,
                router_id=SPEAKER,
                neighbors=(Neighbor(ROUTER, ROUTER_ASN),),
                graceful_restart=False,
            ),
            topo.workdir / "gobgp",
        )
        g.wait_established(ROUTER, timeout=60)
        dump = topo.workdir / "routes.mrt"
        mrt_file(dump, n, SPEAKER)
        t = time.monotonic()
        g.cli("mrt", "inject", "global", "--queue-size", "1", str(dump), timeout=DEADLINE)
        announce = wait_count(router, lambda c: c >= n, t)
        rss = rss_kib(g.pid)
        t = time.monotonic()
        g.cli("global", "rib", "-a", "ipv4", "del", "all", timeout=DEADLINE)
        withdraw = wait_count(router, lambda c: c == 0, t)
    return {"announce": announce, "withdraw": withdraw, "rss_kib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--speakers", default="vipcast,bird")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    runners = {"vipcast": bench_vipcast, "bird": bench_bird, "gobgp": bench_gobgp}
    results: dict[tuple[str, int], dict[str, float]] = {}
    for n in counts:
        for name in args.speakers.split(","):
            results[(name, n)] = runners[name](n)
            print(name, n, results[(name, n)], flush=True)
    print()
    print(f"{'speaker':<8} {'N':>6} {'announce s':>11} {'withdraw s':>11} {'RSS MiB':>8}")
    for (name, n), r in results.items():
        print(
            f"{name:<8} {n:>6} {r['announce']:>11.3f} {r['withdraw']:>11.3f}"
            f" {r['rss_kib'] / 1024:>8.1f}"
        )
    for n in counts:
        v, b = results.get(("vipcast", n)), results.get(("bird", n))
        if v and b:
            print(
                f"ratio vipcast/BIRD at N={n}: announce {v['announce'] / b['announce']:.2f}x,"
                f" withdraw {v['withdraw'] / b['withdraw']:.2f}x"
            )
    for (name, n), r in results.items():
        if "vip" in r:
            print(
                f"one VIP, trigger to router kernel ({name}, run N={n}): {r['vip'] * 1000:.0f} ms"
            )


if __name__ == "__main__":
    main()
