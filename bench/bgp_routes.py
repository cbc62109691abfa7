"""Benchmark: N host routes from a speaker to FRR 8.4, until FRR's kernel table holds them.

Not a test. Runs in its own network namespaces (prefix vc-<pid>-...), as root:

    .venv/bin/python bench/bgp_routes.py [--counts 1000,10000] [--speakers vipcast,bird,gobgp]
                                         [--rounds 3] [--repeat 2]

For each speaker and N, ``--rounds`` fresh topologies (speakers interleaved, so that the noise
of a shared machine falls on all of them), each with one untimed warm-up cycle (FRR sees the N
routes once) and ``--repeat`` timed cycles: time from the trigger until the router
namespace's kernel table holds all N routes (``proto bgp``), time from the next trigger until
it holds none, the speaker's RSS with N routes announced. Medians are printed.

Times come from ``ip monitor route`` in the router's namespace (the moment of the last route
event), confirmed by polling ``ip route show``; when the monitor missed events the poll's time
is used instead.

Triggers: vipcast, ``python -m vipcast.app.bgp_static``, the JSON line written (the
speaker generates the N prefixes, encodes and sends them after that); BIRD, ``birdc
enable``/``disable`` of its static protocol of N blackholes; GoBGP, its gRPC API
(``bench/bgp_gobgp_feed.py`` in the speaker's namespace): one AddPathStream of N paths in
requests of 1,000, built before the trigger; withdraw = one DeletePath of the IPv4 family.
One VIP, trigger to the router's kernel, for vipcast and GoBGP (5 times per topology).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, start_bird
from vipcast.lab.frr import FrrConfig, FrrInstance, start_frr
from vipcast.lab.gobgp import GobgpConfig, start_gobgp
from vipcast.lab.netns import Netns, Topology
from vipcast.lab.process import run_command

ROUTER, SPEAKER = "10.0.0.1", "10.0.0.2"
ROUTER_ASN, SPEAKER_ASN = 65000, 65001
BASE = ipaddress.IPv4Address("198.18.0.0")
DEADLINE = 120.0
VIP_TIMES = 5


def kernel_count(router: Netns) -> int:
    out = run_command(["ip", "-n", router.name, "-4", "route", "show", "proto", "bgp"]).stdout
    return out.count("\n")


class KernelWatch:
    """``ip monitor route`` in the router's namespace, read by a thread: when BGP routes
    were last added and deleted, and how many events were seen (to tell a lost event)."""

    def __init__(self, router: Netns) -> None:
        self._proc = subprocess.Popen(
            ["ip", "-n", router.name, "-o", "monitor", "route"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.added = self.deleted = 0
        self.first_added = self.last_added = self.last_deleted = 0.0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if b"proto bgp" not in line:
                continue
            now = time.monotonic()
            if line.startswith(b"Deleted"):
                self.deleted += 1
                self.last_deleted = now
            else:
                if not self.added:
                    self.first_added = now
                self.added += 1
                self.last_added = now

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(5)
        self._thread.join(5)


def wait_count(
    router: Netns,
    predicate: Callable[[int], bool],
    start: float,
    watch: KernelWatch | None = None,
    expect: int = 0,
    deleting: bool = False,
) -> float:
    """Seconds from ``start`` until the router's kernel table satisfies ``predicate``.

    With a ``watch``, the table is dumped (``ip route show``, costly at 10k routes on a
    2-core machine) only once the monitor has seen ``expect`` events since ``start``, or
    once a second in case it lost some; the time is then that of the last event. Without
    one, the table is polled and the poll's time is returned.
    """

    def seen() -> int:
        assert watch is not None
        return (watch.deleted if deleting else watch.added) - base

    base = (watch.deleted if deleting else watch.added) if watch else 0
    deadline = start + DEADLINE
    next_poll = time.monotonic()
    while (now := time.monotonic()) < deadline:
        ready = watch is not None and seen() >= expect
        if watch is None or ready or now >= next_poll:
            next_poll = now + 1.0
            if predicate(kernel_count(router)):
                polled = time.monotonic() - start
                if watch is None:
                    return polled
                last = watch.last_deleted if deleting else watch.last_added
                if seen() >= expect and start < last:
                    return min(polled, last - start)
                return polled
        time.sleep(0.005 if watch is not None else 0.02)
    raise TimeoutError("kernel table did not converge")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the given processes (and their threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


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


Result = dict[str, float]
VIP = "203.0.113.10"


def timed_cycle(
    router: Netns,
    n: int,
    announce: Callable[[], float],
    withdraw: Callable[[], float],
    watch: KernelWatch,
    pid: int,
) -> Result:
    """One announce of N and one withdraw of all, each timed from its trigger; with the CPU
    time the speaker and the router's daemons spent on the announce (load-independent)."""
    daemons = router.pids()
    cpu0, rcpu0 = cpu_seconds([pid]), cpu_seconds(daemons)
    t0 = announce()
    up = wait_count(router, lambda c: c >= n, t0, watch, n)
    cpu, rcpu = cpu_seconds([pid]) - cpu0, cpu_seconds(daemons) - rcpu0
    rss = rss_kib(pid)
    t1 = withdraw()
    down = wait_count(router, lambda c: c == 0, t1, watch, n, deleting=True)
    return {
        "announce": up, "withdraw": down, "rss_kib": rss, "cpu": cpu, "router_cpu": rcpu,
    }  # fmt: skip


def cycles(
    router: Netns,
    n: int,
    announce: Callable[[], float],
    withdraw: Callable[[], float],
    pid: int,
    repeat: int,
) -> list[Result]:
    """A warm-up cycle (untimed: FRR sees N routes once), then ``repeat`` timed cycles."""
    watch = KernelWatch(router)
    try:
        wait_count(router, lambda c: c >= n, announce())
        wait_count(router, lambda c: c == 0, withdraw())
        return [timed_cycle(router, n, announce, withdraw, watch, pid) for _ in range(repeat)]
    finally:
        watch.close()


def one_vip(
    router: Netns, announce: Callable[[], float], withdraw: Callable[[], float], times: int
) -> list[float]:
    """Trigger to the router's kernel for one host route, ``times`` times."""
    watch = KernelWatch(router)
    out = []
    try:
        for _ in range(times):
            out.append(wait_count(router, lambda c: c == 1, announce(), watch, 1))
            wait_count(router, lambda c: c == 0, withdraw(), watch, 1, deleting=True)
    finally:
        watch.close()
    return out


def bench_vipcast(n: int, repeat: int, **session: object) -> tuple[list[Result], list[float]]:
    with Topology() as topo:
        router, speaker = build(topo)
        frr = start_router(topo, router)
        proc = subprocess.Popen(
            speaker.exec_argv([sys.executable, "-m", "vipcast.app.bgp_static"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdin is not None
        stdin: IO[str] = proc.stdin
        peer = {
            "name": "rtr", "address": ROUTER, "local_asn": SPEAKER_ASN,
            "peer_asn": ROUTER_ASN, "router_id": SPEAKER, "ttl": 1,
            **session,
        }  # fmt: skip

        def send(doc: dict[str, object]) -> float:
            line = json.dumps(doc) + "\n"
            t = time.monotonic()
            stdin.write(line)
            stdin.flush()
            return t

        try:
            send({"peers": [peer], "routes": {}})
            frr.wait_established(SPEAKER, timeout=60)
            vip = one_vip(
                router,
                lambda: send({"routes": {"rtr": {f"{VIP}/32": {}}}}),
                lambda: send({"routes": {}}),
                VIP_TIMES,
            )
            results = cycles(
                router,
                n,
                lambda: send({"generate": {"peer": "rtr", "base": str(BASE), "count": n}}),
                lambda: send({"routes": {}}),
                proc.pid,
                repeat,
            )
            send({"stop": True})
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    return results, vip


def bench_bird(n: int, repeat: int) -> tuple[list[Result], list[float]]:
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

        def birdc(command: str) -> Callable[[], float]:
            def run() -> float:
                t = time.monotonic()
                bird.birdc(command, "static_ipv4")
                return t

            return run

        # the routes are up from the start: withdraw them so that cycles() starts from zero
        wait_count(router, lambda c: c == 0, birdc("disable")())
        results = cycles(router, n, birdc("enable"), birdc("disable"), bird.pid, repeat)
    return results, []


class GobgpFeed:
    """``bench/bgp_gobgp_feed.py`` running in the speaker's namespace (GoBGP's gRPC API)."""

    def __init__(self, ns: Netns, api_port: int) -> None:
        script = Path(__file__).with_name("bgp_gobgp_feed.py")
        argv = [sys.executable, str(script), "--port", str(api_port), "--next-hop", SPEAKER]
        self.proc = subprocess.Popen(
            ns.exec_argv(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._expect("ready")

    def _expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(f"gobgp feed: expected {word!r}, got {line!r}")
        return line

    def command(self, line: str) -> float:
        """Send one command; returns when it was sent, after GoBGP answered the call."""
        assert self.proc.stdin is not None
        t = time.monotonic()
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self._expect("ok")
        return t

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def bench_gobgp(n: int, repeat: int) -> tuple[list[Result], list[float]]:
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
        feed = GobgpFeed(speaker, g.config.api_port)
        try:
            feed.command(f"prepare {VIP} 1")
            vip = one_vip(
                router,
                lambda: feed.command("announce"),
                lambda: feed.command("withdraw"),
                VIP_TIMES,
            )
            feed.command(f"prepare {BASE} {n}")
            results = cycles(
                router,
                n,
                lambda: feed.command("announce"),
                lambda: feed.command("withdraw"),
                g.pid,
                repeat,
            )
        finally:
            feed.close()
    return results, vip


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--speakers", default="vipcast,bird,gobgp")
    parser.add_argument("--rounds", type=int, default=3, help="fresh topologies per speaker")
    parser.add_argument("--repeat", type=int, default=2, help="timed cycles per topology")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    speakers = args.speakers.split(",")
    runners: dict[str, Callable[[int, int], tuple[list[Result], list[float]]]] = {
        "vipcast": bench_vipcast,
        "bird": bench_bird,
        "gobgp": bench_gobgp,
        # vipcast with other UPDATE sizes (the default is 4,096 bytes, as BIRD and GoBGP send
        # them here; 65,535 is the RFC 8654 maximum FRR offers)
        "vipcast-64k": lambda n, repeat: bench_vipcast(n, repeat, update_size=65535),
        "vipcast-2k": lambda n, repeat: bench_vipcast(n, repeat, update_size=2048),
        # vipcast offering IPv4 unicast only (as BIRD and GoBGP are configured here)
        "vipcast-v4": lambda n, repeat: bench_vipcast(n, repeat, families=["ipv4"]),
    }
    runs: dict[tuple[str, int], list[Result]] = {}
    vips: dict[str, list[float]] = {}
    for n in counts:
        for round_ in range(args.rounds):
            for name in speakers:  # interleaved, so that machine noise hits every speaker
                results, vip = runners[name](n, args.repeat)
                runs.setdefault((name, n), []).extend(results)
                vips.setdefault(name, []).extend(vip)
                print(name, n, round_, results, [f"{v * 1000:.0f}ms" for v in vip], flush=True)
    table: dict[tuple[str, int], Result] = {
        key: {k: median([r[k] for r in rs]) for k in rs[0]} for key, rs in runs.items()
    }
    print()
    print(f"medians of {args.rounds} x {args.repeat} timed cycles per speaker and N")
    print(
        f"{'speaker':<11} {'N':>6} {'announce s':>11} {'withdraw s':>11} {'RSS MiB':>8}"
        f" {'CPU s':>6} {'FRR CPU s':>10}"
    )
    for (name, n), r in table.items():
        print(
            f"{name:<11} {n:>6} {r['announce']:>11.3f} {r['withdraw']:>11.3f}"
            f" {r['rss_kib'] / 1024:>8.1f} {r['cpu']:>6.2f} {r['router_cpu']:>10.2f}"
        )
    print("spread (quartiles over all timed cycles):")
    for (name, n), rs in runs.items():
        parts = []
        for k in ("announce", "withdraw"):
            values = sorted(r[k] for r in rs)
            q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
            parts.append(f"{k} {q[0]:.3f}-{q[2]:.3f} s")
        print(f"  {name:<11} {n:>6}: {', '.join(parts)} (n={len(rs)})")
    for n in counts:
        b = table.get(("bird", n))
        for name in speakers:
            s = table.get((name, n))
            if b and s and name != "bird":
                print(
                    f"ratio {name}/BIRD at N={n}: announce {s['announce'] / b['announce']:.2f}x,"
                    f" withdraw {s['withdraw'] / b['withdraw']:.2f}x"
                )
    for name, values in vips.items():
        if values:
            print(
                f"one VIP, trigger to router kernel ({name}):"
                f" median {median(values) * 1000:.0f} ms,"
                f" min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f} (n={len(values)})"
            )


if __name__ == "__main__":
    main()
